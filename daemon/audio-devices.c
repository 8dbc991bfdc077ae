/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <pipewire/pipewire.h>

#include "audio-devices.h"
#include "log.h"

/* The message of the SDK's checkAvailableDevices() when there is no microphone. */
#define SDK_NO_MICROPHONE "Missing a microphone! Please connect one and reload"
/* A bounded probe of PipeWire's registry: GStreamer's PipeWire device provider (0.3.65) was
 * tried first and hangs for ever in its probe (pw_thread_loop_wait) when asked during a call,
 * and trips GStreamer assertions when left running; WebKit disables it (pipewire#5171). This
 * asks the registry directly, with a deadline, on a private loop. */
#define AUDIO_PROBE_TIMEOUT_MS 1000

static void audio_device_free(AudioDevice *d) {
        if (!d)
                return;
        g_free(d->node);
        g_free(d->description);
        g_free(d);
}

typedef struct Probe {
        GPtrArray *sources;      /* AudioDevice* */
        GPtrArray *sinks;
        int sync_seq;
        bool done;
        int error;
} Probe;

static void on_registry_global(void *data, uint32_t id, uint32_t permissions, const char *type,
                               uint32_t version, const struct spa_dict *props) {
        Probe *p = data;
        const char *cls, *node, *desc, *prio;
        AudioDevice *d;

        if (!props || strcmp(type, PW_TYPE_INTERFACE_Node) != 0)
                return;
        cls = spa_dict_lookup(props, PW_KEY_MEDIA_CLASS);
        node = spa_dict_lookup(props, PW_KEY_NODE_NAME);
        if (!cls || !node || (strcmp(cls, AUDIO_CLASS_SOURCE) != 0 && strcmp(cls, AUDIO_CLASS_SINK) != 0))
                return;
        desc = spa_dict_lookup(props, PW_KEY_NODE_DESCRIPTION);
        prio = spa_dict_lookup(props, PW_KEY_PRIORITY_SESSION);
        d = g_new0(AudioDevice, 1);
        d->node = g_strdup(node);
        d->description = g_strdup(desc ? desc : node);
        d->priority = prio ? g_ascii_strtoll(prio, NULL, 10) : 0;
        g_ptr_array_add(strcmp(cls, AUDIO_CLASS_SOURCE) == 0 ? p->sources : p->sinks, d);
}

static const struct pw_registry_events registry_events = {
        PW_VERSION_REGISTRY_EVENTS,
        .global = on_registry_global,
};

static void on_core_done(void *data, uint32_t id, int seq) {
        Probe *p = data;

        if (id == PW_ID_CORE && seq == p->sync_seq)
                p->done = true;
}

static void on_core_error(void *data, uint32_t id, int seq, int res, const char *message) {
        Probe *p = data;

        if (id == PW_ID_CORE) {
                p->error = res < 0 ? res : -EIO;
                p->done = true;
        }
}

static const struct pw_core_events core_events = {
        PW_VERSION_CORE_EVENTS,
        .done = on_core_done,
        .error = on_core_error,
};

static int compare_devices(gconstpointer x, gconstpointer y) {
        return g_strcmp0((*(AudioDevice *const *) x)->node, (*(AudioDevice *const *) y)->node);
}

/* No user choice is known here: WirePlumber's default is the highest priority.session. */
static void mark_default_and_sort(GPtrArray *list) {
        AudioDevice *best = NULL;

        for (guint i = 0; i < list->len; i++) {
                AudioDevice *d = list->pdata[i];
                if (!best || d->priority > best->priority)
                        best = d;
        }
        if (best)
                best->is_default = true;
        g_ptr_array_sort(list, compare_devices);
}

static gpointer pw_init_once(gpointer unused) {
        pw_init(NULL, NULL);
        return NULL;
}

/* Sources and sinks in one registry round trip: 0, -ENOTSUP (PipeWire not there), -ETIMEDOUT.
 * The lists are set (possibly empty) in every case. */
