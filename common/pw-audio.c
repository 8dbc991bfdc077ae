/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include <glib.h>
#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>

#include "log.h"
#include "pw-audio.h"

#define SAMPLE_BYTES ((uint32_t) sizeof(int16_t))
#define MSEC_TO_SAMPLES(ms) ((size_t) (ms) * PW_AUDIO_RATE / 1000)
/* 10 ms periods: what a communication stream wants (the graph runs at its smallest request). */
#define STREAM_LATENCY "480/48000"
/* Playback ring: decoded network audio arrives in 20 ms bursts with jitter, PipeWire pulls a
 * period at a time. Playing starts (and starts again after running dry) once RING_START_MS are
 * queued; above RING_MAX_MS (clock drift between the far end and our sound card, a stall
 * upstream) the oldest audio is dropped down to RING_TRIM_MS so the delay cannot grow. */
#define RING_CAPACITY_MS 500
#define RING_START_MS 30
#define RING_MAX_MS 200
#define RING_TRIM_MS 60

struct PwAudio {
        gint n_ref; /* atomic */
        struct pw_thread_loop *loop;
        struct pw_context *context;
        struct pw_core *core;
};

struct PwAudioWatch {
        PwAudio *audio; /* ref */
        PwAudioWatchCallbacks cb;
        void *userdata;
        /* Loop thread only. */
        struct pw_registry *registry;
        struct spa_hook registry_listener, core_listener;
        int sync_seq;
};

struct PwAudioStream {
        PwAudio *audio; /* ref */
        PwAudioStreamConfig config; /* strings point at the copies below */
        char *name, *target, *role;

        /* Under the loop lock. */
        struct pw_stream *stream;
        struct spa_hook listener;

        /* Playback ring, under ring_lock: written by pw_audio_stream_write(), read by the
         * PipeWire thread. */
        GMutex ring_lock;
        int16_t *ring;
        size_t ring_size, ring_read, ring_fill;
        bool playing; /* enough was queued to start; false again after running dry */
        uint64_t underruns, dropped;
};

static gpointer pw_init_once(gpointer unused) {
        pw_init(NULL, NULL);
        return NULL;
}

int pw_audio_new(const char *thread_name, PwAudio **ret) {
        static GOnce once = G_ONCE_INIT;
        PwAudio *a;

        assert(ret);
        g_once(&once, pw_init_once, NULL);

        a = g_new0(PwAudio, 1);
        a->n_ref = 1;
        a->loop = pw_thread_loop_new(thread_name, NULL);
        if (!a->loop) {
                g_free(a);
                return -ENOMEM;
        }
        a->context = pw_context_new(pw_thread_loop_get_loop(a->loop), NULL, 0);
        if (!a->context) {
                pw_audio_unref(a);
                return -ENOMEM;
        }
        /* Connecting before the thread runs: nothing else uses the loop yet. */
        a->core = pw_context_connect(a->context, NULL, 0);
        if (!a->core) {
                int r = errno > 0 ? -errno : -EHOSTDOWN;

                pw_audio_unref(a);
                return r == -ENOENT || r == -ECONNREFUSED ? -EHOSTDOWN : r;
        }
        if (pw_thread_loop_start(a->loop) < 0) {
                pw_audio_unref(a);
                return -ENOMEM;
        }
        *ret = a;
        return 0;
}

PwAudio *pw_audio_ref(PwAudio *a) {
        if (a)
                g_atomic_int_inc(&a->n_ref);
        return a;
}

/* Never from the PipeWire thread (a stream callback): stopping the loop joins it. */
PwAudio *pw_audio_unref(PwAudio *a) {
        if (!a || !g_atomic_int_dec_and_test(&a->n_ref))
                return NULL;
        pw_thread_loop_stop(a->loop);
        if (a->core)
                pw_core_disconnect(a->core);
        if (a->context)
                pw_context_destroy(a->context);
        pw_thread_loop_destroy(a->loop);
        g_free(a);
        return NULL;
}

