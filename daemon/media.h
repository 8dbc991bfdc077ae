/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "macro.h"

/* One call's WebRTC media: a webrtcbin with the PipeWire microphone (pipewiresrc) and speaker
 * (pipewiresink), both with media.role=Communication. Non-trickle: the offer is handed out
 * only once ICE gathering is complete and carries every candidate. All callbacks run on the
 * thread-default GMainContext that was current when media_new() was called (the daemon's
 * main loop), never on GStreamer streaming threads. This file knows nothing about SIP or
 * D-Bus. */

typedef struct Media Media;

typedef struct MediaConfig {
        const char *const *ice_addresses; /* local addresses libnice may use; NULL = all */
        bool upnp;                        /* libnice UPnP-IGD; off by default */
        const char *const *stun_servers;  /* "stun://host:port" list; NULL = none */
        unsigned latency_ms;              /* webrtcbin jitter buffer; 0 = 40 ms default */
        const char *input_target;         /* pipewiresrc target-object; NULL = default source */
        const char *output_target;        /* pipewiresink target-object; NULL = default sink */
} MediaConfig;

typedef struct MediaCallbacks {
        /* The local offer (complete SDP text, all candidates) is ready; or error < 0. */
        void (*offer_ready)(Media *m, const char *sdp, int error, void *userdata);
        /* First decoded remote audio buffer (SDK: callShowStreams). */
        void (*first_audio)(Media *m, void *userdata);
        /* Fatal media problem after start (ICE failed, pipeline error). error is negative errno,
         * message human-readable. */
        void (*failed)(Media *m, int error, const char *message, void *userdata);
} MediaCallbacks;

/* Builds the pipeline and starts creating an offer (opus/48000 PT 111, PCMU 0, PCMA 8,
 * telephone-event 101 at 48000 and 126 at 8000; UDP/TLS/RTP/SAVPF, rtcp-mux, actpass).
 * offer_ready fires once. Returns 0 or negative errno (-ENODEV when an element is missing). */
int media_new_offer(const MediaConfig *config, const MediaCallbacks *cb, void *userdata, Media **ret);

/* Applies the gateway's SDP answer (from a 183 or a 200). Returns 0, -EBADMSG if the text is
 * not SDP or lacks what WebRTC needs (ice-ufrag/pwd, fingerprint, a candidate, rtcp-mux),
 * -EPROTO if webrtcbin rejects it. Applying a second answer identical to the first is a no-op
 * returning 0 (a 200 after a 183 with the same SDP). */
int media_set_answer(Media *m, const char *sdp);

/* Mute: the microphone branch sends silence (nothing is renegotiated). */
void media_set_muted(Media *m, bool muted);
bool media_get_muted(const Media *m);

/* Stats snapshot (codec, packets/bytes sent and received, lost, jitter, rtt, first audio time).
 * Fills a GVariant a{sv} (floating). Never NULL. */
GVariant *media_get_stats(Media *m);

/* CLOCK_REALTIME µs of the first decoded remote audio, 0 before. */
uint64_t media_first_audio_usec(const Media *m);

/* Stops the pipeline (state NULL) and frees everything; NULL-safe; returns NULL. No callback
 * fires after this returns. */
Media *media_free(Media *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Media *, media_free);

/* Create a throwaway DTLS element so the process-wide certificate is generated at start-up
 * instead of during the first call (platform-notes §1). Call once from main. */
void media_prewarm(void);
