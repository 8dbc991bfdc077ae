/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwcall wait-incoming: wait for an incoming call and print its object path, for scripts:
 *
 *     call=$(bwcall wait-incoming --timeout 60) && bwcall answer "$call"
 *
 * The IncomingCall match is installed before the call list is read, so a call cannot arrive
 * unseen between the two. A call that is already in state "incoming" in that list is taken at
 * once (the oldest one). IncomingCall signals queued while the list was read are dropped for calls
 * the list already showed: those were not "incoming" any more, or they would have been taken. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "bwcall.h"
#include "log.h"
#include "output.h"

typedef struct WaitIncoming {
        sd_event *event;
        json_object *known; /* paths of the calls in the list read at the start, as keys */
} WaitIncoming;

static int print_incoming(const char *path, const char *from) {
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j || json_object_object_add(j, "call", json_object_new_string(path)) < 0 ||
                    json_object_object_add(j, "from", json_object_new_string(from)) < 0)
                        return log_oom(), EXIT_FAILED;
                print_json(j);
        } else {
                /* Only the path: it is what scripts pass on to answer/reject/redirect. */
                printf("%s\n", path);
                fflush(stdout);
        }
        return EXIT_OK;
}

static int on_incoming_call(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WaitIncoming *w = userdata;
        const char *path, *from;

        if (sd_bus_message_read(m, "os", &path, &from) < 0)
                return 0;
        if (json_object_object_get_ex(w->known, path, NULL))
                return 0;

        return sd_event_exit(w->event, print_incoming(path, from));
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WaitIncoming *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*new_owner == '\0')
                (void) sd_event_exit(w->event,
                                     report_error(EXIT_UNREACHABLE, BWCALL_CLIENT_ERROR("DaemonGone"),
                                                  "bwcalld went away while waiting for an incoming call"));
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        WaitIncoming *w = userdata;

        return sd_event_exit(w->event, report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Timeout"),
                                                    "wait-incoming: No incoming call within %g s",
                                                    (double) arg_timeout_usec / (double) USEC_PER_SEC));
}

static void wait_incoming_done(WaitIncoming *w) {
        json_object_put(w->known);
}

int verb_wait_incoming(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *calls = NULL;
        _cleanup_(wait_incoming_done) WaitIncoming w = {};
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = sd_event_new(&event);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "wait-incoming: Cannot set up the event loop: %s", strerror(-r));
        w.event = event;
        w.known = json_object_new_object();
        if (!w.known)
                return log_oom(), EXIT_FAILED;

        /* Synchronous AddMatch, before the call list is read: no IncomingCall can slip through. */
        r = sd_bus_match_signal(bus, NULL, BWCALL_SERVICE, BWCALL_PHONE_PATH, BWCALL_PHONE_IFACE, "IncomingCall",
                                on_incoming_call, &w);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL,
                                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                     "arg0='" BWCALL_SERVICE "'",
                                     on_name_owner_changed, &w);
        if (r >= 0)
                r = client_watch_disconnect(bus, event);
        if (r < 0)
                return report_bus_error(argv[0], &error, r);

        r = client_get_calls(bus, argv[0], &calls);
        if (r != EXIT_OK)
                return r;

        for (size_t i = 0; i < json_object_array_length(calls); i++) {
                json_object *call = json_object_array_get_idx(calls, i), *v;
                const char *path = json_object_get_string(json_object_object_get(call, "path"));

                v = json_object_object_get(call, "State");
                if (v && json_object_is_type(v, json_type_string) &&
                    strcmp(json_object_get_string(v), "incoming") == 0) {
                        v = json_object_object_get(call, "Number");
                        return print_incoming(path, v && json_object_is_type(v, json_type_string)
                                                            ? json_object_get_string(v) : "");
                }

                if (json_object_object_add(w.known, path, NULL) < 0)
                        return log_oom(), EXIT_FAILED;
        }

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "wait-incoming: Cannot attach to the event loop: %s", strerror(-r));

        if (arg_timeout_usec > 0) {
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg_timeout_usec, 0, on_timeout, &w);
                if (r < 0)
                        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                            "wait-incoming: Cannot arm the timeout: %s", strerror(-r));
        }

        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "wait-incoming: Event loop failed: %s", strerror(-r));
        return r;
}