static void ring_read(PwAudioStream *s, int16_t *out, size_t n) {
        /* A period longer than the thresholds (a graph running at 2048 samples) must not run dry
         * every other period: keep 10 ms beyond one period. */
        size_t start = MAX(MSEC_TO_SAMPLES(RING_START_MS), n + MSEC_TO_SAMPLES(10));
        size_t trim_to = MAX(MSEC_TO_SAMPLES(RING_TRIM_MS), start + n);
        size_t got = 0;

        g_mutex_lock(&s->ring_lock);
        if (!s->playing && s->ring_fill >= start)
                s->playing = true;
        if (s->playing) {
                if (s->ring_fill > MAX(MSEC_TO_SAMPLES(RING_MAX_MS), trim_to + n)) {
                        size_t drop = s->ring_fill - trim_to;

                        s->ring_read = (s->ring_read + drop) % s->ring_size;
                        s->ring_fill -= drop;
                        s->dropped += drop;
                }
                got = MIN(n, s->ring_fill);
                for (size_t done = 0; done < got;) {
                        size_t chunk = MIN(got - done, s->ring_size - s->ring_read);

                        memcpy(out + done, s->ring + s->ring_read, chunk * SAMPLE_BYTES);
                        s->ring_read = (s->ring_read + chunk) % s->ring_size;
                        done += chunk;
                }
                s->ring_fill -= got;
                if (got < n) {
                        s->playing = false;
                        s->underruns++;
                }
        }
        g_mutex_unlock(&s->ring_lock);
        memset(out + got, 0, (n - got) * SAMPLE_BYTES);
}

size_t pw_audio_stream_write(PwAudioStream *s, const int16_t *samples, size_t n) {
        size_t put;

        assert(s);
        assert(s->config.direction == PW_AUDIO_PLAYBACK && !s->config.fill);
        g_mutex_lock(&s->ring_lock);
        put = MIN(n, s->ring_size - s->ring_fill);
        for (size_t done = 0; done < put;) {
                size_t at = (s->ring_read + s->ring_fill) % s->ring_size;
                size_t chunk = MIN(put - done, s->ring_size - at);

                memcpy(s->ring + at, samples + done, chunk * SAMPLE_BYTES);
                s->ring_fill += chunk;
                done += chunk;
        }
        s->dropped += n - put;
        g_mutex_unlock(&s->ring_lock);
        return put;
}

void pw_audio_stream_get_stats(PwAudioStream *s, uint64_t *ret_underruns, uint64_t *ret_dropped) {
        g_mutex_lock(&s->ring_lock);
        if (ret_underruns)
                *ret_underruns = s->underruns;
        if (ret_dropped)
                *ret_dropped = s->dropped;
        g_mutex_unlock(&s->ring_lock);
}

/* PipeWire's data thread. */
static void on_process(void *userdata) {
        PwAudioStream *s = userdata;
        struct pw_buffer *b = pw_stream_dequeue_buffer(s->stream);
        struct spa_data *d;

        if (!b)
                return;
        d = &b->buffer->datas[0];
        if (!d->data)
                goto done;
        if (s->config.direction == PW_AUDIO_CAPTURE) {
                uint32_t offset = MIN(d->chunk->offset, d->maxsize);
                uint32_t size = MIN(d->chunk->size, d->maxsize - offset);

                if (size >= SAMPLE_BYTES && s->config.captured)
                        s->config.captured((const int16_t *) ((const uint8_t *) d->data + offset),
                                           size / SAMPLE_BYTES, s->config.userdata);
        } else {
                size_t n = d->maxsize / SAMPLE_BYTES;

                if (b->requested > 0 && b->requested < n)
                        n = b->requested;
                if (s->config.fill)
                        s->config.fill(d->data, n, s->config.userdata);
                else
                        ring_read(s, d->data, n);
                if (s->config.played)
                        s->config.played(d->data, n, s->config.userdata);
                d->chunk->offset = 0;
                d->chunk->stride = SAMPLE_BYTES;
                d->chunk->size = n * SAMPLE_BYTES;
        }
done:
        pw_stream_queue_buffer(s->stream, b);
}

/* PipeWire's loop thread. */
static void on_state_changed(void *userdata, enum pw_stream_state old, enum pw_stream_state state,
                             const char *error) {
        PwAudioStream *s = userdata;

        log_debug("PipeWire stream '%s': %s -> %s%s%s", s->name, pw_stream_state_as_string(old),
                  pw_stream_state_as_string(state), error ? ": " : "", error ? error : "");
        /* 0.3.65 reports a lost PipeWire connection as UNCONNECTED with an error ("connection
         * error"), not as ERROR; our own disconnects come without one. */
        if ((state == PW_STREAM_STATE_ERROR || (state == PW_STREAM_STATE_UNCONNECTED && error)) && s->config.failed)
                s->config.failed(error ? error : "stream error", s->config.userdata);
}

