/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* SIP messages the way the Bandwidth SDK (JsSIP 3.10.0 + AudioCodes) puts them on the wire,
 * reference/gateway-protocol.md §3. Builders return newly allocated NUL-terminated text with
 * CRLF line ends and an exact Content-Length; parsing wraps libosip2. No transaction or
 * dialog state machine lives here: call.c/phone.c own that. */

/* The UA's fixed identity, set once per connection (Contact host is new on every Connect). */
typedef struct SipUa {
        const char *user;         /* From/Contact user verbatim, e.g. "+19195551234" */
        const char *display_name; /* From display name; NULL or "" = omitted */
        const char *domain;       /* SIP domain of R-URI/From/To, e.g. "gw.webrtc-app.bandwidth.com" */
        const char *contact_host; /* "<12 random [0-9a-z]>.invalid"; also the Via host */
        const char *transport;    /* Via transport token: "WSS" or "WS" */
        const char *user_agent;   /* "JsSIP 3.10.0" unless configured */
} SipUa;

/* What a client-side INVITE dialog must remember. Owned by the call. */
typedef struct SipDialog {
        char *call_id;        /* 20 chars [0-9a-v] */
        char *local_tag;      /* From tag, 10 chars [0-9a-v] */
        char *remote_tag;     /* To tag from the first response that had one; NULL before */
        char *request_uri;    /* R-URI and To URI of the initial INVITE */
        char *remote_target;  /* Contact URI of the latest 18x/2xx; R-URI of in-dialog requests */
        char **route_set;     /* Record-Route of the 2xx reversed, NULL-terminated; may be NULL */
        char *invite_branch;  /* "z9hG4bK<decimal>" of the initial INVITE (CANCEL, non-2xx ACK) */
        uint32_t invite_cseq; /* CSeq number of the initial INVITE */
        uint32_t local_cseq;  /* last CSeq number we used */
        char *local_uri;      /* our URI in this dialog (From of our requests); NULL = sip:<user>@<domain> */
        bool incoming;        /* the far end created the dialog with its INVITE */
} SipDialog;

/* A new dialog for an outgoing call to number (E.164 with '+'): random Call-ID, From tag,
 * CSeq in 0–9999, R-URI sip:<number>@<domain>. Returns 0 or -ENOMEM/-EINVAL. */
int sip_dialog_new_outgoing(const SipUa *ua, const char *number, SipDialog **ret);
SipDialog *sip_dialog_free(SipDialog *d); /* NULL-safe, returns NULL */
DEFINE_TRIVIAL_CLEANUP_FUNC(SipDialog *, sip_dialog_free);

/* Random token from an alphabet, as JsSIP's createRandomToken. */
char *sip_random_token(size_t length, const char *alphabet);
/* "<12 random [0-9a-z]>.invalid" */
char *sip_contact_host_new(void);
/* "z9hG4bK" + decimal < 10^7 */
char *sip_branch_new(void);

/* Builders. extra_headers: NULL-terminated list of complete header lines without CRLF
 * (copied verbatim, trimmed, before Authorization); may be NULL. bearer_token NULL means no
 * Authorization line. Each returns NULL only on -ENOMEM or invalid arguments. */

/* Initial INVITE. Sets dialog->invite_branch, invite_cseq and local_cseq. Header order:
 * Via, Max-Forwards: 69, To, From, Call-ID, CSeq, [extra], Authorization, Contact (;ob),
 * Content-Type, Allow, Supported: ice,replaces,outbound, User-Agent, Content-Length. */
char *sip_build_invite(const SipUa *ua, SipDialog *dialog, const char *bearer_token,
                       const char *const *extra_headers, const char *sdp);

/* ACK for a 2xx: R-URI = remote_target, new branch, CSeq <invite_cseq> ACK, Route set first. */
char *sip_build_ack_2xx(const SipUa *ua, const SipDialog *dialog);
/* ACK for a 3xx–6xx final response: R-URI = request_uri, the INVITE's branch, To with the
 * response's tag (to_tag, may be NULL). */
char *sip_build_ack_non2xx(const SipUa *ua, const SipDialog *dialog, const char *to_tag);
/* CANCEL: R-URI/To as the INVITE, same branch, CSeq <invite_cseq> CANCEL, no Authorization. */
char *sip_build_cancel(const SipUa *ua, const SipDialog *dialog);
/* BYE: R-URI = remote_target, CSeq ++local_cseq, reason_header_value NULL for a user hang-up or
 * e.g. "SIP ;cause=408; text=\"RTP Timeout\"" (emitted as a "Reason:" line). */
