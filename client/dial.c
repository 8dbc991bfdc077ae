/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwcall dial: place a call and follow its state until it is up (or ends).
 *
 * The signal matches are installed before Dial() is sent, so no state change can slip between
 * the reply and the subscription. Signals that arrive while the Dial() reply is awaited are kept
 * in sd-bus's queue in wire order; the catch-up read of State is sent asynchronously so its
 * reply is also handled in wire order, after the older signals and before the newer ones.
 * Dial() creates the call in "dialing", so that state is printed first; repeats are dropped, as
 * each change arrives twice (StateChanged and PropertiesChanged). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "bwcall.h"
#include "log.h"
#include "output.h"

typedef struct Dial {
        sd_event *event;
        char *path;           /* the call object */
        char *state;          /* the last state printed */
        char *cause;          /* Cause as last seen */
        uint32_t sip_code;    /* SipCode as last seen */
        bool was_active;      /* the call reached active (or held) at some point */
        bool ending;          /* terminated seen, reading the final Cause/SipCode */
        const char *target;   /* exit 0 once this state is reached; NULL with --follow */
} Dial;

static void dial_done(Dial *d) {
        free(d->path);
        free(d->state);
        free(d->cause);
}

static int state_rank(const char *state) {
        static const char *const ranks[] = { "dialing", "ringing", "early-media", "active", "terminated" };

        if (strcmp(state, "held") == 0)
                return 3;
        for (size_t i = 0; i < ELEMENTSOF(ranks); i++)
                if (strcmp(state, ranks[i]) == 0)
                        return (int) i;
        return -1;
}

static int set_string(char **s, const char *v) {
        char *n = strdup(v);

        if (!n)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

static void dial_print_state(Dial *d, const char *state, bool final) {
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j) {
                        log_oom();
                        return;
                }
                json_object_object_add(j, "time", json_object_new_realtime(now_realtime_usec()));
                json_object_object_add(j, "call", json_object_new_string(d->path));
                json_object_object_add(j, "state", json_object_new_string(state));
                if (final) {
                        json_object_object_add(j, "cause", json_object_new_string(d->cause ?: ""));
                        json_object_object_add(j, "sip_code", json_object_new_int64(d->sip_code));
                }
                print_json(j);
                return;
        }

        if (final && d->sip_code > 0)
                printf("State: %s (%s, SIP %" PRIu32 ")\n", state, d->cause && *d->cause ? d->cause : "no cause",
                       d->sip_code);
        else if (final && d->cause && *d->cause)
                printf("State: %s (%s)\n", state, d->cause);
        else
                printf("State: %s\n", state);
        fflush(stdout);
}

/* The call is over: print how it ended and leave with the status that fits the mode. */
static void dial_finish(Dial *d) {
        _cleanup_free_ char *how = NULL;
        bool ok;

        dial_print_state(d, "terminated", true);

        if (d->sip_code > 0)
                how = strprintf("Call ended: %s (SIP %" PRIu32 ")", d->cause && *d->cause ? d->cause : "no cause",
                                d->sip_code);
        else
                how = strprintf("Call ended: %s", d->cause && *d->cause ? d->cause : "no cause given");

        if (d->target)
                ok = strcmp(d->target, "terminated") == 0;
        else
                ok = d->was_active; /* --follow: a call that was up and then ended went fine */

        if (ok) {
                if (!arg_json)
                        printf("%s\n", how ?: "Call ended");
                (void) sd_event_exit(d->event, EXIT_OK);
        } else
                (void) sd_event_exit(d->event, report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("CallFailed"), "%s",
                                                            how ?: "Call ended"));
}

static int on_final_properties(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *props = NULL;
        Dial *d = userdata;
        json_object *v;

        /* The call object may be gone already (no linger): keep what the signals said. */
        if (!sd_bus_message_is_method_error(reply, NULL) && bus_message_read_json(reply, &props) >= 0) {
                v = json_object_object_get(props, "Cause");
                if (v && json_object_is_type(v, json_type_string))
                        (void) set_string(&d->cause, json_object_get_string(v));
                v = json_object_object_get(props, "SipCode");
                if (v && json_object_is_type(v, json_type_int))
                        d->sip_code = (uint32_t) json_object_get_int64(v);
        }

        dial_finish(d);
        return 0;
}

