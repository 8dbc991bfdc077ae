/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* One call's media in bwgw-sim: a webrtcbin fed by a tone or by the far end's own audio, as the
 * ANSWERER (calls from the client) or as the OFFERER (calls the gateway makes to the client),
 * with every received second of audio reduced to its dominant frequency, RFC 4733 digits
 * detected and sent, and a valve that stops sending (hold, silent party). Knows nothing about
 * SIP. All callbacks run on the main context that was current at media_new_*() time, never on
 * GStreamer threads, and never from inside a media_*() call. */

typedef struct Media Media;

typedef enum MediaMode {
        MEDIA_TONE,   /* a sine (tone_hz) */
        MEDIA_ECHO,   /* the far end's decoded audio, sent back */
        MEDIA_SILENT, /* the send branch is shut from the start: no RTP at all */
} MediaMode;

typedef enum MediaCodec {
        MEDIA_CODEC_OPUS, /* opus/48000/2 */
        MEDIA_CODEC_PCMU, /* PCMU/8000 */
        MEDIA_CODEC_PCMA, /* PCMA/8000 */
} MediaCodec;

/* "opus", "pcmu", "pcma". */
const char *media_codec_name(MediaCodec codec);
/* Case-insensitive; -EINVAL for anything else. */
int media_codec_from_string(const char *s, MediaCodec *ret);

typedef struct MediaCallbacks {
        /* The local SDP as it should go on the wire (one UDP host candidate, msid, rtcp-mux,
         * telephone-event): the answer for media_new_answer(), the offer for media_new_offer().
         * Or error < 0 and a message. Fires once. */
        void (*sdp_ready)(Media *m, const char *sdp, int error, const char *message, void *userdata);
        /* webrtcbin's connection-state reached "connected" (ICE + DTLS up). Fires once. */
        void (*connected)(Media *m, void *userdata);
        /* One second of decoded far-end audio: dominant frequency and level. */
        void (*frequency)(Media *m, double hz, double dbfs, void *userdata);
        /* The first decoded far-end audio above -50 dBFS (once per call). */
        void (*first_audio)(Media *m, double dbfs, void *userdata);
        /* An RFC 4733 telephone-event arrived ("0"-"9", "*", "#", "A"-"D"). */
        void (*dtmf)(Media *m, const char *digit, void *userdata);
        /* A digit queued with media_send_dtmf() starts going out now. */
        void (*dtmf_sent)(Media *m, const char *digit, void *userdata);
        /* Something broke after the local SDP was delivered (pipeline error, ICE/DTLS failed,
         * webrtcbin refused the answer). */
        void (*failed)(Media *m, const char *message, void *userdata);
} MediaCallbacks;

/* Checks that the offer is SDP with an audio section offering codec. Returns 0, -EBADMSG if the
 * text is not SDP or has no audio m-line, -EPROTONOSUPPORT if the codec is not offered. */
int media_check_offer(const char *offer_sdp, MediaCodec codec);

/* Builds and starts the pipeline and the answer to offer_sdp, sending codec (with the offer's
 * PT for it). ICE is restricted to ice_address with UPnP off. Returns 0, or a negative errno
 * (-EBADMSG/-EPROTONOSUPPORT as for media_check_offer, -ENODEV when a GStreamer element is
 * missing). */
int media_new_answer(const char *offer_sdp, MediaMode mode, MediaCodec codec, double tone_hz,
                     const char *ice_address, const MediaCallbacks *cb, void *userdata, Media **ret);

/* Builds and starts the pipeline as the OFFERER: it sends codec, and the offer lists codec
 * first, then Opus or PCMU (whichever codec is not), then telephone-event/48000 (PT 101) and
 * telephone-event/8000 (PT 126). sdp_ready delivers the offer. */
int media_new_offer(MediaMode mode, MediaCodec codec, double tone_hz, const char *ice_address,
                    const MediaCallbacks *cb, void *userdata, Media **ret);

/* Offerer only: applies the far end's answer. Returns 0, -EBADMSG (not SDP, no audio section),
 * -EPROTONOSUPPORT (the answer picked a codec this Media does not send; the answer is applied
 * anyway and *ret_codec names it), -EALREADY when an answer was applied before (ignored). The
 * result of webrtcbin's set-remote-description arrives through failed() if it fails. */
int media_set_answer(Media *m, const char *answer_sdp, const char **ret_codec);