char *sip_build_bye(const SipUa *ua, SipDialog *dialog, const char *reason_header_value);

/* ACK for a 2xx to the INVITE or re-INVITE with this CSeq number (new branch, Route set). */
char *sip_build_ack_for(const SipUa *ua, const SipDialog *dialog, uint32_t cseq);

/* Any other in-dialog request (re-INVITE, INFO, REFER, NOTIFY, UPDATE): R-URI remote_target,
 * Route set first, new branch, CSeq ++local_cseq (written to *ret_cseq when not NULL).
 * headers: NULL-terminated "Name: value" lines placed after CSeq (before Contact/Content-Type).
 * A re-INVITE gets Contact (;ob) and "Supported: ice,replaces,outbound"; other methods
 * "Supported: outbound". content_type may be NULL only when body is NULL or empty. */
char *sip_build_request(const SipUa *ua, SipDialog *dialog, const char *method, const char *const *headers,
                        const char *content_type, const char *body, uint32_t *ret_cseq);

/* Parsed message. */
typedef struct SipMessage SipMessage;

/* Parses one SIP message (one WebSocket frame). -EBADMSG for anything that is not a
 * well-formed request or response with Via, From, To, Call-ID and CSeq; never crashes on
 * hostile input; len may include or exclude a trailing NUL. */
int sip_message_parse(const char *text, size_t len, SipMessage **ret);
SipMessage *sip_message_free(SipMessage *m); /* NULL-safe, returns NULL */
DEFINE_TRIVIAL_CLEANUP_FUNC(SipMessage *, sip_message_free);

bool sip_message_is_request(const SipMessage *m);
const char *sip_message_method(const SipMessage *m);      /* requests: "BYE"...; responses: NULL */
unsigned sip_message_status(const SipMessage *m);         /* responses: 100–699; requests: 0 */
const char *sip_message_reason_phrase(const SipMessage *m);
const char *sip_message_request_uri(const SipMessage *m); /* requests: as osip prints it; else NULL */
const char *sip_message_call_id(const SipMessage *m);
uint32_t sip_message_cseq_number(const SipMessage *m);
const char *sip_message_cseq_method(const SipMessage *m);
const char *sip_message_from_tag(const SipMessage *m);    /* NULL if none */
const char *sip_message_to_tag(const SipMessage *m);      /* NULL if none */
const char *sip_message_via_branch(const SipMessage *m);  /* of the top Via */
const char *sip_message_contact_uri(const SipMessage *m); /* "sip:..." of the first Contact, or NULL */
const char *sip_message_content_type(const SipMessage *m);/* "application/sdp" (type/subtype only) or NULL */
const char *sip_message_body(const SipMessage *m);        /* NUL-terminated body, "" if none */
size_t sip_message_body_length(const SipMessage *m);
/* Value of the first header with this name (case-insensitive, compact forms understood), or NULL. */
const char *sip_message_header(const SipMessage *m, const char *name);
/* Record-Route URIs in message order, NULL-terminated (caller frees with g_strfreev-compatible
 * free: a malloc'ed array of malloc'ed strings; use sip_strv_free). Returns NULL if none. */
char **sip_message_record_routes(const SipMessage *m);
void sip_strv_free(char **v);

/* Response to a request we received (e.g. 200 to a gateway BYE): Via echoed unchanged, To (with
 * to_tag added when given and the To has no tag yet), From, Call-ID, CSeq, then
 * "Supported: outbound", optional Contact <contact_uri>, optional Content-Type + body,
 * Content-Length. Header order as captured in gateway-protocol.md ("To before From"). */
char *sip_build_response(const SipMessage *request, unsigned code, const char *reason_phrase,
                         const char *to_tag, const char *contact_uri, const char *content_type,
                         const char *body);

/* The SDK's termination cause for a final status (gateway-protocol.md §5): 486/600 "Busy",
 * 403/603 "Rejected", 404/604 "Not Found", 480/410/408/430 "Unavailable", 484/424
 * "Address Incomplete", 488/606 "Incompatible SDP", 401/407 "Authentication Error",
 * 300/301/302/305/380 "Redirected", other ≥300 "SIP Failure Code". NULL for < 300. */
const char *sip_status_to_cause(unsigned status);

/* Default reason phrase for a status code ("OK", "Busy Here", ...; "Unknown" otherwise). */
const char *sip_status_reason_phrase(unsigned status);