static void dial_on_state(Dial *d, sd_bus *bus, const char *state) {
        int r;

        if (d->ending || (d->state && strcmp(d->state, state) == 0))
                return;

        if (set_string(&d->state, state) < 0) {
                log_oom();
                (void) sd_event_exit(d->event, EXIT_FAILED);
                return;
        }

        if (strcmp(state, "active") == 0 || strcmp(state, "held") == 0)
                d->was_active = true;

        if (strcmp(state, "terminated") == 0) {
                d->ending = true;
                r = sd_bus_call_method_async(bus, NULL, BWCALL_SERVICE, d->path, "org.freedesktop.DBus.Properties",
                                             "GetAll", on_final_properties, d, "s", BWCALL_CALL_IFACE);
                if (r < 0)
                        dial_finish(d);
                return;
        }

        dial_print_state(d, state, false);

        if (d->target && state_rank(state) >= state_rank(d->target))
                (void) sd_event_exit(d->event, EXIT_OK);
}

static bool is_our_call(Dial *d, sd_bus_message *m) {
        const char *path = sd_bus_message_get_path(m);

        return d->path && path && strcmp(path, d->path) == 0;
}

static int on_state_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Dial *d = userdata;
        const char *old, *state, *cause;

        if (!is_our_call(d, m))
                return 0;
        if (sd_bus_message_read(m, "sss", &old, &state, &cause) < 0)
                return 0;
        if (strcmp(state, "terminated") == 0 && *cause)
                (void) set_string(&d->cause, cause);

        dial_on_state(d, sd_bus_message_get_bus(m), state);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *changed = NULL;
        Dial *d = userdata;
        const char *interface;
        json_object *v;

        if (!is_our_call(d, m))
                return 0;
        if (sd_bus_message_read(m, "s", &interface) < 0 || strcmp(interface, BWCALL_CALL_IFACE) != 0)
                return 0;
        if (bus_message_read_json(m, &changed) < 0 || !json_object_is_type(changed, json_type_object))
                return 0;

        v = json_object_object_get(changed, "Cause");
        if (v && json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0)
                (void) set_string(&d->cause, json_object_get_string(v));
        v = json_object_object_get(changed, "SipCode");
        if (v && json_object_is_type(v, json_type_int))
                d->sip_code = (uint32_t) json_object_get_int64(v);
        v = json_object_object_get(changed, "State");
        if (v && json_object_is_type(v, json_type_string))
                dial_on_state(d, sd_bus_message_get_bus(m), json_object_get_string(v));
        return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Dial *d = userdata;
        const char *path;

        if (sd_bus_message_read(m, "o", &path) < 0 || !d->path || strcmp(path, d->path) != 0 || d->ending)
                return 0;

        /* Removed without us seeing "terminated" (it is removed only after that state). */
        d->ending = true;
        dial_finish(d);
        return 0;
}

static int on_state_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Dial *d = userdata;
        const char *state;

        if (e) {
                if (sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE) &&
                    !d->ending) {
                        d->ending = true;
                        dial_finish(d);
                }
                return 0;
        }
        if (sd_bus_message_read(reply, "v", "s", &state) < 0)
                return 0;

        dial_on_state(d, sd_bus_message_get_bus(reply), state);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Dial *d = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*new_owner == '\0')
                (void) sd_event_exit(d->event, report_error(EXIT_UNREACHABLE, BWCALL_CLIENT_ERROR("DaemonGone"),
                                                            "bwcalld went away while following %s", d->path));
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Dial *d = userdata;

        return sd_event_exit(d->event,
                             report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Timeout"),
                                          "dial: Timed out waiting for %s to become %s (state: %s)", d->path,
                                          d->target ?: "terminated", d->state ?: "unknown"));
}

