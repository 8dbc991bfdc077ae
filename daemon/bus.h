/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "phone.h"

/* D-Bus glue (org.bwcall.Phone1). Only maps the core objects onto the bus: no call logic here. */

#define BUS_NAME "org.bwcall.Phone1"
#define BUS_PHONE_PATH "/org/bwcall/Phone1"
#define BUS_PHONE_INTERFACE "org.bwcall.Phone1"
#define BUS_CALL_PREFIX "/org/bwcall/Phone1/Call"
#define BUS_CALL_INTERFACE "org.bwcall.Phone1.Call"
#define BUS_AUDIO_INTERFACE "org.bwcall.Phone1.Audio"

typedef struct BusContext {
        sd_bus *bus;
        Phone *phone;
} BusContext;

/* bus-source.c: drives an sd_bus from the GLib main loop (platform-notes §4). */
GSource *bus_source_new(sd_bus *bus);

/* bus-phone.c / bus-call.c */
int bus_phone_register(BusContext *ctx);
int bus_call_register(BusContext *ctx);
int bus_audio_register(BusContext *ctx);
char *bus_call_path(const Call *c);
void bus_call_emit_added(BusContext *ctx, Call *c);
void bus_call_emit_removed(BusContext *ctx, Call *c);
void bus_call_emit_state_changed(BusContext *ctx, Call *c, CallState old, CallState new);
void bus_call_emit_changed(BusContext *ctx, Call *c, const char *const *properties);
void bus_call_emit_hold_state_changed(BusContext *ctx, Call *c, bool is_hold, bool is_remote);
void bus_call_emit_dtmf_received(BusContext *ctx, Call *c, char digit);
void bus_call_emit_transfer_requested(BusContext *ctx, Call *c, const char *target);
void bus_call_emit_audio_device_changed(BusContext *ctx, Call *c, const char *kind, const char *node,
                                        const char *reason);
void bus_audio_emit_devices_changed(BusContext *ctx);
