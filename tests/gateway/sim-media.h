/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "macro.h"

/* One call's media in bwgw-sim: a webrtcbin ANSWERER fed by a tone or by the caller's own audio,
 * with every received second of caller audio reduced to its dominant frequency. Knows nothing
 * about SIP. All callbacks run on the main context that was current at media_new_answer() time,
 * never on GStreamer threads, and never from inside a media_*() call. */

typedef struct Media Media;

typedef enum MediaMode {
        MEDIA_TONE, /* an 880 Hz sine (tone_hz) */
        MEDIA_ECHO, /* the caller's decoded audio, sent back */
} MediaMode;

typedef struct MediaCallbacks {
        /* The answer SDP as it should go on the wire (one UDP host candidate, msid, rtcp-mux,
         * telephone-event when offered), or error < 0 and a message. Fires once. */
        void (*answer_ready)(Media *m, const char *sdp, int error, const char *message, void *userdata);
        /* webrtcbin's connection-state reached "connected" (ICE + DTLS up). Fires once. */
        void (*connected)(Media *m, void *userdata);
        /* One second of decoded caller audio: dominant frequency and level. */
        void (*frequency)(Media *m, double hz, double dbfs, void *userdata);
        /* The first decoded caller audio above -50 dBFS (once per call). */
        void (*first_audio)(Media *m, double dbfs, void *userdata);
        /* An RFC 4733 telephone-event arrived ("0"-"9", "*", "#", "A"-"D"). */
        void (*dtmf)(Media *m, const char *digit, void *userdata);
        /* Something broke after the answer (pipeline error, ICE/DTLS failed). */
        void (*failed)(Media *m, const char *message, void *userdata);
} MediaCallbacks;

/* Checks that the offer is SDP with an audio section offering Opus. Returns 0, -EBADMSG if the
 * text is not SDP or has no audio m-line, -EPROTONOSUPPORT if Opus is not offered. */
int media_check_offer(const char *offer_sdp);

/* Builds and starts the pipeline and the answer to offer_sdp. ICE is restricted to
 * ice_address with UPnP off. Returns 0, or a negative errno (-EBADMSG/-EPROTONOSUPPORT as for
 * media_check_offer, -ENODEV when a GStreamer element is missing). */
int media_new_answer(const char *offer_sdp, MediaMode mode, double tone_hz, const char *ice_address,
                     const MediaCallbacks *cb, void *userdata, Media **ret);

/* Stops the pipeline and frees everything; NULL-safe; returns NULL. No callback fires after. */
Media *media_free(Media *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Media *, media_free);

/* Generates the process-wide DTLS certificate now instead of during the first call. */
void media_prewarm(void);

/* The SDP of an answer with the direction attribute of every media section set to the mirror
 * of the offer's (sendonly → recvonly, recvonly → sendonly, inactive, sendrecv), the o= version
 * incremented when bump_version. For re-INVITEs. Returns NULL if either text is not SDP. */
char *media_sdp_mirror_direction(const char *answer_sdp, const char *offer_sdp, bool bump_version,
                                 const char **ret_direction);
