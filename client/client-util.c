/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bwcall.h"
#include "log.h"
#include "output.h"

static bool startswith(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static void print_json_error(const char *name, const char *message) {
        _cleanup_(json_object_putp) json_object *j = NULL;

        if (!arg_json)
                return;
        j = json_object_new_object();
        if (!j)
                return;
        if (json_object_object_add(j, "error", json_object_new_string(name)) < 0 ||
            json_object_object_add(j, "message", json_object_new_string(message)) < 0)
                return;
        print_json(j);
}

static int report_errorv(int status, const char *error_name, const char *format, va_list ap) {
        char buf[2048];

        (void) vsnprintf(buf, sizeof buf, format, ap);
        log_error("%s", buf);
        print_json_error(error_name, buf);
        return status;
}

int report_error(int status, const char *error_name, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        status = report_errorv(status, error_name, format, ap);
        va_end(ap);
        return status;
}

static bool error_is_disconnect(int r) {
        r = r < 0 ? -r : r;
        return r == ECONNRESET || r == ENOTCONN || r == EPIPE || r == ESHUTDOWN || r == ECONNREFUSED;
}

int report_bus_error(const char *verb, const sd_bus_error *error, int r) {
        const char *name = sd_bus_error_is_set(error) ? error->name : NULL;

        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return report_error(EXIT_UNREACHABLE, name,
                                    "bwcalld is not running (" BWCALL_SERVICE " not on the user bus)");

        /* Bus activation was attempted (a .service file is installed) and failed. */
        if (startswith(name, "org.freedesktop.DBus.Error.Spawn."))
                return report_error(EXIT_UNREACHABLE, name, "Could not start bwcalld: %s",
                                    error->message ?: name);

        if (sd_bus_error_has_names(error, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT))
                return report_error(EXIT_UNREACHABLE, name, "%s: bwcalld did not reply in time (%s)",
                                    verb, error->message ?: name);

        /* sd-bus names local errno failures "System.Error.E...". */
        if ((!name || startswith(name, "System.Error.")) && error_is_disconnect(r))
                return report_error(EXIT_UNREACHABLE, name ?: BWCALL_CLIENT_ERROR("Disconnected"),
                                    "Lost the connection to the user bus: %s", strerror(r < 0 ? -r : r));

        if (name)
                return report_error(EXIT_FAILED, name, "%s: %s", verb, error->message ?: name);

        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"), "%s: %s", verb,
                            strerror(r < 0 ? -r : EIO));
}

int client_open_bus(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_user(&bus);
        if (r == -ENOMEDIUM)
                return report_error(EXIT_UNREACHABLE, BWCALL_CLIENT_ERROR("NoBus"),
                                    "Cannot reach the user bus: neither $DBUS_SESSION_BUS_ADDRESS nor "
                                    "$XDG_RUNTIME_DIR is set");
        if (r < 0)
                return report_error(EXIT_UNREACHABLE, BWCALL_CLIENT_ERROR("NoBus"),
                                    "Cannot reach the user bus: %s", strerror(-r));

        (void) sd_bus_set_description(bus, "bwcall");
        *ret = TAKE_PTR(bus);
        return EXIT_OK;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_event *event = userdata;

        return sd_event_exit(event, report_error(EXIT_UNREACHABLE, BWCALL_CLIENT_ERROR("Disconnected"),
                                                 "Lost the connection to the user bus"));
}

int client_watch_disconnect(sd_bus *bus, sd_event *event) {
        /* sd-bus synthesizes this local signal when the connection closes; nothing goes to the bus. */
        return sd_bus_match_signal(bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                   "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, event);
}

int client_call(sd_bus *bus, sd_bus_message *m, sd_bus_error *error, sd_bus_message **ret_reply) {
        return sd_bus_call(bus, m, arg_timeout_usec, error, ret_reply);
}

int client_call_methodv(sd_bus *bus, const char *path, const char *interface, const char *member,
                        sd_bus_error *error, sd_bus_message **ret_reply, const char *types, va_list ap) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(bus, &m, BWCALL_SERVICE, path, interface, member);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);

        if (types) {
                r = sd_bus_message_appendv(m, types, ap);
                if (r < 0)
                        return sd_bus_error_set_errno(error, r);
        }

        return client_call(bus, m, error, ret_reply);
}

int client_call_method(sd_bus *bus, const char *path, const char *interface, const char *member,
                       sd_bus_error *error, sd_bus_message **ret_reply, const char *types, ...) {
        va_list ap;
        int r;

        va_start(ap, types);
        r = client_call_methodv(bus, path, interface, member, error, ret_reply, types, ap);
        va_end(ap);
        return r;
}
