/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <gst/gst.h>

#include "audio-devices.h"
#include "log.h"

/* The message of the SDK's checkAvailableDevices() when there is no microphone. */
#define SDK_NO_MICROPHONE "Missing a microphone! Please connect one and reload"
struct AudioDevices {
        /* PipeWire's provider only: ALSA's or Pulse's would list what bwcalld does not use. It
         * is only ever probed (connect, list, disconnect), never left running: 0.3.65's running
         * provider trips GStreamer assertions when nodes go away, and WebKit disables it for
         * deadlocks with pipewiresink (pipewire#5171). Hot-plug signals need a registry watch
         * of our own (not done yet). */
        GstDeviceProvider *provider;
};

static void audio_device_free(AudioDevice *d) {
        if (!d)
                return;
        g_free(d->node);
        g_free(d->description);
        g_free(d);
}

AudioDevices *audio_devices_new(void) {
        AudioDevices *a = g_new0(AudioDevices, 1);

        a->provider = gst_device_provider_factory_get_by_name("pipewiredeviceprovider");
        if (!a->provider)
                log_warning("GStreamer's PipeWire device provider is missing (gstreamer1.0-pipewire): "
                            "no device lists.");
        return a;
}

AudioDevices *audio_devices_free(AudioDevices *a) {
        if (!a)
                return NULL;
        g_clear_object(&a->provider);
        g_free(a);
        return NULL;
}

static int compare_devices(gconstpointer x, gconstpointer y) {
        return g_strcmp0((*(AudioDevice *const *) x)->node, (*(AudioDevice *const *) y)->node);
}

GPtrArray *audio_devices_list(AudioDevices *a, const char *class_name) {
        GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free);
        AudioDevice *best = NULL;
        gint64 best_priority = G_MININT64;
        GList *devices;

        if (!a->provider)
                return list;
        devices = gst_device_provider_get_devices(a->provider); /* a probe: connects and lists */
        for (GList *l = devices; l; l = l->next) {
                g_autofree char *cls = gst_device_get_device_class(l->data);
                g_autoptr(GstStructure) props = gst_device_get_properties(l->data);
                const char *node = props ? gst_structure_get_string(props, "node.name") : NULL;
                const char *prio = props ? gst_structure_get_string(props, "priority.session") : NULL;
                gint64 priority = prio ? g_ascii_strtoll(prio, NULL, 10) : 0;
                AudioDevice *d;

                if (g_strcmp0(cls, class_name) != 0 || !node)
                        continue;
                d = g_new0(AudioDevice, 1);
                d->node = g_strdup(node);
                d->description = gst_device_get_display_name(l->data);
                g_ptr_array_add(list, d);
                /* No user choice is known here: WirePlumber's default is the highest priority. */
                if (!best || priority > best_priority) {
                        best = d;
                        best_priority = priority;
                }
        }
        g_list_free_full(devices, gst_object_unref);
        if (best)
                best->is_default = true;
        g_ptr_array_sort(list, compare_devices);
        return list;
}

bool audio_devices_has(AudioDevices *a, const char *class_name, const char *node) {
        g_autoptr(GPtrArray) list = audio_devices_list(a, class_name);

        for (guint i = 0; i < list->len; i++)
                if (strcmp(((AudioDevice *) list->pdata[i])->node, node) == 0)
                        return true;
        return false;
}

/* The configured device, or the default one, of class_name: its description, or NULL. */
static char *pick_device(AudioDevices *a, const char *class_name, const char *wanted) {
        g_autoptr(GPtrArray) list = audio_devices_list(a, class_name);

        for (guint i = 0; i < list->len; i++) {
                AudioDevice *d = list->pdata[i];
                if (wanted && *wanted ? strcmp(d->node, wanted) == 0 : d->is_default)
                        return g_strdup(d->description);
        }
        return NULL;
}

int audio_devices_check(AudioDevices *a, const Config *config, char **ret_microphone, char **ret_speaker,
                        char **ret_message) {
        g_autofree char *microphone = NULL, *speaker = NULL;

        if (!a->provider) {
                *ret_message = g_strdup("GStreamer's PipeWire device provider is missing");
                return -ENOTSUP;
        }
        microphone = pick_device(a, AUDIO_CLASS_SOURCE, config->input);
        speaker = pick_device(a, AUDIO_CLASS_SINK, config->output);
        if (!microphone) {
                *ret_message = config->input && *config->input
                                       ? g_strdup_printf("The configured microphone '%s' is not connected", config->input)
                                       : g_strdup(SDK_NO_MICROPHONE);
                return -ENODEV;
        }
        if (!speaker) {
                *ret_message = config->output && *config->output
                                       ? g_strdup_printf("The configured speaker '%s' is not connected", config->output)
                                       : g_strdup("Missing a speaker! Please connect one and reload");
                return -ENODEV;
        }
        *ret_microphone = TAKE_PTR(microphone);
        *ret_speaker = TAKE_PTR(speaker);
        return 0;
}
