/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-c/json.h>

#include "macro.h"

/* One received SIP message. The header list keeps the wire order and the exact text of every
 * value, because responses must echo Via/From/To/Call-ID/CSeq unchanged and tests check the
 * client's header order. libosip2 validates the message and supplies the parsed fields (it
 * drops headers it cannot parse, such as "Authorization: Bearer", so those come from the raw
 * list). */

typedef struct SipHeader {
        char *name;  /* as on the wire */
        char *value; /* trimmed, continuation lines joined */
} SipHeader;

typedef struct SipMsg {
        char *start_line;
        GPtrArray *headers; /* SipHeader */
        char *body;         /* NUL-terminated copy; body_len bytes */
        size_t body_len;

        /* Set when libosip2 accepted the message and the mandatory headers are present. */
        bool valid;
        bool is_request;
        char *method;      /* requests */
        char *request_uri; /* requests, as on the wire */
        char *ruri_user;   /* requests, may be NULL */
        int status;        /* responses */
        char *reason;      /* responses */

        char *call_id;
        uint32_t cseq;
        char *cseq_method;
        char *from_tag, *to_tag; /* NULL when absent */
        char *via_branch, *via_host;
        char *contact_uri; /* the URI inside <> of the first Contact, or NULL */
        char *contact_host;
} SipMsg;

/* Parses one message. Returns 0 with *ret set even when the message is not valid SIP (check
 * ->valid; the raw header list may still allow a 400), -EBADMSG when it is not even shaped like
 * a SIP message (no start line or header block, or NUL bytes). */
int sipmsg_parse(const char *data, size_t len, SipMsg **ret);
SipMsg *sipmsg_free(SipMsg *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(SipMsg *, sipmsg_free);

/* First header with this name (case-insensitive; compact forms such as "v" count as "Via"). */
const char *sipmsg_header(const SipMsg *m, const char *name);
/* True when Via, From, To, Call-ID and CSeq are there, so a response can be built. */
bool sipmsg_can_respond(const SipMsg *m);

/* [[name, value], ...] in wire order, Authorization values redacted. */
json_object *sipmsg_headers_json(const SipMsg *m);
/* The message as text for debug logs, Authorization values redacted. */
char *sipmsg_to_log_text(const SipMsg *m);

/* Redacts a credential header value: "Bearer <redacted>", a bare "Bearer" stays as it is. */
char *sip_redact_authorization(const char *value);

const char *sip_reason_phrase(int code);
/* Builds a response to req. Via, From, Call-ID and CSeq are echoed verbatim; To gets ";tag=" +
 * to_tag unless it has a tag already or code is 100. extra_headers are complete "Name: value\r\n"
 * lines (may be NULL). body may be NULL; Content-Length is always exact. */
char *sip_build_response(const SipMsg *req, int code, const char *to_tag, const char *extra_headers,
                         const char *content_type, const char *body);
/* Random tokens for tags and branches: n characters of [0-9a-z]. */
char *sip_random_token(size_t n);
