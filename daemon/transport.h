/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "macro.h"

/* SIP over WebSocket (RFC 7118) as the SDK does it (reference/gateway-protocol.md §1):
 * subprotocol "sip", one SIP message per text frame, binary frames decoded as UTF-8, TLS
 * verification always on (a test CA comes in through Config.ca_file, never a "no verify"). */

typedef struct Transport Transport;

typedef struct TransportCallbacks {
        void (*connected)(Transport *t, void *userdata);
        /* A connect attempt failed or an open socket closed. requested: we asked for it. */
        void (*disconnected)(Transport *t, bool requested, const char *reason, void *userdata);
        void (*message)(Transport *t, const char *text, size_t len, void *userdata);
} TransportCallbacks;

Transport *transport_new(const Config *config, const TransportCallbacks *cb, void *userdata);
Transport *transport_free(Transport *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Transport *, transport_free);

/* Starts connecting to the current server. -EALREADY while connecting or connected. */
int transport_connect(Transport *t);
/* Closes the socket (code 1000); "disconnected" fires with requested=true. */
void transport_close(Transport *t);
/* Drops an open socket without a close handshake (it is presumed dead): "disconnected" fires
 * with requested=false, so the phone reconnects. */
void transport_abandon(Transport *t, const char *reason);
/* The network changed: is the socket still alive? With a gateway that answers CRLF pings, one
 * ping and 3 s for the pong; otherwise (no way to tell) the socket is abandoned. */
void transport_probe(Transport *t, const char *why);
/* Sends one SIP message as one text frame. -ENOTCONN when the socket is not open. */
int transport_send(Transport *t, const char *text);

bool transport_is_connected(const Transport *t);
const char *transport_get_url(const Transport *t);
/* The Via transport token for the current URL: "WSS" or "WS". */
const char *transport_get_via(const Transport *t);
