/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* bwgw-sim: the test stand-in for the Bandwidth WebRTC gateway (see README.md beside this file).
 * Everything runs on one GLib main loop; GStreamer threads hand their results to it. */

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>
#include <json-c/json.h>
#include <libsoup/soup.h>

#include "macro.h"

#define SIM_NAME "bwgw-sim"
#define SIM_ALLOW "INVITE,ACK,CANCEL,BYE,OPTIONS,INFO,REFER,NOTIFY"
#define SIM_TOKEN_PATH "/api/v1/oauth2/token"
#define SIM_CUSTOMER_TOKEN_PATH "/customer/token"
#define SIM_CUSTOMER_CLIENT_ID "customer-backend"
#define SIM_SCOPE "voice.webrtc"
#define SIM_DEFAULT_DOMAIN "gw.webrtc-app.bandwidth.com"
#define SIM_HTTP_TOO_MANY_REQUESTS 429 /* libsoup has no name for it */

typedef struct Call Call;
typedef struct Conn Conn;

/* What POST /control/token-faults made the token endpoints do wrong (sim-token.c). */
typedef enum TokenBodyFault {
        TOKEN_BODY_NONE,
        TOKEN_BODY_GARBAGE,    /* 200 "<html>oops" */
        TOKEN_BODY_NOT_OBJECT, /* 200 "[1,2]" */
        TOKEN_BODY_NO_TOKEN,   /* 200 {"expires_in":N} */
        TOKEN_BODY_BAD_EXPIRY, /* 200 {"access_token":<real JWT>,"expires_in":"soon"} */
        TOKEN_BODY_EMPTY,      /* 200, no body at all */
        _TOKEN_BODY_MAX,
} TokenBodyFault;

typedef struct TokenFault {
        unsigned status;      /* 400..599 instead of minting; 0 = none */
        unsigned retry_after; /* Retry-After of an injected 429 */
        TokenBodyFault body;
        bool delay;           /* hold the answer back delay_ms (0 is a real, if short, delay) */
        unsigned delay_ms;
        unsigned count;       /* requests it still applies to; 0 = until cleared */
} TokenFault;

typedef struct Sim {
        GMainLoop *loop;
        SoupServer *server;

        /* Listening ports (the real ones once listening); wss_port is 0 without --cert. */
        guint ws_port, wss_port;
        char *ws_url, *wss_url, *token_url, *customer_url;

        /* Configuration from the command line. */
        char *client_id;
        char *client_secret; /* from --client-secret-file; never logged, never in an event */
        unsigned token_lifetime;
        char *customer_key; /* from --customer-key-file; never logged, never in an event */
        char *ice_address;
        bool pong; /* answer "\r\n\r\n" with "\r\n" (--no-pong, /control/pong) */
        bool require_auth;
        unsigned ring_ms, answer_delay_ms, hangup_ms;
        char *domain; /* SIP domain of the gateway's own URIs (--domain) */

        /* OAuth: per-process HMAC key and the tokens minted with it. */
        uint8_t jwt_key[32];
        GHashTable *tokens; /* jti → Token (sim-token.c) */

        /* Fault injection (/control/token-faults, /control/invite-auth). */
        TokenFault token_fault;       /* applies while status, body or delay is set */
        unsigned token_expires_in;    /* lifetime of tokens minted from now on; 0 = token_lifetime */
        GList *token_delayed;         /* TokenDelay: token requests held back by a delay fault */
        unsigned invite_auth_status;  /* 401/403 for the next invite_auth_left initial INVITEs */
        unsigned invite_auth_left;

        /* SIP. */
        GHashTable *calls; /* Call-ID → Call, owned; ended calls linger a while to absorb ACKs */
        GList *conns;      /* open Conn, newest first, owned */
        unsigned n_conns;  /* Conn ids, never reused */

        /* Network faults (/control/outage): WebSocket upgrades get 503 until outage_end_us. */
        guint outage_timer;
        unsigned outage_ms;
        int64_t outage_start_us, outage_end_us; /* g_get_monotonic_time() */
        unsigned outage_refused;
} Sim;

/* sim-events.c: the --events JSON-lines file. Safe to call when no file was given. */
int events_open(const char *path);
void events_close(void);
/* A new event object with "event" and "time" set; add fields, then event_emit(). */
json_object *event_new(const char *name);
/* Adds "call_id" and "number" (either may be NULL). */
void event_add_call(json_object *o, const char *call_id, const char *number);
void event_add_string(json_object *o, const char *key, const char *value); /* NULL → null */
void event_add_int(json_object *o, const char *key, int64_t value);
void event_add_double(json_object *o, const char *key, double value);
void event_add_bool(json_object *o, const char *key, bool value);
/* Writes one line, flushes, and frees o. */
void event_emit(json_object *o);
double now_realtime(void);

/* sim-token.c: the OAuth and customer token endpoints, their injected faults, JWT checks. */
int token_setup(Sim *s);
void token_teardown(Sim *s);
/* Checks an Authorization header value ("Bearer <jwt>"; NULL = header missing). Returns 0 if the
 * token is one we minted, not revoked and not expired; otherwise -EACCES and *ret_error is one of
 * "missing", "malformed", "bad-signature", "unknown" (also for a revoked token), "expired".
 * *ret_jti gets the jti whenever the signature was valid (caller frees), else NULL. */
int token_check_authorization(Sim *s, const char *value, char **ret_jti, const char **ret_error);
/* Whether the token with this jti was revoked by /control/revoke-tokens (it then checks as
 * "unknown"). */
bool token_is_revoked(Sim *s, const char *jti);
/* Every token minted so far stops being valid; returns how many were newly revoked. */
unsigned token_revoke_all(Sim *s);
/* The lifetime of tokens minted now (seconds). */
unsigned token_lifetime_now(Sim *s);
const char *token_body_fault_to_string(TokenBodyFault b);
int token_body_fault_from_string(const char *s, TokenBodyFault *ret);

/* sim-sip.c: SIP over WebSocket. */
void sip_setup(Sim *s);
void sip_shutdown(Sim *s);

/* sim-control.c: POST /control/<action> on both ports. */
void control_setup(Sim *s);
