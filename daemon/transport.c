/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <libsoup/soup.h>

#include "log.h"
#include "transport.h"

/* After a network change a live gateway answers a CRLF ping within a round trip. */
#define TRANSPORT_PROBE_TIMEOUT_MS 3000

struct Transport {
        const Config *config;
        TransportCallbacks cb;
        void *userdata;

        SoupSession *session;
        SoupWebsocketConnection *ws;
        GCancellable *connecting;
        size_t server_index;
        bool *server_failed;    /* per server: its last connection failed or broke */
        bool closing;

        /* CRLF keep-alive (gateway-protocol.md §1) */
        guint ping_timer;
        unsigned pings_sent;    /* on this socket */
        bool pong_seen;         /* the server ever answered "\r\n" on this socket */
        bool pong_pending;      /* the last ping is not answered yet */
        bool pong_unsupported;  /* no pong before the second ping: never expect one */
        guint probe_timer;      /* transport_probe(): the pong must come by then */
};

/* JsSIP's Transport._getSocket(): among the servers not marked failed, those with the highest
 * weight, one of them at random; when all failed, all are tried again. */
static void transport_pick_server(Transport *t) {
        size_t n = g_strv_length(t->config->servers), candidates = 0, pick;
        unsigned best = 0;
        bool any = false;

        for (size_t i = 0; i < n; i++)
                if (!t->server_failed[i] && (!any || t->config->server_weights[i] > best)) {
                        best = t->config->server_weights[i];
                        any = true;
                }
        if (!any) {
                memset(t->server_failed, 0, n * sizeof(bool));
                transport_pick_server(t);
                return;
        }
        for (size_t i = 0; i < n; i++)
                candidates += !t->server_failed[i] && t->config->server_weights[i] == best;
        pick = (size_t) g_random_int_range(0, (gint32) candidates);
        for (size_t i = 0; i < n; i++)
                if (!t->server_failed[i] && t->config->server_weights[i] == best && pick-- == 0) {
                        t->server_index = i;
                        return;
                }
}

static int transport_make_session(Transport *t) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GTlsDatabase) db = NULL;

        if (t->config->ca_file && *t->config->ca_file) {
                /* Trust exactly this CA (tests): verification stays on. */
                db = g_tls_file_database_new(t->config->ca_file, &error);
                if (!db)
                        return log_error_errno(-EINVAL, "Failed to load CA file %s: %s", t->config->ca_file,
                                               error->message);
                t->session = soup_session_new_with_options("tls-database", db, NULL);
        } else
                t->session = soup_session_new();
        soup_session_set_user_agent(t->session, t->config->user_agent);
        return 0;
}

Transport *transport_new(const Config *config, const TransportCallbacks *cb, void *userdata) {
        Transport *t = g_new0(Transport, 1);

        t->config = config;
        t->cb = *cb;
        t->userdata = userdata;
        t->server_failed = g_new0(bool, g_strv_length(config->servers));
        transport_pick_server(t);
        if (transport_make_session(t) < 0)
                return transport_free(t);
        return t;
}

static void transport_stop_keepalive(Transport *t) {
        g_clear_handle_id(&t->ping_timer, g_source_remove);
        g_clear_handle_id(&t->probe_timer, g_source_remove);
}

/* A CRLF ping; the server's "\r\n" clears pong_pending (on_ws_message). */
static void transport_ping(Transport *t) {
        soup_websocket_connection_send_text(t->ws, "\r\n\r\n");
        t->pings_sent++;
        t->pong_pending = true;
}