static int audio_devices_probe(GPtrArray **ret_sources, GPtrArray **ret_sinks) {
        static GOnce once = G_ONCE_INIT;
        struct pw_main_loop *loop;
        struct pw_context *context = NULL;
        struct pw_core *core = NULL;
        struct pw_registry *registry = NULL;
        struct spa_hook core_listener = {}, registry_listener = {};
        Probe p = {
                .sources = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free),
                .sinks = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free),
        };
        gint64 deadline = g_get_monotonic_time() + AUDIO_PROBE_TIMEOUT_MS * 1000;
        int r = 0;

        *ret_sources = p.sources;
        *ret_sinks = p.sinks;
        g_once(&once, pw_init_once, NULL);
        loop = pw_main_loop_new(NULL);
        if (!loop)
                return -ENOMEM;
        context = pw_context_new(pw_main_loop_get_loop(loop), NULL, 0);
        if (context)
                core = pw_context_connect(context, NULL, 0);
        if (!core) {
                r = -ENOTSUP;
                goto out;
        }
        pw_core_add_listener(core, &core_listener, &core_events, &p);
        registry = pw_core_get_registry(core, PW_VERSION_REGISTRY, 0);
        pw_registry_add_listener(registry, &registry_listener, &registry_events, &p);
        p.sync_seq = pw_core_sync(core, PW_ID_CORE, 0);
        while (!p.done) {
                gint64 left = deadline - g_get_monotonic_time();

                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                if (pw_loop_iterate(pw_main_loop_get_loop(loop), (int) (left / 1000) + 1) < 0 && errno != EINTR) {
                        r = -EIO;
                        break;
                }
        }
        if (r == 0 && p.error < 0)
                r = p.error;
        spa_hook_remove(&registry_listener);
        spa_hook_remove(&core_listener);
        pw_proxy_destroy((struct pw_proxy *) registry);
out:
        if (core)
                pw_core_disconnect(core);
        if (context)
                pw_context_destroy(context);
        pw_main_loop_destroy(loop);
        if (r < 0)
                log_warning_errno(r, "Cannot list PipeWire devices: %m");
        mark_default_and_sort(p.sources);
        mark_default_and_sort(p.sinks);
        return r;
}

GPtrArray *audio_devices_list(const char *class_name) {
        g_autoptr(GPtrArray) sources = NULL, sinks = NULL;

        (void) audio_devices_probe(&sources, &sinks);
        if (strcmp(class_name, AUDIO_CLASS_SOURCE) == 0)
                return g_steal_pointer(&sources);
        return g_steal_pointer(&sinks);
}

bool audio_devices_has(const char *class_name, const char *node) {
        g_autoptr(GPtrArray) list = audio_devices_list(class_name);

        for (guint i = 0; i < list->len; i++)
                if (strcmp(((AudioDevice *) list->pdata[i])->node, node) == 0)
                        return true;
        return false;
}

/* The configured device, or else the default one, of a list: its description, or NULL. */
static char *pick_device(GPtrArray *list, const char *wanted) {
        for (guint i = 0; i < list->len; i++) {
                AudioDevice *d = list->pdata[i];
                if (wanted && *wanted ? strcmp(d->node, wanted) == 0 : d->is_default)
                        return g_strdup(d->description);
        }
        return NULL;
}

int audio_devices_check(const Config *config, char **ret_microphone, char **ret_speaker, char **ret_message) {
        g_autoptr(GPtrArray) sources = NULL, sinks = NULL;
        g_autofree char *microphone = NULL, *speaker = NULL;
        int r;

        r = audio_devices_probe(&sources, &sinks);
        if (r < 0) {
                *ret_message = g_strdup_printf("cannot list audio devices: %s (is PipeWire running?)",
                                               g_strerror(-r));
                return -ENOTSUP;
        }
        microphone = pick_device(sources, config->input);
        speaker = pick_device(sinks, config->output);
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
