/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwcall monitor: print every signal bwcalld sends, one line each, until SIGINT/SIGTERM.
 *
 * The match uses the well-known name as sender; dbus-daemon checks it against whoever owns the
 * name when a signal is sent, so the subscription outlives a restart of bwcalld. The owner
 * changes themselves are printed as "daemon" lines. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "bwcall.h"
#include "log.h"
#include "output.h"

/* Argument names of the signals we know, from dbus/org.bwcall.Phone1.xml and the D-Bus spec. */
static const struct {
        const char *interface;
        const char *member;
        const char *const names[4];
} signal_args[] = {
        { BWCALL_PHONE_IFACE, "LoginStateChanged", { "is_login", "cause" } },
        { BWCALL_PHONE_IFACE, "CallAdded", { "call" } },
        { BWCALL_PHONE_IFACE, "CallRemoved", { "call" } },
        { BWCALL_PHONE_IFACE, "IncomingCall", { "call", "from" } },
        { BWCALL_PHONE_IFACE, "TokenRefreshed", { "expires_at" } },
        { BWCALL_CALL_IFACE, "StateChanged", { "old", "new", "cause" } },
        { BWCALL_CALL_IFACE, "HoldStateChanged", { "is_hold", "is_remote" } },
        { BWCALL_CALL_IFACE, "DtmfReceived", { "digit" } },
        { BWCALL_CALL_IFACE, "TransferRequested", { "target" } },
        { BWCALL_CALL_IFACE, "AudioDeviceChanged", { "kind", "node", "reason" } },
        { "org.freedesktop.DBus.Properties", "PropertiesChanged", { "interface", "changed", "invalidated" } },
        { "org.freedesktop.DBus.ObjectManager", "InterfacesAdded", { "object", "interfaces" } },
        { "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved", { "object", "interfaces" } },
        { "org.freedesktop.DBus", "NameOwnerChanged", { "name", "old_owner", "new_owner" } },
};

static const char *const *signal_arg_names(const char *interface, const char *member) {
        for (size_t i = 0; i < ELEMENTSOF(signal_args); i++)
                if (strcmp(signal_args[i].interface, interface) == 0 && strcmp(signal_args[i].member, member) == 0)
                        return signal_args[i].names;
        return NULL;
}

static const char *arg_string(json_object *args, const char *name) {
        json_object *v = json_object_object_get(args, name);

        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* "k=v, k=v" from an object, with the API's units (timestamps, durations). */
static void fprint_properties(FILE *f, json_object *props) {
        bool first = true;

        json_object_object_foreach(props, name, value) {
                _cleanup_free_ char *text = property_to_text(name, value, TEXT_QUOTE);

                fprintf(f, "%s%s=%s", first ? "" : ", ", name, text ?: "?");
                first = false;
        }
}

/* sd-bus adds Peer, Introspectable and Properties to every object; in the human form they are
 * noise. */
static bool is_standard_interface(const char *name) {
        return strncmp(name, "org.freedesktop.DBus.", strlen("org.freedesktop.DBus.")) == 0;
}

static void print_daemon_line(FILE *f, json_object *args) {
        const char *old_owner = arg_string(args, "old_owner"), *new_owner = arg_string(args, "new_owner");

        if (*old_owner == '\0')
                fprintf(f, "daemon: started (%s)", new_owner);
        else if (*new_owner == '\0')
                fprintf(f, "daemon: stopped (was %s)", old_owner);
        else
                fprintf(f, "daemon: replaced (%s -> %s)", old_owner, new_owner);
}

static void print_human(const char *clock, const char *path, const char *interface, const char *member,
                        json_object *args) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&line, &size);
        if (!f) {
                log_oom();
                return;
        }

        fprintf(f, "%s ", clock);
        if (strcmp(member, "NameOwnerChanged") == 0 && strcmp(interface, "org.freedesktop.DBus") == 0)
                print_daemon_line(f, args);
        else if (strcmp(member, "StateChanged") == 0 && strcmp(interface, BWCALL_CALL_IFACE) == 0) {
                const char *cause = arg_string(args, "cause");

                fprintf(f, "%s StateChanged: %s -> %s", path, arg_string(args, "old"), arg_string(args, "new"));
                if (*cause)
                        fprintf(f, " (%s)", cause);
        } else if (strcmp(member, "PropertiesChanged") == 0 &&
                   strcmp(interface, "org.freedesktop.DBus.Properties") == 0) {
                json_object *changed = json_object_object_get(args, "changed");
                json_object *invalidated = json_object_object_get(args, "invalidated");

                fprintf(f, "%s PropertiesChanged %s: ", path, arg_string(args, "interface"));
                if (changed && json_object_is_type(changed, json_type_object))
                        fprint_properties(f, changed);
                if (invalidated && json_object_is_type(invalidated, json_type_array) &&
                    json_object_array_length(invalidated) > 0) {
                        _cleanup_free_ char *text = json_to_text(invalidated, TEXT_QUOTE);

                        fprintf(f, "%sinvalidated: %s", changed && json_object_object_length(changed) > 0 ? "; " : "",
                                text ?: "?");
                }
        } else if (strcmp(member, "InterfacesAdded") == 0 &&
                   strcmp(interface, "org.freedesktop.DBus.ObjectManager") == 0) {
                json_object *interfaces = json_object_object_get(args, "interfaces");
                bool first = true;

                fprintf(f, "%s InterfacesAdded: %s", path, arg_string(args, "object"));
                if (interfaces && json_object_is_type(interfaces, json_type_object)) {
                        json_object_object_foreach(interfaces, iface, props) {
                                if (is_standard_interface(iface) || !json_object_is_type(props, json_type_object))
                                        continue;
                                fprintf(f, "%s %s: ", first ? "" : ";", iface);
                                fprint_properties(f, props);
                                first = false;
                        }
                }
        } else if (strcmp(member, "InterfacesRemoved") == 0 &&
                   strcmp(interface, "org.freedesktop.DBus.ObjectManager") == 0) {
                json_object *interfaces = json_object_object_get(args, "interfaces");
                bool first = true;

                fprintf(f, "%s InterfacesRemoved: %s", path, arg_string(args, "object"));
                if (interfaces && json_object_is_type(interfaces, json_type_array))
                        for (size_t i = 0; i < json_object_array_length(interfaces); i++) {
                                const char *iface = json_object_get_string(json_object_array_get_idx(interfaces, i));

                                if (!iface || is_standard_interface(iface))
                                        continue;
                                fprintf(f, "%s%s", first ? " " : ", ", iface);
                                first = false;
                        }
        } else {
                fprintf(f, "%s %s: ", path, member);
                fprint_properties(f, args);
        }

        if (fclose(f) != 0) {
                log_oom();
                return;
        }
        puts(line);
        fflush(stdout);
}

