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
#define SIM_SCOPE "voice.webrtc"
#define SIM_DEFAULT_DOMAIN "gw.webrtc-app.bandwidth.com"

typedef struct Call Call;
typedef struct Conn Conn;

typedef struct Sim {
        GMainLoop *loop;
        SoupServer *server;

        /* Listening ports (the real ones once listening); wss_port is 0 without --cert. */
        guint ws_port, wss_port;
        char *ws_url, *wss_url, *token_url;

        /* Configuration from the command line. */
        char *client_id;
        char *client_secret; /* from --client-secret-file; never logged, never in an event */
        unsigned token_lifetime;
        char *ice_address;
        bool pong;
        bool require_auth;
        unsigned ring_ms, answer_delay_ms, hangup_ms;
        char *domain; /* SIP domain of the gateway's own URIs (--domain) */

        /* OAuth: per-process HMAC key and the tokens minted with it. */
        uint8_t jwt_key[32];
        GHashTable *tokens; /* jti → Token (sim-token.c) */

        /* SIP. */
        GHashTable *calls; /* Call-ID → Call, owned; ended calls linger a while to absorb ACKs */
        GHashTable *hosts; /* Via/Contact host → Conn that used it last (not owned) */
        GList *conns;      /* open Conn, owned */
        unsigned n_conns;  /* Conn ids, never reused */
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

/* sim-token.c: OAuth token endpoint and JWT checks. */
int token_setup(Sim *s);
void token_teardown(Sim *s);
/* Checks an Authorization header value ("Bearer <jwt>"; NULL = header missing). Returns 0 if the
 * token is one we minted and not expired; otherwise -EACCES and *ret_error is one of "missing",
 * "malformed", "bad-signature", "unknown", "expired". *ret_jti gets the jti whenever the
 * signature was valid (caller frees), else NULL. */
int token_check_authorization(Sim *s, const char *value, char **ret_jti, const char **ret_error);

/* sim-sip.c: SIP over WebSocket. */
void sip_setup(Sim *s);
void sip_shutdown(Sim *s);

/* sim-control.c: POST /control/<action> on both ports. */
void control_setup(Sim *s);
