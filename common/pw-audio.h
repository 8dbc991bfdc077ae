/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Audio to and from PipeWire through streams of our own: S16 mono at PW_AUDIO_RATE, one
 * pw_thread_loop per PwAudio connection.
 *
 * Why not GStreamer's pipewiresrc/pipewiresink: in 0.3.65 they deadlock (caught in bwcalld a
 * second into calls): PipeWire's loop thread, holding the loop lock while a node changes state,
 * waits for pipewiresink's buffer-pool lock, while the sink's streaming thread holds that pool
 * lock and waits for the loop lock; pipewiresrc then waits on the same loop and both directions
 * of the call fall silent. WebKit disables the plugin for this class of bug (pipewire#5171).
 * Here PipeWire's threads never wait for anything but a ring buffer's short mutex or appsrc's
 * queue, and other threads take the loop lock only to create, retarget and destroy streams. */

#define PW_AUDIO_RATE 48000

typedef struct PwAudio PwAudio;
typedef struct PwAudioStream PwAudioStream;

typedef enum PwAudioDirection {
        PW_AUDIO_CAPTURE,
        PW_AUDIO_PLAYBACK,
} PwAudioDirection;

typedef struct PwAudioStreamConfig {
        PwAudioDirection direction;
        const char *name;   /* media.name, for pw-dump and pavucontrol */
        const char *target; /* node.name to link to; NULL or "" = the system default */
        const char *role;   /* media.role, e.g. "Communication"; NULL = none */
        bool monitor;       /* capture: record what the sink `target` plays (its monitor) */
        /* Capture: each period's samples, on PipeWire's data thread (real-time when PipeWire can
         * make it so: no waiting). */
        void (*captured)(const int16_t *samples, size_t n, void *userdata);
        /* Playback: fills n samples on PipeWire's data thread. NULL: the stream plays what
         * pw_audio_stream_write() queued (a jitter-absorbing ring, silence when empty). */
        void (*fill)(int16_t *samples, size_t n, void *userdata);
        /* Playback: what was just handed to PipeWire to play, on the data thread; for an echo
         * canceller's reference. Optional. */
        void (*played)(const int16_t *samples, size_t n, void *userdata);
        /* The stream failed (PipeWire's message), on PipeWire's loop thread. Optional. */
        void (*failed)(const char *message, void *userdata);
        void *userdata;
} PwAudioStreamConfig;

/* Connects to PipeWire (PIPEWIRE_REMOTE or the default socket) and starts the loop thread
 * (PipeWire adds a data thread for the streams' audio).
 * -EHOSTDOWN when PipeWire is not running, -ENOMEM. */
int pw_audio_new(const char *thread_name, PwAudio **ret);
PwAudio *pw_audio_ref(PwAudio *a);
PwAudio *pw_audio_unref(PwAudio *a);

/* Creates and connects a stream; WirePlumber links it. The stream holds a reference on `a`.
 * The callbacks may run as soon as this returns, and never after pw_audio_stream_free() returns. */
int pw_audio_stream_new(PwAudio *a, const PwAudioStreamConfig *config, PwAudioStream **ret);
PwAudioStream *pw_audio_stream_free(PwAudioStream *s);

/* Links the stream to another node (NULL or "" = the system default) without touching the
 * caller's side: the stream is reconnected, queued playback audio is kept. */
int pw_audio_stream_set_target(PwAudioStream *s, const char *target);

/* Playback streams without a fill callback: queues samples, from any one thread. Samples beyond
 * what the ring holds are dropped. Returns the number queued. */
size_t pw_audio_stream_write(PwAudioStream *s, const int16_t *samples, size_t n);

/* Watching PipeWire's audio devices (Audio/Source and Audio/Sink nodes). The callbacks run on
 * PipeWire's loop thread; the node's strings are valid during the call only. */
typedef struct PwAudioNode {
        uint32_t id;
        const char *name;        /* node.name */
        const char *description; /* node.description, else node.name */
        const char *media_class; /* "Audio/Source" or "Audio/Sink" */
        int64_t priority;        /* priority.session */
} PwAudioNode;

typedef struct PwAudioWatchCallbacks {
        void (*added)(const PwAudioNode *node, void *userdata);
        void (*removed)(uint32_t id, void *userdata);
        /* The nodes there at the start have all been reported. */
        void (*synced)(void *userdata);
        /* PipeWire went away: no more events from this connection. */
        void (*disconnected)(void *userdata);
} PwAudioWatchCallbacks;

typedef struct PwAudioWatch PwAudioWatch;

int pw_audio_watch_nodes(PwAudio *a, const PwAudioWatchCallbacks *cb, void *userdata, PwAudioWatch **ret);
/* No callback runs after this returns. */
PwAudioWatch *pw_audio_watch_free(PwAudioWatch *w);

/* How often playback ran dry and had to play silence (after it had started), and how many
 * queued samples it dropped to keep the delay down; for logs and benchmarks. */
void pw_audio_stream_get_stats(PwAudioStream *s, uint64_t *ret_underruns, uint64_t *ret_dropped);
