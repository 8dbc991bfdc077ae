/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>

#include "bus.h"
#include "log.h"

/* sd-bus driven by the GLib main loop that GStreamer and libsoup need anyway: one thread, one
 * loop (platform-notes §4). prepare() re-reads the wanted events every time so queued output
 * (POLLOUT) and sd-bus timeouts (method call timeouts) are honoured. */

typedef struct BusSource {
        GSource source;
        sd_bus *bus;
        GPollFD pfd;
} BusSource;

static uint64_t now_monotonic_usec(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t) t.tv_sec * 1000000 + (uint64_t) t.tv_nsec / 1000;
}

static gboolean bus_source_prepare(GSource *s, gint *timeout_ms) {
        BusSource *b = (BusSource *) s;
        int events = sd_bus_get_events(b->bus);
        uint64_t until, now;

        b->pfd.events = events < 0 ? 0 : (gushort) events;
        if (sd_bus_get_timeout(b->bus, &until) < 0 || until == UINT64_MAX) {
                *timeout_ms = -1;
                return FALSE;
        }
        now = now_monotonic_usec();
        *timeout_ms = until <= now ? 0 : (gint) MIN((until - now + 999) / 1000, (uint64_t) G_MAXINT);
        return *timeout_ms == 0;
}

static gboolean bus_source_check(GSource *s) {
        BusSource *b = (BusSource *) s;
        uint64_t until;

        if (b->pfd.revents)
                return TRUE;
        return sd_bus_get_timeout(b->bus, &until) >= 0 && until != UINT64_MAX && until <= now_monotonic_usec();
}

static gboolean bus_source_dispatch(GSource *s, GSourceFunc cb, gpointer userdata) {
        BusSource *b = (BusSource *) s;
        int r;

        while ((r = sd_bus_process(b->bus, NULL)) > 0)
                ;
        if (r < 0) {
                /* Without the bus the daemon is useless: stop, and let systemd restart us. */
                log_error_errno(r, "Lost the D-Bus connection: %m");
                if (cb)
                        cb(userdata);
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void bus_source_finalize(GSource *s) {
        BusSource *b = (BusSource *) s;

        sd_bus_flush_close_unref(b->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_source_prepare,
        .check = bus_source_check,
        .dispatch = bus_source_dispatch,
        .finalize = bus_source_finalize,
};

GSource *bus_source_new(sd_bus *bus) {
        BusSource *b = (BusSource *) g_source_new(&bus_source_funcs, sizeof(BusSource));

        b->bus = sd_bus_ref(bus);
        b->pfd.fd = sd_bus_get_fd(bus);
        b->pfd.events = G_IO_IN;
        g_source_add_poll(&b->source, &b->pfd);
        g_source_set_name(&b->source, "sd-bus");
        return &b->source;
}
