/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sim.h"

/* One JSON object per line, flushed after every line, so a test can tail the file while the sim
 * runs. The format is a contract (README.md): add fields, never rename or remove them. */

static FILE *events_file;

int events_open(const char *path) {
        if (!path)
                return 0;
        /* Append: a test may point several runs (or a restarted sim) at one file. */
        events_file = fopen(path, "ae");
        if (!events_file)
                return log_error_errno(-errno, "Failed to open events file %s: %m", path);
        return 0;
}

void events_close(void) {
        if (events_file)
                fclose(events_file);
        events_file = NULL;
}

double now_realtime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

json_object *event_new(const char *name) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "event", json_object_new_string(name));
        json_object_object_add(o, "time", json_object_new_double(now_realtime()));
        return o;
}

void event_add_string(json_object *o, const char *key, const char *value) {
        json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

void event_add_int(json_object *o, const char *key, int64_t value) {
        json_object_object_add(o, key, json_object_new_int64(value));
}

void event_add_double(json_object *o, const char *key, double value) {
        json_object_object_add(o, key, json_object_new_double(value));
}

void event_add_bool(json_object *o, const char *key, bool value) {
        json_object_object_add(o, key, json_object_new_boolean(value));
}

void event_add_call(json_object *o, const char *call_id, const char *number) {
        event_add_string(o, "call_id", call_id);
        event_add_string(o, "number", number);
}

void event_emit(json_object *o) {
        if (!o)
                return;
        if (events_file) {
                const char *line = json_object_to_json_string_ext(
                        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

                if (fprintf(events_file, "%s\n", line) < 0 || fflush(events_file) != 0)
                        log_warning_errno(-errno, "Failed to write event: %m");
        }
        if (log_get_max_level() >= LOG_DEBUG) {
                json_object *name = NULL;

                json_object_object_get_ex(o, "event", &name);
                log_debug("event %s", json_object_get_string(name));
        }
        json_object_put(o);
}
