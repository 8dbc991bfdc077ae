/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <libsoup/soup.h>

#include "log.h"
#include "transport.h"

struct Transport {
        const Config *config;
        TransportCallbacks cb;
        void *userdata;

        SoupSession *session;
        SoupWebsocketConnection *ws;
        GCancellable *connecting;
        size_t server_index;
        bool closing;
};

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
        if (transport_make_session(t) < 0)
                return transport_free(t);
        return t;
}

static void transport_drop_socket(Transport *t) {
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
        if (len == 2 && memcmp(data, "\r\n", 2) == 0)
                return;
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
        t->closing = false;
        t->cb.disconnected(t, requested, reason, t->userdata);
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
                /* Next attempt goes to the next configured server. */
                t->server_index = t->config->servers[t->server_index + 1] ? t->server_index + 1 : 0;
                t->cb.disconnected(t, false, reason, t->userdata);
                return;
        }
        if (g_strcmp0(soup_websocket_connection_get_protocol(ws), "sip") != 0) {
                log_warning("Gateway %s did not select the 'sip' subprotocol.", transport_get_url(t));
                soup_websocket_connection_close(ws, SOUP_WEBSOCKET_CLOSE_PROTOCOL_ERROR, NULL);
                g_object_unref(ws);
                t->cb.disconnected(t, false, "gateway did not select the sip subprotocol", t->userdata);
                return;
        }

        t->ws = ws;
        /* No WebSocket-level keep-alive of our own: the SDK only sends CRLF pings. */
        soup_websocket_connection_set_max_incoming_payload_size(ws, 256 * 1024);
        g_signal_connect(ws, "message", G_CALLBACK(on_ws_message), t);
        g_signal_connect(ws, "closed", G_CALLBACK(on_ws_closed), t);
        log_info("Connected to gateway %s.", transport_get_url(t));
        t->cb.connected(t, t->userdata);
}

int transport_connect(Transport *t) {
        g_autoptr(SoupMessage) msg = NULL;
        char *protocols[] = { (char *) "sip", NULL };

        if (t->connecting || t->ws)
                return -EALREADY;

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
