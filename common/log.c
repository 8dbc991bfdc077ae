/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static const char *program = "bwcall";
static int max_level = LOG_INFO;
static bool to_journal;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",       [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",       [LOG_DEBUG] = "debug",
};

void log_setup(const char *program_name) {
        const char *e;

        if (program_name)
                program = program_name;
        /* systemd sets JOURNAL_STREAM when stderr is connected to the journal. */
        to_journal = getenv("JOURNAL_STREAM") != NULL;
        e = getenv("BWCALL_LOG_LEVEL");
        if (e) {
                int l = log_parse_level(e);
                if (l >= 0)
                        max_level = l;
        }
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_parse_level(const char *s) {
        char *end;
        long l;

        if (!s || !*s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "warn") == 0)
                return LOG_WARNING;
        if (strcasecmp(s, "err") == 0)
                return LOG_ERR;
        errno = 0;
        l = strtol(s, &end, 10);
        if (errno != 0 || *end != '\0' || l < 0 || l > LOG_DEBUG)
                return -EINVAL;
        return (int) l;
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved_errno = errno;

        if (level > max_level)
                return error < 0 ? error : -abs(error);

        /* Make "%m" print the error we were given, as systemd's log functions do. */
        errno = error < 0 ? -error : error;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        if (to_journal)
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s: %s (%s:%d %s)\n", program, level_names[level & 7], buf, file,
                        line, func);
        else
                fprintf(stderr, "%s: %s\n", program, buf);
        fflush(stderr);

        errno = saved_errno;
        return error < 0 ? error : -abs(error);
}