static int add_matches(sd_bus *bus, Dial *d) {
        int r;

        r = sd_bus_add_match(bus, NULL,
                             "type='signal',sender='" BWCALL_SERVICE "',"
                             "path_namespace='/org/bwcall/Phone1/Call',"
                             "interface='" BWCALL_CALL_IFACE "',member='StateChanged'",
                             on_state_changed, d);
        if (r < 0)
                return r;
        r = sd_bus_add_match(bus, NULL,
                             "type='signal',sender='" BWCALL_SERVICE "',"
                             "path_namespace='/org/bwcall/Phone1/Call',"
                             "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                             "arg0='" BWCALL_CALL_IFACE "'",
                             on_properties_changed, d);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(bus, NULL, BWCALL_SERVICE, BWCALL_PHONE_PATH, "org.freedesktop.DBus.ObjectManager",
                                "InterfacesRemoved", on_interfaces_removed, d);
        if (r < 0)
                return r;
        return sd_bus_add_match(bus, NULL,
                                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                "arg0='" BWCALL_SERVICE "'",
                                on_name_owner_changed, d);
}

int verb_dial(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(dial_done) Dial d = {
                .target = arg_follow ? NULL : arg_wait_state ?: "active",
        };
        const char *path;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        if (!arg_no_wait) {
                r = sd_event_new(&event);
                if (r < 0)
                        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                            "dial: Cannot set up the event loop: %s", strerror(-r));
                d.event = event;

                /* Before Dial(), so that no state change of the new call can be missed. */
                r = add_matches(bus, &d);
                if (r < 0)
                        return report_bus_error("dial", &error, r);
                r = client_watch_disconnect(bus, event);
                if (r < 0)
                        return report_bus_error("dial", &error, r);
        }

        r = sd_bus_message_new_method_call(bus, &m, BWCALL_SERVICE, BWCALL_PHONE_PATH, BWCALL_PHONE_IFACE, "Dial");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", argv[1]);
        if (r >= 0)
                r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r >= 0 && arg_dtmf_method)
                r = sd_bus_message_append(m, "{sv}", "dtmf-method", "s", arg_dtmf_method);
        if (r >= 0 && arg_input)
                r = sd_bus_message_append(m, "{sv}", "input", "s", arg_input);
        if (r >= 0 && arg_output)
                r = sd_bus_message_append(m, "{sv}", "output", "s", arg_output);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"), "dial: %s", strerror(-r));

        r = client_call(bus, m, &error, &reply);
        if (r < 0)
                return report_bus_error("dial", &error, r);

        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("BadReply"),
                                    "dial: Unexpected reply to Dial(): %s", strerror(-r));

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j || json_object_object_add(j, "call", json_object_new_string(path)) < 0)
                        return log_oom(), EXIT_FAILED;
                print_json(j);
        } else {
                printf("%s\n", path);
                fflush(stdout);
        }

        if (arg_no_wait)
                return EXIT_OK;

        d.path = strdup(path);
        if (!d.path)
                return log_oom(), EXIT_FAILED;

        /* Dial() creates the call in "dialing"; later states come from the signals. */
        dial_on_state(&d, bus, "dialing");

        /* Catch up with changes made before our matches could see this path. */
        r = sd_bus_call_method_async(bus, NULL, BWCALL_SERVICE, d.path, "org.freedesktop.DBus.Properties", "Get",
                                     on_state_reply, &d, "ss", BWCALL_CALL_IFACE, "State");
        if (r < 0)
                return report_bus_error("dial", &error, r);

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "dial: Cannot attach to the event loop: %s", strerror(-r));

        if (arg_timeout_usec > 0) {
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg_timeout_usec, 0, on_timeout, &d);
                if (r < 0)
                        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                            "dial: Cannot arm the timeout: %s", strerror(-r));
        }

        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"), "dial: Event loop failed: %s",
                                    strerror(-r));
        return r;
}
