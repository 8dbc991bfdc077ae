/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <gst/sdp/sdp.h>

/* SDP edits for hold on the SIP side (reference/gateway-protocol.md §6): the WebRTC session is
 * not renegotiated, only the direction attribute of the audio section changes and the o= line's
 * session version goes up, like the SDK's mangled re-offers. */

typedef enum SdpDirection {
        SDP_DIRECTION_SENDRECV,
        SDP_DIRECTION_SENDONLY,
        SDP_DIRECTION_RECVONLY,
        SDP_DIRECTION_INACTIVE,
        _SDP_DIRECTION_MAX,
} SdpDirection;

const char *sdp_direction_to_string(SdpDirection d);

/* Direction of the first audio section (media level, else session level, default sendrecv).
 * -EBADMSG when the text is not SDP or has no audio section. */
int sdp_get_direction(const char *sdp, SdpDirection *ret);

/* The SDK's remote-hold rule: every audio section sendonly or inactive. */
bool sdp_is_hold(SdpDirection d);

/* The direction that answers an offer of d (sendonly→recvonly, recvonly→sendonly, ...). */
SdpDirection sdp_direction_answer(SdpDirection offered);

/* Returns a copy of sdp with the audio section's direction set to d (session-level direction
 * attributes removed) and the o= session version incremented; NULL if sdp is not SDP. */
char *sdp_with_direction(const char *sdp, SdpDirection d);

/* Sets the o= line's session id (NULL: keep it) and version, keeping the rest. */
void sdp_set_origin_session(GstSDPMessage *msg, const char *sess_id, uint64_t version);