/* Opens (true) or shuts (false) the send branch (hold). A MEDIA_SILENT Media never sends. */
void media_set_sending(Media *m, bool sending);

/* Queues RFC 4733 digits ("0-9*#A-D", upper case), each sent for duration_ms with 250 ms between
 * them. -EINVAL for a bad digit (nothing queued), -ENOTCONN before the media is connected,
 * -ENOTSUP when telephone-event was not negotiated at the send codec's clock rate. */
int media_send_dtmf(Media *m, const char *digits, unsigned duration_ms);

/* ICE restart as the ANSWERER, at the libnice level only (webrtcbin 1.22 cannot restart ICE: it
 * keeps the old credentials in re-answers and never gathers again; README.md, "ICE restart"). */
typedef struct MediaIceRestart {
        char *old_remote_ufrag; /* the far end's ufrag before this offer */
        char *remote_ufrag;     /* the offer's */
        char *local_ufrag;      /* our new credentials, for the answer */
        char *local_pwd;
        unsigned n_candidates;  /* the offer's candidates libnice took */
} MediaIceRestart;

void media_ice_restart_clear(MediaIceRestart *r);

/* When offer_sdp (an in-dialog offer) carries an a=ice-ufrag or a=ice-pwd other than the far end's
 * current ones: restarts our libnice stream, gives it new random local credentials, the offer's
 * credentials and its a=candidate lines, and fills *ret (clear it with media_ice_restart_clear()).
 * webrtcbin is not asked to negotiate. Returns 1 after a restart, 0 when the offer keeps the
 * credentials (nothing done), -EBADMSG when the offer is not SDP with an audio section,
 * -ENOTCONN when webrtcbin has no ICE transport yet, -EIO when libnice refused. */
int media_answer_ice_restart(Media *m, const char *offer_sdp, MediaIceRestart *ret);

/* Whether offer_sdp (a re-INVITE's) comes with another DTLS association than the far end's SDP
 * so far (RFC 8842 a=tls-id, or another fingerprint): the client built new media (a media
 * renewal), which takes a new answerer. */
bool media_offer_is_new_session(Media *m, const char *offer_sdp);

/* Drops (true) or passes again (false) every SRTP/SRTCP packet between webrtcbin and the network,
 * both ways, at its nicesrc and nicesink; STUN and DTLS still pass, so ICE consent and the DTLS
 * session stay up. The drop counters restart at 0 when a block begins (not when an existing one
 * is asked for again). Returns 0, or -ENOTCONN when webrtcbin has no ICE transport yet. */
int media_set_blocked(Media *m, bool blocked);
/* SRTP/SRTCP packets dropped since the current (or last) block began. */
void media_get_dropped(Media *m, unsigned *ret_sent, unsigned *ret_received);

/* The codec this Media sends. */
MediaCodec media_get_codec(const Media *m);

/* Stops the pipeline and frees everything; NULL-safe; returns NULL. No callback fires after. */
Media *media_free(Media *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Media *, media_free);

/* Generates the process-wide DTLS certificate now instead of during the first call. */
void media_prewarm(void);

/* SDP text helpers (no Media needed). */

/* The direction of the first audio section ("sendrecv", "sendonly", "recvonly", "inactive"; the
 * media-level attribute, else the session-level one, else sendrecv), or NULL if sdp is not SDP
 * with a media section. Returns a static string. */
const char *media_sdp_direction(const char *sdp);

/* sdp with the direction attribute of every media section replaced by direction, the o= version
 * incremented when bump_version. NULL if sdp is not SDP. */
char *media_sdp_with_direction(const char *sdp, const char *direction, bool bump_version);

/* sdp with the a=ice-ufrag/a=ice-pwd of every media section (and of the session, if there) set to
 * ufrag/pwd, and the o= version incremented when bump_version. NULL if sdp is not SDP. */
char *media_sdp_with_ice_credentials(const char *sdp, const char *ufrag, const char *pwd, bool bump_version);

/* The mirror of an offer's direction for its answer: sendonly → recvonly, recvonly → sendonly,
 * inactive → inactive, anything else → sendrecv. Static string. */
const char *media_direction_mirror(const char *offer_direction);

/* The offerer's SDP as it stands once the answer is known, for re-INVITEs and answers to the far
 * end's re-INVITEs: a=setup:actpass becomes the opposite of the answer's role. NULL if either
 * text is not SDP. */
char *media_sdp_settle_setup(const char *local_offer, const char *remote_answer);
