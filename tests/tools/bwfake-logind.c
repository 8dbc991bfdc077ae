/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwfake-logind: stands in for systemd-logind on a test bus, for resume-from-suspend tests.
 *
 *   bwfake-logind
 *        Takes the name org.freedesktop.login1 on the bus of DBUS_SYSTEM_BUS_ADDRESS (the tests
 *        point it at their private bus), prints "READY", then reads lines from stdin: "sleep"
 *        emits PrepareForSleep(true), "resume" PrepareForSleep(false); each prints "SENT <line>".
 *        Exits at end of input. Nothing else of logind is there. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "log.h"
#include "macro.h"

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        char line[64];
        int r;

        log_setup("bwfake-logind");
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the bus: %m"), 1;
        r = sd_bus_request_name(bus, "org.freedesktop.login1", 0);
        if (r < 0)
                return log_error_errno(r, "Cannot take the name org.freedesktop.login1: %m"), 1;
        printf("READY\n");
        fflush(stdout);
        while (fgets(line, sizeof line, stdin)) {
                bool sleeping;

                line[strcspn(line, "\r\n")] = '\0';
                if (strcmp(line, "sleep") == 0)
                        sleeping = true;
                else if (strcmp(line, "resume") == 0)
                        sleeping = false;
                else {
                        log_warning("Unknown command '%s' (sleep or resume).", line);
                        continue;
                }
                r = sd_bus_emit_signal(bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                                       "PrepareForSleep", "b", (int) sleeping);
                if (r >= 0)
                        r = sd_bus_flush(bus);
                if (r < 0)
                        return log_error_errno(r, "Cannot emit PrepareForSleep: %m"), 1;
                printf("SENT %s\n", line);
                fflush(stdout);
        }
        return 0;
}
