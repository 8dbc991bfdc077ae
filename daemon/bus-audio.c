/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

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

/* The three choices of the interface: property, setter, and the kind of device (for messages). */
typedef enum AudioChoice {
        CHOICE_INPUT,
        CHOICE_OUTPUT,
        CHOICE_RINGER,
        _CHOICE_MAX,
} AudioChoice;

static const struct {
        const char *property, *method;
        CallDevice kind;
        int (*set)(Phone *p, const char *node);
        size_t config_offset;
} audio_choices[_CHOICE_MAX] = {
        [CHOICE_INPUT] = { "Input", "SetInput", CALL_DEVICE_INPUT, phone_set_input, offsetof(Config, input) },
        [CHOICE_OUTPUT] = { "Output", "SetOutput", CALL_DEVICE_OUTPUT, phone_set_output, offsetof(Config, output) },
        [CHOICE_RINGER] = { "Ringer", "SetRinger", CALL_DEVICE_OUTPUT, phone_set_ringer, offsetof(Config, ringer) },
};

static AudioChoice choice_from_property(const char *property) {
        for (AudioChoice c = 0; c < _CHOICE_MAX; c++)
                if (strcmp(audio_choices[c].property, property) == 0)
                        return c;
        return _CHOICE_MAX;
}

static AudioChoice choice_from_method(const char *method) {
        for (AudioChoice c = 0; c < _CHOICE_MAX; c++)
                if (strcmp(audio_choices[c].method, method) == 0)
                        return c;
        return _CHOICE_MAX;
}

static int property_get_choice(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        AudioChoice c = choice_from_property(property);
        const char *node;

        assert(c < _CHOICE_MAX);
        node = *(char **) ((char *) ctx->phone->config + audio_choices[c].config_offset);
        return sd_bus_message_append(reply, "s", node ?: "");
}

static int method_set_choice(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        AudioChoice c = choice_from_method(sd_bus_message_get_member(m));
        const char *props[] = { NULL, NULL };
        const char *node;
        int r;

        assert(c < _CHOICE_MAX);
        r = sd_bus_message_read(m, "s", &node);
        if (r < 0)
                return r;
        r = audio_choices[c].set(ctx->phone, node);
        if (r < 0) {
                g_autofree char *message = phone_device_missing_message(audio_choices[c].kind, node);

                return bus_error_set_errno(error, r, "%s", message);
        }
        log_info("%s: %s.", audio_choices[c].property, *node ? node : "the system default");
        props[0] = audio_choices[c].property;
        r = sd_bus_emit_properties_changed_strv(ctx->bus, BUS_PHONE_PATH, BUS_AUDIO_INTERFACE, (char **) props);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged: %m");
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable audio_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Inputs", "a(ssb)", property_get_inputs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Outputs", "a(ssb)", property_get_outputs, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Input", "s", property_get_choice, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Output", "s", property_get_choice, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Ringer", "s", property_get_choice, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetInput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_choice,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetOutput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_choice,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRinger", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_choice,
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
