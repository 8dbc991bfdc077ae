/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/* bwcalld configuration: $XDG_CONFIG_HOME/bwcall/bwcall.conf (INI, GKeyFile) overridden by the
 * command line. Network presets fill the gateway URL, SIP domain and token endpoint from the
 * public Bandwidth docs. Secrets are never part of Config: see Credentials below. */

typedef enum TokenMode {
        TOKEN_MODE_CLIENT_CREDENTIALS, /* bwcalld POSTs to the OAuth token endpoint */
        TOKEN_MODE_EXTERNAL,           /* pushed with SetOAuthToken() */
        TOKEN_MODE_TOKEN_URL,          /* GET from the customer's own backend ([Token] Url=) */
        _TOKEN_MODE_MAX,
} TokenMode;

typedef enum DtmfMethod {
        DTMF_METHOD_RFC4733, /* telephone-events in the media (the SDK's default) */
        DTMF_METHOD_INFO,    /* SIP INFO application/dtmf-relay (the SDK's setDtmfOptions(false)) */
        _DTMF_METHOD_MAX,
} DtmfMethod;

const char *dtmf_method_to_string(DtmfMethod m);
int dtmf_method_from_string(const char *s);

typedef struct Config {
        char *network;          /* "us", "global" or NULL (everything given explicitly) */
        char **servers;         /* gateway WebSocket URLs, NULL-terminated (weights cut off) */
        unsigned *server_weights; /* one per server: highest first, random among equals (SDK) */
        char *domain;           /* SIP domain */
        char *caller_id;        /* our number, E.164 with '+' */
        char *display_name;     /* From display name, may be "" */
        char *user_agent;       /* User-Agent header */
        char *ca_file;          /* extra trust anchors (PEM) for wss:// and https://; NULL = system */

        TokenMode token_mode;
        char *token_endpoint;   /* https://.../api/v1/oauth2/token */
        char *token_url;        /* token-url mode: https URL answering {access_token, expires_in} */
        char *credentials_file; /* client_id=/client_secret= file, refused if group/world readable */
        unsigned token_timeout_ms;

        char **ice_addresses;   /* libnice local addresses; NULL = all interfaces */
        bool upnp;
        char **stun_servers;
        unsigned latency_ms;
        char *input;            /* PipeWire node name of the microphone; NULL = default */
        char *output;           /* PipeWire node name of the speaker; NULL = default */
        char *ringer;           /* PipeWire node name incoming calls ring on; NULL = default */
        bool echo_cancel;       /* webrtcdsp on the microphone, fed by what the speaker plays */
        bool noise_suppression;
        bool gain_control;
        bool tone_ringback;     /* [Tones]: local ringback while the far end rings (no early media) */
        bool tone_ring;         /* ring incoming calls on the ringer */
        bool tone_call_waiting; /* beep on the call's speaker when a second call comes in */
        bool tone_dtmf_feedback; /* the digits we send, quietly on the call's speaker */

        DtmfMethod dtmf_method; /* default for new calls; Dial option "dtmf-method" overrides */
        unsigned incoming_timeout_ms; /* unanswered incoming calls get 408 after this */
        unsigned rtp_timeout_ms; /* no RTP on an active, un-held call this long → "RTP Timeout"; 0 = off */

        bool auto_connect;      /* Connect() at start-up */
        unsigned call_linger_ms;/* terminated call objects stay on the bus this long */
        unsigned connect_timeout_ms;
        unsigned reconnect_min_s;  /* SDK setReconnectIntervals(): back-off bounds, 2 and 30 */
        unsigned reconnect_max_s;
        unsigned keepalive_s;      /* CRLF ping interval (SDK setWebSocketKeepAlive); 0 = off */
        bool keepalive_pong_timeout; /* a server that ponged before and misses one: reconnect */
} Config;

Config *config_new(void);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* Loads an INI file over c. A missing file is fine when !required. Unknown keys are warned
 * about, bad values are errors (-EINVAL) with a log line naming file, group and key. */
int config_load_file(Config *c, const char *path, bool required);

/* Applies the network preset to every value that is still unset, then checks that what a call
 * needs is there. Returns -EINVAL with a log line naming the missing setting. */
int config_finalize(Config *c);

/* Path of the default config file ($XDG_CONFIG_HOME/bwcall/bwcall.conf). */
char *config_default_path(void);

const char *token_mode_to_string(TokenMode m);
int token_mode_from_string(const char *s);

/* Secrets of the token modes. Read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=: files
 * "client-id", "client-secret", "token-url-header") or from the configured credentials file
 * (lines "client_id=...", "client_secret=...", "token_url_header=..."), which is refused when
 * group- or world-readable. client-credentials mode needs the id and secret; token-url mode
 * takes an optional header ("Authorization: Bearer ..." or "X-Api-Key: ...") to send to the
 * customer's backend. Wiped from memory on free. */
typedef struct Credentials {
        char *client_id;
        char *client_secret;
        char *token_url_header;
} Credentials;

int credentials_load(const Config *c, Credentials **ret);
Credentials *credentials_free(Credentials *cr);
DEFINE_TRIVIAL_CLEANUP_FUNC(Credentials *, credentials_free);
