/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <gst/gst.h>

#include "audio-devices.h"
#include "log.h"

/* The message of the SDK's checkAvailableDevices() when there is no microphone. */
#define SDK_NO_MICROPHONE "Missing a microphone! Please connect one and reload"

/* The display name of the device of class_name ("Audio/Source", "Audio/Sink") whose PipeWire
 * node.name is wanted, or without one the device WirePlumber would make the default (highest
 * priority.session, as no user choice is known here); newly allocated, or NULL. */
static char *find_device(GList *devices, const char *class_name, const char *wanted) {
        GstDevice *best = NULL;
        gint64 best_priority = G_MININT64;

        for (GList *l = devices; l; l = l->next) {
                GstDevice *d = l->data;
                g_autofree char *cls = gst_device_get_device_class(d);
                g_autoptr(GstStructure) props = gst_device_get_properties(d);
                const char *node = props ? gst_structure_get_string(props, "node.name") : NULL;
                const char *prio = props ? gst_structure_get_string(props, "priority.session") : NULL;
                gint64 priority = prio ? g_ascii_strtoll(prio, NULL, 10) : 0;

                if (g_strcmp0(cls, class_name) != 0)
                        continue;
                if (wanted && g_strcmp0(node, wanted) == 0)
                        return gst_device_get_display_name(d);
                if (!wanted && (!best || priority > best_priority)) {
                        best = d;
                        best_priority = priority;
                }
        }
        return best ? gst_device_get_display_name(best) : NULL;
}

int audio_devices_check(const Config *config, char **ret_microphone, char **ret_speaker, char **ret_message) {
        /* PipeWire's provider only: ALSA's or PulseAudio's would list what bwcalld does not use. */
        g_autoptr(GstDeviceProvider) provider = gst_device_provider_factory_get_by_name("pipewiredeviceprovider");
        g_autofree char *microphone = NULL, *speaker = NULL;
        GList *devices;

        if (!provider) {
                *ret_message = g_strdup("GStreamer's PipeWire device provider is missing (gstreamer1.0-pipewire)");
                return -ENOTSUP;
        }
        if (!gst_device_provider_start(provider)) {
                *ret_message = g_strdup("cannot list audio devices: is PipeWire running?");
                return -ENOTSUP;
        }
        devices = gst_device_provider_get_devices(provider);
        gst_device_provider_stop(provider);

        microphone = find_device(devices, "Audio/Source", config->input);
        speaker = find_device(devices, "Audio/Sink", config->output);
        g_list_free_full(devices, gst_object_unref);

        if (!microphone) {
                *ret_message = config->input ? g_strdup_printf("The configured microphone '%s' is not connected",
                                                               config->input)
                                             : g_strdup(SDK_NO_MICROPHONE);
                return -ENODEV;
        }
        if (!speaker) {
                *ret_message = config->output ? g_strdup_printf("The configured speaker '%s' is not connected",
                                                                config->output)
                                              : g_strdup("Missing a speaker! Please connect one and reload");
                return -ENODEV;
        }
        *ret_microphone = TAKE_PTR(microphone);
        *ret_speaker = TAKE_PTR(speaker);
        return 0;
}
