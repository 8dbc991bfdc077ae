/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "audio-devices.h"
#include "log.h"
#include "pw-audio.h"

/* The message of the SDK's checkAvailableDevices() when there is no microphone. */
#define SDK_NO_MICROPHONE "Missing a microphone! Please connect one and reload"
/* GStreamer's PipeWire device provider (0.3.65) was tried first: its probe hung for ever
 * (pw_thread_loop_wait) when asked during a call, and left running it trips GStreamer assertions
 * when nodes go away; WebKit disables it (pipewire#5171). The registry is read directly. */
#define INITIAL_SYNC_TIMEOUT_USEC (1 * G_USEC_PER_SEC)
#define RECONNECT_SEC 3
/* A headset comes as several nodes within milliseconds: one `changed` for all of them. */
#define SETTLE_MSEC 100

struct AudioDevices {
        AudioDevicesChangedFunc changed;
        void *userdata;
        GMainContext *context;

        /* Main context only. */
        PwAudio *audio;
        PwAudioWatch *watch;
        GPtrArray *sources, *sinks; /* AudioDevice*, the snapshot handed out */
        bool available;
        guint reconnect_timer;

        /* Shared with PipeWire's loop thread. */
        GMutex lock;
        GCond synced_cond;
        GHashTable *nodes; /* id → Node* */
        bool synced;
        bool disconnected;
        GSource *refresh; /* queued snapshot, at most one */
};

/* A device as PipeWire's thread records it. */
typedef struct Node {
        AudioDevice device;
        bool source;
} Node;

static void audio_device_free(AudioDevice *d) {
        if (!d)
                return;
        g_free(d->node);
        g_free(d->description);
        g_free(d);
}

static void node_free(Node *n) {
        g_free(n->device.node);
        g_free(n->device.description);
        g_free(n);
}

static AudioDevice *audio_device_copy(const AudioDevice *d) {
        AudioDevice *c = g_new0(AudioDevice, 1);

        c->node = g_strdup(d->node);
        c->description = g_strdup(d->description);
        c->priority = d->priority;
        return c;
}

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

static bool lists_equal(const GPtrArray *a, const GPtrArray *b) {
        if (a->len != b->len)
                return false;
        for (guint i = 0; i < a->len; i++) {
                const AudioDevice *x = a->pdata[i], *y = b->pdata[i];
                if (strcmp(x->node, y->node) != 0 || strcmp(x->description, y->description) != 0 ||
                    x->is_default != y->is_default)
                        return false;
        }
        return true;
}

static void audio_devices_connect(AudioDevices *d);

/* Main context: the snapshot from what PipeWire's thread collected. Returns whether it differs
 * from the one before. */
static bool audio_devices_snapshot(AudioDevices *d) {
        g_autoptr(GPtrArray) sources = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free);
        g_autoptr(GPtrArray) sinks = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free);
        GHashTableIter iter;
        gpointer value;
        bool disconnected, same;

        g_mutex_lock(&d->lock);
        if (d->refresh) {
                /* Taken now; a change from here on queues a new one. */
                g_source_destroy(d->refresh);
                g_clear_pointer(&d->refresh, g_source_unref);
        }
        disconnected = d->disconnected;
        g_hash_table_iter_init(&iter, d->nodes);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
                const Node *n = value;
                g_ptr_array_add(n->source ? sources : sinks, audio_device_copy(&n->device));
        }
        g_mutex_unlock(&d->lock);

        if (disconnected) {
                log_warning("PipeWire went away; audio devices unknown until it is back.");
                d->watch = pw_audio_watch_free(d->watch);
                d->audio = pw_audio_unref(d->audio);
                d->available = false;
                g_ptr_array_set_size(sources, 0);
                g_ptr_array_set_size(sinks, 0);
                audio_devices_connect(d);
        }
        mark_default_and_sort(sources);
        mark_default_and_sort(sinks);
        same = lists_equal(sources, d->sources) && lists_equal(sinks, d->sinks);
        g_ptr_array_unref(d->sources);
        g_ptr_array_unref(d->sinks);
        d->sources = g_steal_pointer(&sources);
        d->sinks = g_steal_pointer(&sinks);
        if (!same)
                log_debug("Audio devices: %u source(s), %u sink(s).", d->sources->len, d->sinks->len);
        return !same;
}