static void transport_drop_socket(Transport *t) {
        transport_stop_keepalive(t);
        if (!t->ws)
                return;
        g_signal_handlers_disconnect_by_data(t->ws, t);
        if (soup_websocket_connection_get_state(t->ws) == SOUP_WEBSOCKET_STATE_OPEN)
                soup_websocket_connection_close(t->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
        g_clear_object(&t->ws);
}

Transport *transport_free(Transport *t) {
        if (!t)
                return NULL;
        if (t->connecting) {
                g_cancellable_cancel(t->connecting);
                g_clear_object(&t->connecting);
        }
        transport_drop_socket(t);
        g_clear_object(&t->session);
        g_free(t->server_failed);
        g_free(t);
        return NULL;
}

const char *transport_get_url(const Transport *t) {
        return t->config->servers[t->server_index];
}

const char *transport_get_via(const Transport *t) {
        return g_str_has_prefix(transport_get_url(t), "wss://") ? "WSS" : "WS";
}

bool transport_is_connected(const Transport *t) {
        return t->ws && soup_websocket_connection_get_state(t->ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

static void on_ws_message(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer userdata) {
        Transport *t = userdata;
        gsize len = 0;
        const char *data = g_bytes_get_data(message, &len);

        if (!data || len == 0)
                return;
        /* RFC 5626 keep-alive pong: swallowed, as the SDK does. */
        if (len == 2 && memcmp(data, "\r\n", 2) == 0) {
                t->pong_seen = true;
                t->pong_pending = false;
                g_clear_handle_id(&t->probe_timer, g_source_remove);
                return;
        }
        if (type == SOUP_WEBSOCKET_DATA_BINARY && !g_utf8_validate(data, (gssize) len, NULL)) {
                log_warning("Dropping a binary WebSocket frame that is not UTF-8 (%zu bytes).", (size_t) len);
                return;
        }
        t->cb.message(t, data, len, t->userdata);
}

static void on_ws_closed(SoupWebsocketConnection *ws, gpointer userdata) {
        Transport *t = userdata;
        bool requested = t->closing;
        g_autofree char *reason = g_strdup_printf("WebSocket closed (code %u%s%s)",
                                                  soup_websocket_connection_get_close_code(ws),
                                                  soup_websocket_connection_get_close_data(ws) ? ": " : "",
                                                  soup_websocket_connection_get_close_data(ws) ?: "");

        log_info("Gateway connection closed: %s.", reason);
        g_signal_handlers_disconnect_by_data(ws, t);
        g_clear_object(&t->ws);
        transport_stop_keepalive(t);
        if (!requested)
                t->server_failed[t->server_index] = true;
        t->closing = false;
        t->cb.disconnected(t, requested, reason, t->userdata);
}

/* The socket is dead but may not know it (a NAT dropped it, the network changed): no close
 * handshake that would wait for the peer, the connection just goes, like an unclean close. */
void transport_abandon(Transport *t, const char *reason) {
        g_autoptr(SoupWebsocketConnection) ws = g_steal_pointer(&t->ws);
        GIOStream *stream;

        if (!ws)
                return;
        transport_stop_keepalive(t);
        g_signal_handlers_disconnect_by_data(ws, t);
        stream = soup_websocket_connection_get_io_stream(ws);
        if (stream)
                (void) g_io_stream_close(stream, NULL, NULL);
        log_warning("Dropping the gateway connection: %s.", reason);
        t->server_failed[t->server_index] = true;
        t->closing = false;
        t->cb.disconnected(t, false, reason, t->userdata);
}

static gboolean on_ping_due(gpointer userdata) {
        Transport *t = userdata;

        if (t->pings_sent > 0 && t->pong_pending && !t->pong_unsupported) {
                if (!t->pong_seen) {
                        /* Not even the first ping was answered: this server does not pong (SDK). */
                        log_debug("Gateway does not answer CRLF keep-alives; not expecting pongs.");
                        t->pong_unsupported = true;
                } else if (t->config->keepalive_pong_timeout) {
                        t->ping_timer = 0;
                        transport_abandon(t, "no keep-alive pong from the gateway");
                        return G_SOURCE_REMOVE;
                } else
                        log_warning("No keep-alive pong from the gateway.");
        }
        if (transport_is_connected(t))
                transport_ping(t);
        return G_SOURCE_CONTINUE;
}

static gboolean on_probe_timeout(gpointer userdata) {
        Transport *t = userdata;

        t->probe_timer = 0;
        if (t->pong_pending)
                transport_abandon(t, "no pong to a keep-alive after a network change");
        return G_SOURCE_REMOVE;
}

void transport_probe(Transport *t, const char *why) {
        if (!transport_is_connected(t) || t->probe_timer)
                return;
        if (!t->pong_seen || t->pong_unsupported) {
                /* Nothing can tell us whether the socket survived: assume it did not. Calls
                 * keep their media; only transactions in flight fail, as after any drop. */
                transport_abandon(t, why);
                return;
        }
        log_info("Checking the gateway connection (%s).", why);
        transport_ping(t);
        t->probe_timer = g_timeout_add(TRANSPORT_PROBE_TIMEOUT_MS, on_probe_timeout, t);
}

static void on_connected(GObject *source, GAsyncResult *res, gpointer userdata) {
        g_autoptr(GError) error = NULL;
        SoupWebsocketConnection *ws;
        Transport *t;

        ws = soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &error);
        if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
                return; /* transport_free() or transport_close() cancelled us */
        t = userdata;
        g_clear_object(&t->connecting);

        if (!ws) {
                g_autofree char *reason = g_strdup_printf("cannot connect to %s: %s", transport_get_url(t),
                                                          error->message);
                log_warning("Gateway connection failed: %s", reason);
                /* The next attempt picks among the others (failover). */
                t->server_failed[t->server_index] = true;
                t->cb.disconnected(t, false, reason, t->userdata);
                return;
        }
        if (g_strcmp0(soup_websocket_connection_get_protocol(ws), "sip") != 0) {
                log_warning("Gateway %s did not select the 'sip' subprotocol.", transport_get_url(t));
                soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, NULL);
                g_object_unref(ws);
                t->server_failed[t->server_index] = true;
                t->cb.disconnected(t, false, "gateway did not select the sip subprotocol", t->userdata);
                return;
        }

        t->ws = ws;
        t->server_failed[t->server_index] = false;
        /* No WebSocket-level ping frames of our own: the SDK only sends CRLF pings. */
        soup_websocket_connection_set_max_incoming_payload_size(ws, 256 * 1024);
        g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), t);
        g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), t);
        log_info("Connected to gateway %s.", transport_get_url(t));
        t->pings_sent = 0;
        t->pong_seen = t->pong_pending = t->pong_unsupported = false;
        if (t->config->keepalive_s > 0)
                t->ping_timer = g_timeout_add_seconds(t->config->keepalive_s, on_ping_due, t);
        t->cb.connected(t, t->userdata);
}

