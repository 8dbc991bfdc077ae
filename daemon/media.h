/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "macro.h"

/* One call's WebRTC media: a webrtcbin with a PipeWire microphone and speaker (streams of our
 * own, common/pw-audio.h), both with media.role=Communication. Non-trickle: the offer is handed out
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
        const char *input_target;         /* microphone node.name; NULL = default source */
        const char *output_target;        /* speaker node.name; NULL = default sink */
        /* Voice processing of the microphone (webrtcdsp); the echo canceller learns from what
         * the first audio receive branch plays (webrtcechoprobe). */
        bool echo_cancel;
        bool noise_suppression;
        bool gain_control;
} MediaConfig;

typedef struct MediaCallbacks {
        /* The local offer (complete SDP text, all candidates) is ready; or error < 0. */
        void (*offer_ready)(Media *m, const char *sdp, int error, void *userdata);
        /* First decoded remote audio buffer (SDK: callShowStreams). */
        void (*first_audio)(Media *m, void *userdata);
        /* Fatal media problem after start (ICE failed, pipeline error). error is negative errno,
         * message human-readable. */
        void (*failed)(Media *m, int error, const char *message, void *userdata);
        /* An RFC 4733 telephone-event from the far end, once per event (not per packet):
         * digit is one of 0-9 * # A-D. Optional. */
        void (*dtmf_received)(Media *m, char digit, void *userdata);
        /* A queued digit starts going out now, for duration_ms. Optional. */
        void (*dtmf_sending)(Media *m, char digit, unsigned duration_ms, void *userdata);
        /* All digits queued with media_send_dtmf() went out. Optional. */
        void (*dtmf_sent)(Media *m, void *userdata);
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

/* Incoming calls: builds the pipeline as the answerer for the far end's offer (the SDP of an
 * INVITE) and calls offer_ready once with the complete SDP *answer* (all candidates), or an
 * error (-EBADMSG: the offer is not usable WebRTC audio; -ENODEV: devices/elements missing).
 * Same codecs as media_new_offer(); the send codec follows the offer's first supported one. */
int media_new_answer(const MediaConfig *config, const char *offer_sdp, const MediaCallbacks *cb,
                     void *userdata, Media **ret);

/* Queues RFC 4733 telephone-events: digits from "0123456789*#ABCD" (upper case), each sent for
 * duration_ms (70–6000) with gap_ms (>= 50) between; ',' pauses 2 s. -EINVAL for any other
 * character (nothing is queued then), -ENOTCONN before the media is up, -ENOTSUP when the far
 * end did not negotiate telephone-event. dtmf_sent fires when the queue is empty. */
int media_send_dtmf(Media *m, const char *digits, unsigned duration_ms, unsigned gap_ms);
bool media_has_telephone_event(const Media *m);

/* Hold: stop (false) or resume (true) sending and playing audio without renegotiating the
 * WebRTC session (the re-INVITE only changes the SDP direction on the SIP side). Independent
 * of mute. */
void media_set_active(Media *m, bool active);

/* Moves the call's microphone / speaker to another PipeWire node (NULL or "" = the system
 * default) mid-call: the PipeWire streams are relinked, the WebRTC session and SIP do not
 * notice. Receive branches added later use the new speaker too. */
int media_set_input(Media *m, const char *node);
int media_set_output(Media *m, const char *node);

/* The microphone as PipeWire delivers it, before mute and hold: the level of its last period in
 * dBFS (MEDIA_SILENCE_DBFS for digital silence or nothing yet), and when it last delivered
 * anything but digital silence (CLOCK_MONOTONIC µs, 0 = never). Any thread. */
#define MEDIA_SILENCE_DBFS (-100)
void media_get_input_level(Media *m, double *ret_dbfs, uint64_t *ret_sound_usec);

/* The current local SDP text (after ICE gathering), for re-INVITEs and 200 OK retransmits;
 * NULL before it exists. Owned by the Media. */
const char *media_get_local_sdp(const Media *m);

/* ICE restart for a re-INVITE (webrtcbin 1.22 cannot do it itself): restarts libnice with new
 * local credentials, which media_get_local_sdp() carries from now on (o= version + 1). Same
 * local candidates: a restart re-checks the paths, it does not pick up new addresses. */
int media_ice_restart(Media *m);

/* A new Media taking over a call (media renewal): its local description continues the previous
 * one's SDP session (RFC 3264 §8: same o= session id, a higher version). */
int media_continue_session(Media *m, const Media *previous);
/* The local address the media flows from (ICE's selected pair), or NULL before there is one. */
char *media_selected_local_address(Media *m);
/* Whether a renewal's answer comes with another DTLS association (RFC 8842 a=tls-id) than the
 * far end's description m has; true when the answer carries no tls-id (nothing to tell). */
bool media_answer_is_new_association(Media *m, const char *answer_sdp);
/* The answer to that re-INVITE: its credentials and candidates go to libnice. */
int media_ice_apply_remote(Media *m, const char *remote_sdp);

/* Mute: the microphone branch sends silence (nothing is renegotiated). */
void media_set_muted(Media *m, bool muted);
bool media_get_muted(const Media *m);

/* Stats snapshot (codec, packets/bytes sent and received, lost, jitter, rtt, first audio time).
 * Fills a GVariant a{sv} (floating). Never NULL. */
GVariant *media_get_stats(Media *m);

/* Audio RTP packets received so far (cheap; for the media watchdog). */
uint64_t media_get_rtp_received(const Media *m);

/* CLOCK_REALTIME µs of the first decoded remote audio, 0 before. */
uint64_t media_first_audio_usec(const Media *m);

/* Stops the pipeline (state NULL, on a teardown thread so the caller never blocks) and frees
 * everything; NULL-safe; returns NULL. No callback fires after this returns. */
Media *media_free(Media *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Media *, media_free);

/* Create a throwaway DTLS element so the process-wide certificate is generated at start-up
 * instead of during the first call (platform-notes §1). Call once from main. */
void media_prewarm(void);
/* Waits for the prewarm thread and for pipelines still stopping (at most 2 s); call before exit. */
void media_prewarm_join(void);