static gboolean on_refresh(gpointer userdata) {
        AudioDevices *d = userdata;

        if (audio_devices_snapshot(d) && d->changed)
                d->changed(d, d->userdata);
        return G_SOURCE_REMOVE;
}

/* Lock held. */
static void queue_refresh(AudioDevices *d) {
        if (d->refresh)
                return;
        d->refresh = g_timeout_source_new(SETTLE_MSEC);
        g_source_set_callback(d->refresh, on_refresh, d, NULL);
        g_source_attach(d->refresh, d->context);
}

/* ---- PipeWire's loop thread ---- */

static void on_node_added(const PwAudioNode *node, void *userdata) {
        AudioDevices *d = userdata;
        Node *n = g_new0(Node, 1);

        n->device.node = g_strdup(node->name);
        n->device.description = g_strdup(node->description);
        n->device.priority = node->priority;
        n->source = strcmp(node->media_class, AUDIO_CLASS_SOURCE) == 0;
        g_mutex_lock(&d->lock);
        g_hash_table_replace(d->nodes, GUINT_TO_POINTER(node->id), n);
        if (d->synced)
                queue_refresh(d);
        g_mutex_unlock(&d->lock);
}

static void on_node_removed(uint32_t id, void *userdata) {
        AudioDevices *d = userdata;

        g_mutex_lock(&d->lock);
        if (g_hash_table_remove(d->nodes, GUINT_TO_POINTER(id)) && d->synced)
                queue_refresh(d);
        g_mutex_unlock(&d->lock);
}

static void on_synced(void *userdata) {
        AudioDevices *d = userdata;

        g_mutex_lock(&d->lock);
        d->synced = true;
        g_cond_broadcast(&d->synced_cond);
        queue_refresh(d);
        g_mutex_unlock(&d->lock);
}

static void on_disconnected(void *userdata) {
        AudioDevices *d = userdata;

        g_mutex_lock(&d->lock);
        d->disconnected = true;
        g_hash_table_remove_all(d->nodes);
        queue_refresh(d);
        g_mutex_unlock(&d->lock);
}

static const PwAudioWatchCallbacks watch_callbacks = {
        .added = on_node_added,
        .removed = on_node_removed,
        .synced = on_synced,
        .disconnected = on_disconnected,
};

/* ---- main context ---- */

static gboolean on_reconnect_timer(gpointer userdata) {
        AudioDevices *d = userdata;

        d->reconnect_timer = 0;
        audio_devices_connect(d);
        return G_SOURCE_REMOVE;
}

static void audio_devices_connect(AudioDevices *d) {
        gint64 deadline;
        int r;

        g_mutex_lock(&d->lock);
        d->synced = d->disconnected = false;
        g_mutex_unlock(&d->lock);

        r = pw_audio_new("bwcall-devices", &d->audio);
        if (r >= 0)
                r = pw_audio_watch_nodes(d->audio, &watch_callbacks, d, &d->watch);
        if (r < 0) {
                log_debug_errno(r, "Audio devices: cannot reach PipeWire (%m); trying again in %d s.",
                                RECONNECT_SEC);
                d->audio = pw_audio_unref(d->audio);
                d->reconnect_timer = g_timeout_add_seconds(RECONNECT_SEC, on_reconnect_timer, d);
                return;
        }

        /* The first answers (CheckAvailableDevices right after start) must see the devices. */
        deadline = g_get_monotonic_time() + INITIAL_SYNC_TIMEOUT_USEC;
        g_mutex_lock(&d->lock);
        while (!d->synced && !d->disconnected)
                if (!g_cond_wait_until(&d->synced_cond, &d->lock, deadline))
                        break;
        if (!d->synced)
                log_warning("Audio devices: PipeWire did not list its devices within 1 s.");
        g_mutex_unlock(&d->lock);
        d->available = true;
}