int transport_connect(Transport *t) {
        g_autoptr(SoupMessage) msg = NULL;
        char *protocols[] = { (char *) "sip", NULL };

        if (t->connecting || t->ws)
                return -EALREADY;
        transport_pick_server(t);

        msg = soup_message_new(SOUP_METHOD_GET, transport_get_url(t));
        if (!msg)
                return log_error_errno(-EINVAL, "Invalid gateway URL %s.", transport_get_url(t));

        log_info("Connecting to gateway %s.", transport_get_url(t));
        t->connecting = g_cancellable_new();
        t->closing = false;
        soup_session_websocket_connect_async(t->session, msg, NULL, protocols, G_PRIORITY_DEFAULT,
                                             t->connecting, on_connected, t);
        return 0;
}

void transport_close(Transport *t) {
        if (t->connecting) {
                g_cancellable_cancel(t->connecting);
                g_clear_object(&t->connecting);
                t->cb.disconnected(t, true, "connection attempt abandoned", t->userdata);
                return;
        }
        if (!t->ws)
                return;
        if (soup_websocket_connection_get_state(t->ws) == SOUP_WEBSOCKET_STATE_OPEN) {
                t->closing = true;
                soup_websocket_connection_close(t->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
                return; /* "closed" follows */
        }
        transport_drop_socket(t);
        t->cb.disconnected(t, true, "closed", t->userdata);
}

int transport_send(Transport *t, const char *text) {
        if (!transport_is_connected(t))
                return -ENOTCONN;
        soup_websocket_connection_send_text(t->ws, text);
        return 0;
}