static int on_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *args = NULL;
        uint64_t now = now_realtime_usec();
        const char *path = sd_bus_message_get_path(m) ?: "";
        const char *interface = sd_bus_message_get_interface(m) ?: "";
        const char *member = sd_bus_message_get_member(m) ?: "";
        int r;

        r = bus_message_read_args_json(m, signal_arg_names(interface, member), &args);
        if (r < 0) {
                log_warning_errno(r, "Cannot read the arguments of %s.%s on %s: %m", interface, member, path);
                return 0;
        }

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j) {
                        log_oom();
                        return 0;
                }
                json_object_object_add(j, "time", json_object_new_realtime(now));
                json_object_object_add(j, "signal", json_object_new_string(member));
                json_object_object_add(j, "path", json_object_new_string(path));
                json_object_object_add(j, "interface", json_object_new_string(interface));
                json_object_object_add(j, "args", TAKE_PTR(args));
                print_json(j);
        } else {
                char clock[16];

                print_human(format_clock(now, clock), path, interface, member, args);
        }
        return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), EXIT_OK);
}

int verb_monitor(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = sd_event_new(&event);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "monitor: Cannot set up the event loop: %s", strerror(-r));

        /* SIGINT/SIGTERM end the loop with status 0 (a NULL handler exits with userdata). A shell
         * starts background jobs with SIGINT ignored, and an ignored signal is dropped even while
         * blocked: take the default back so "kill -INT" stops a monitor started with "&". */
        (void) signal(SIGINT, SIG_DFL);
        (void) signal(SIGTERM, SIG_DFL);
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"), "monitor: Cannot block signals: %s",
                                    strerror(errno));
        r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0 && arg_timeout_usec > 0)
                r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, arg_timeout_usec, 0, on_timeout, NULL);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "monitor: Cannot set up the event loop: %s", strerror(-r));

        /* Synchronous AddMatch: once these return, the bus delivers everything to us. */
        r = sd_bus_add_match(bus, NULL,
                             "type='signal',sender='" BWCALL_SERVICE "',path_namespace='" BWCALL_PHONE_PATH "'",
                             on_signal, NULL);
        if (r >= 0)
                r = sd_bus_add_match(bus, NULL,
                                     "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                     "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                     "arg0='" BWCALL_SERVICE "'",
                                     on_signal, NULL);
        if (r >= 0)
                r = client_watch_disconnect(bus, event);
        if (r < 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

                return report_bus_error("monitor", &error, r);
        }

        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                    "monitor: Cannot attach to the event loop: %s", strerror(-r));

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j || json_object_object_add(j, "event", json_object_new_string("monitoring")) < 0)
                        return log_oom(), EXIT_FAILED;
                print_json(j);
        }

        r = sd_event_loop(event);
        (void) sd_bus_detach_event(bus);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"), "monitor: Event loop failed: %s",
                                    strerror(-r));
        return r;
}