static const struct pw_stream_events stream_events = {
        PW_VERSION_STREAM_EVENTS,
        .state_changed = on_state_changed,
        .process = on_process,
};

/* Loop lock held. Disconnecting first: removing the listener of a connected stream clears its
 * process callback without telling the data thread (0.3.65 hook_removed()). */
static void stream_disconnect(PwAudioStream *s) {
        if (!s->stream)
                return;
        pw_stream_disconnect(s->stream);
        spa_hook_remove(&s->listener);
        g_clear_pointer(&s->stream, pw_stream_destroy);
}

/* Loop lock held. */
static int stream_connect(PwAudioStream *s) {
        bool capture = s->config.direction == PW_AUDIO_CAPTURE;
        struct spa_audio_info_raw info = {
                .format = SPA_AUDIO_FORMAT_S16,
                .rate = PW_AUDIO_RATE,
                .channels = 1,
                .position = { SPA_AUDIO_CHANNEL_MONO },
        };
        uint8_t pod[512];
        struct spa_pod_builder builder = SPA_POD_BUILDER_INIT(pod, sizeof(pod));
        const struct spa_pod *params[1];
        struct pw_properties *props;
        int r;

        props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY,
                                  capture ? "Capture" : "Playback", PW_KEY_NODE_LATENCY, STREAM_LATENCY, NULL);
        if (!props)
                return -ENOMEM;
        if (s->role)
                pw_properties_set(props, PW_KEY_MEDIA_ROLE, s->role);
        if (s->target)
                pw_properties_set(props, PW_KEY_TARGET_OBJECT, s->target);
        if (s->config.monitor)
                pw_properties_set(props, PW_KEY_STREAM_CAPTURE_SINK, "true");

        s->stream = pw_stream_new(s->audio->core, s->name, props); /* takes props */
        if (!s->stream)
                return errno > 0 ? -errno : -ENOMEM;
        pw_stream_add_listener(s->stream, &s->listener, &stream_events, s);
        params[0] = spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat, &info);
        /* RT_PROCESS: process runs on PipeWire's data thread, and pw_stream_disconnect() takes
         * the node out of that thread's graph synchronously, so no process call can come after
         * it. Without the flag 0.3.65 queues each process call onto the loop thread
         * (do_call_process) with no way to cancel it: a stream destroyed meanwhile is used after
         * free (a crash caught at the end of calls). */
        r = pw_stream_connect(s->stream, capture ? PW_DIRECTION_INPUT : PW_DIRECTION_OUTPUT, PW_ID_ANY,
                              PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS | PW_STREAM_FLAG_RT_PROCESS,
                              params, 1);
        if (r < 0)
                stream_disconnect(s);
        return r;
}

