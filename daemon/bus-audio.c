/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "audio-devices.h"
#include "bus-errors.h"
#include "bus.h"
#include "log.h"

/* org.bwcall.Phone1.Audio on /org/bwcall/Phone1: the audio devices and the choice among them. */

static int append_devices(sd_bus_message *reply, const AudioDevices *devices, const char *class_name) {
        const GPtrArray *list = audio_devices_get(devices, class_name);
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssb)");
        if (r < 0)
                return r;
        for (guint i = 0; i < list->len; i++) {
                const AudioDevice *d = list->pdata[i];

                r = sd_bus_message_append(reply, "(ssb)", d->node, d->description, (int) d->is_default);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_inputs(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return append_devices(reply, ctx->phone->devices, AUDIO_CLASS_SOURCE);
}

static int property_get_outputs(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return append_devices(reply, ctx->phone->devices, AUDIO_CLASS_SINK);
}

static int property_get_input(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", ctx->phone->config->input ?: "");
}

static int property_get_output(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", ctx->phone->config->output ?: "");
}

static int set_device(sd_bus_message *m, BusContext *ctx, bool input, sd_bus_error *error) {
        const char *const props[] = { input ? "Input" : "Output", NULL };
        const char *node;
        int r;

        r = sd_bus_message_read(m, "s", &node);
        if (r < 0)
                return r;
        r = input ? phone_set_input(ctx->phone, node) : phone_set_output(ctx->phone, node);
        if (r < 0)
                return bus_error_set_errno(error, r, "No %s named '%s' (see the %s property).",
                                           input ? "microphone" : "speaker", node, input ? "Inputs" : "Outputs");
        log_info("%s for new calls: %s.", input ? "Microphone" : "Speaker", *node ? node : "the system default");
        r = sd_bus_emit_properties_changed_strv(ctx->bus, BUS_PHONE_PATH, BUS_AUDIO_INTERFACE, (char **) props);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged: %m");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_input(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return set_device(m, userdata, true, error);
}

static int method_set_output(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return set_device(m, userdata, false, error);
}

static const sd_bus_vtable audio_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Inputs", "a(ssb)", property_get_inputs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Outputs", "a(ssb)", property_get_outputs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Input", "s", property_get_input, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Output", "s", property_get_output, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetInput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_input,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetOutput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_output,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        /* After Inputs/Outputs changed (one PropertiesChanged carries the new lists). */
        SD_BUS_SIGNAL("DevicesChanged", NULL, 0),
        SD_BUS_VTABLE_END,
};

void bus_audio_emit_devices_changed(BusContext *ctx) {
        static const char *const props[] = { "Inputs", "Outputs", NULL };
        int r;

        r = sd_bus_emit_properties_changed_strv(ctx->bus, BUS_PHONE_PATH, BUS_AUDIO_INTERFACE, (char **) props);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged: %m");
        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_AUDIO_INTERFACE, "DevicesChanged", "");
        if (r < 0)
                log_warning_errno(r, "Failed to emit DevicesChanged: %m");
}

int bus_audio_register(BusContext *ctx) {
        int r;

        r = sd_bus_add_object_vtable(ctx->bus, NULL, BUS_PHONE_PATH, BUS_AUDIO_INTERFACE, audio_vtable, ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Audio interface: %m");
        return 0;
}