AudioDevices *audio_devices_new(AudioDevicesChangedFunc changed, void *userdata) {
        AudioDevices *d = g_new0(AudioDevices, 1);

        d->changed = changed;
        d->userdata = userdata;
        d->context = g_main_context_ref_thread_default();
        d->sources = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free);
        d->sinks = g_ptr_array_new_with_free_func((GDestroyNotify) audio_device_free);
        g_mutex_init(&d->lock);
        g_cond_init(&d->synced_cond);
        d->nodes = g_hash_table_new_full(NULL, NULL, NULL, (GDestroyNotify) node_free);
        audio_devices_connect(d);
        /* The first snapshot now rather than after the settle time; nobody to tell yet. */
        (void) audio_devices_snapshot(d);
        return d;
}

AudioDevices *audio_devices_free(AudioDevices *d) {
        if (!d)
                return NULL;
        /* The watch first: no callback after it is gone. */
        pw_audio_watch_free(d->watch);
        pw_audio_unref(d->audio);
        if (d->reconnect_timer)
                g_source_remove(d->reconnect_timer);
        if (d->refresh) {
                g_source_destroy(d->refresh);
                g_source_unref(d->refresh);
        }
        g_hash_table_unref(d->nodes);
        g_cond_clear(&d->synced_cond);
        g_mutex_clear(&d->lock);
        g_ptr_array_unref(d->sources);
        g_ptr_array_unref(d->sinks);
        g_main_context_unref(d->context);
        g_free(d);
        return NULL;
}

bool audio_devices_available(const AudioDevices *d) {
        return d->available;
}

const GPtrArray *audio_devices_get(const AudioDevices *d, const char *class_name) {
        return strcmp(class_name, AUDIO_CLASS_SOURCE) == 0 ? d->sources : d->sinks;
}

bool audio_devices_has(const AudioDevices *d, const char *class_name, const char *node) {
        const GPtrArray *list = audio_devices_get(d, class_name);

        for (guint i = 0; i < list->len; i++)
                if (strcmp(((const AudioDevice *) list->pdata[i])->node, node) == 0)
                        return true;
        return false;
}

/* The chosen device, or else the default one, of a list: its description, or NULL. */
static char *pick_device(const GPtrArray *list, const char *wanted) {
        for (guint i = 0; i < list->len; i++) {
                const AudioDevice *d = list->pdata[i];
                if (wanted && *wanted ? strcmp(d->node, wanted) == 0 : d->is_default)
                        return g_strdup(d->description);
        }
        return NULL;
}

int audio_devices_check(const AudioDevices *d, const char *input, const char *output, char **ret_microphone,
                        char **ret_speaker, char **ret_message) {
        g_autofree char *microphone = NULL, *speaker = NULL;

        if (!d->available) {
                *ret_message = g_strdup("cannot list audio devices: PipeWire is not running");
                return -ENOTSUP;
        }
        microphone = pick_device(d->sources, input);
        speaker = pick_device(d->sinks, output);
        if (!microphone) {
                *ret_message = input && *input ? g_strdup_printf("The configured microphone '%s' is not connected", input)
                                               : g_strdup(SDK_NO_MICROPHONE);
                return -ENODEV;
        }
        if (!speaker) {
                *ret_message = output && *output
                                       ? g_strdup_printf("The configured speaker '%s' is not connected", output)
                                       : g_strdup("Missing a speaker! Please connect one and reload");
                return -ENODEV;
        }
        *ret_microphone = TAKE_PTR(microphone);
        *ret_speaker = TAKE_PTR(speaker);
        return 0;
}