int pw_audio_stream_new(PwAudio *a, const PwAudioStreamConfig *config, PwAudioStream **ret) {
        PwAudioStream *s;
        int r;

        assert(a);
        assert(config);
        assert(ret);

        s = g_new0(PwAudioStream, 1);
        s->audio = pw_audio_ref(a);
        s->config = *config;
        s->name = g_strdup(config->name ? config->name : "bwcall");
        s->target = config->target && *config->target ? g_strdup(config->target) : NULL;
        s->role = g_strdup(config->role);
        s->config.name = s->name;
        s->config.target = s->target;
        s->config.role = s->role;
        g_mutex_init(&s->ring_lock);
        if (config->direction == PW_AUDIO_PLAYBACK && !config->fill) {
                s->ring_size = MSEC_TO_SAMPLES(RING_CAPACITY_MS);
                s->ring = g_new0(int16_t, s->ring_size);
        }

        pw_thread_loop_lock(a->loop);
        r = stream_connect(s);
        pw_thread_loop_unlock(a->loop);
        if (r < 0) {
                pw_audio_stream_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int pw_audio_stream_set_target(PwAudioStream *s, const char *target) {
        char *old;
        int r;

        assert(s);
        pw_thread_loop_lock(s->audio->loop);
        stream_disconnect(s);
        old = s->target;
        s->target = target && *target ? g_strdup(target) : NULL;
        r = stream_connect(s);
        if (r < 0) {
                /* Back to where it was rather than no audio at all. */
                g_free(s->target);
                s->target = TAKE_PTR(old);
                (void) stream_connect(s);
        }
        s->config.target = s->target;
        pw_thread_loop_unlock(s->audio->loop);
        g_free(old);
        return r;
}

PwAudioStream *pw_audio_stream_free(PwAudioStream *s) {
        if (!s)
                return NULL;
        pw_thread_loop_lock(s->audio->loop);
        stream_disconnect(s);
        pw_thread_loop_unlock(s->audio->loop);
        pw_audio_unref(s->audio);
        g_mutex_clear(&s->ring_lock);
        g_free(s->ring);
        g_free(s->name);
        g_free(s->target);
        g_free(s->role);
        g_free(s);
        return NULL;
}

/* ---- node watch (PipeWire's loop thread) ---- */

static void on_registry_global(void *userdata, uint32_t id, uint32_t permissions, const char *type,
                               uint32_t version, const struct spa_dict *props) {
        PwAudioWatch *w = userdata;
        const char *media_class, *name, *description, *priority;
        PwAudioNode node;

        if (!props || strcmp(type, PW_TYPE_INTERFACE_Node) != 0)
                return;
        media_class = spa_dict_lookup(props, PW_KEY_MEDIA_CLASS);
        name = spa_dict_lookup(props, PW_KEY_NODE_NAME);
        if (!media_class || !name ||
            (strcmp(media_class, "Audio/Source") != 0 && strcmp(media_class, "Audio/Sink") != 0))
                return;
        description = spa_dict_lookup(props, PW_KEY_NODE_DESCRIPTION);
        priority = spa_dict_lookup(props, PW_KEY_PRIORITY_SESSION);
        node = (PwAudioNode) {
                .id = id,
                .name = name,
                .description = description ? description : name,
                .media_class = media_class,
                .priority = priority ? g_ascii_strtoll(priority, NULL, 10) : 0,
        };
        w->cb.added(&node, w->userdata);
}

static void on_registry_global_remove(void *userdata, uint32_t id) {
        PwAudioWatch *w = userdata;

        /* Ids of other objects too: the watcher ignores the ones it does not know. */
        w->cb.removed(id, w->userdata);
}

static const struct pw_registry_events registry_events = {
        PW_VERSION_REGISTRY_EVENTS,
        .global = on_registry_global,
        .global_remove = on_registry_global_remove,
};

static void on_core_done(void *userdata, uint32_t id, int seq) {
        PwAudioWatch *w = userdata;

        if (id == PW_ID_CORE && seq == w->sync_seq && w->cb.synced)
                w->cb.synced(w->userdata);
}

static void on_core_error(void *userdata, uint32_t id, int seq, int res, const char *message) {
        PwAudioWatch *w = userdata;

        log_debug("PipeWire: error on object %u: %s (%s)", id, message ? message : "", g_strerror(-res));
        /* -EPIPE on the core: the connection is gone. */
        if (id == PW_ID_CORE && res == -EPIPE && w->cb.disconnected)
                w->cb.disconnected(w->userdata);
}

static const struct pw_core_events core_events = {
        PW_VERSION_CORE_EVENTS,
        .done = on_core_done,
        .error = on_core_error,
};

int pw_audio_watch_nodes(PwAudio *a, const PwAudioWatchCallbacks *cb, void *userdata, PwAudioWatch **ret) {
        PwAudioWatch *w;

        assert(a);
        assert(cb && cb->added && cb->removed);
        assert(ret);

        w = g_new0(PwAudioWatch, 1);
        w->audio = pw_audio_ref(a);
        w->cb = *cb;
        w->userdata = userdata;
        pw_thread_loop_lock(a->loop);
        w->registry = pw_core_get_registry(a->core, PW_VERSION_REGISTRY, 0);
        if (!w->registry) {
                pw_thread_loop_unlock(a->loop);
                pw_audio_unref(w->audio);
                g_free(w);
                return -ENOMEM;
        }
        pw_core_add_listener(a->core, &w->core_listener, &core_events, w);
        pw_registry_add_listener(w->registry, &w->registry_listener, &registry_events, w);
        w->sync_seq = pw_core_sync(a->core, PW_ID_CORE, 0);
        pw_thread_loop_unlock(a->loop);
        *ret = w;
        return 0;
}

PwAudioWatch *pw_audio_watch_free(PwAudioWatch *w) {
        if (!w)
                return NULL;
        pw_thread_loop_lock(w->audio->loop);
        spa_hook_remove(&w->registry_listener);
        spa_hook_remove(&w->core_listener);
        pw_proxy_destroy((struct pw_proxy *) w->registry);
        pw_thread_loop_unlock(w->audio->loop);
        pw_audio_unref(w->audio);
        g_free(w);
        return NULL;
}
