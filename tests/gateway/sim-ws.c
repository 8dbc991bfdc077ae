/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "sim-sip.h"

/* The gateway's WebSocket side: sockets (subprotocol "sip"), the CRLF keep-alive, and the
 * network faults a test injects: a socket that vanishes without a close handshake
 * (/control/drop-socket) and a gateway that is down for a while (/control/outage). SIP lives in
 * sim-sip.c. A socket only carries frames: calls are not bound to one, because the SDK keeps its
 * Contact host across reconnects and its dialogs with it (gateway-protocol.md §1); call_route()
 * finds the socket for a call by that host among the ones listed here. */

static const char *const drop_mode_names[_DROP_MAX] = {
        [DROP_FIN] = "drop",
        [DROP_RESET] = "reset",
        [DROP_CLOSE] = "close",
};

const char *drop_mode_to_string(DropMode m) {
        return m >= 0 && m < _DROP_MAX ? drop_mode_names[m] : "?";
}

int drop_mode_from_string(const char *s, DropMode *ret) {
        for (DropMode m = 0; m < _DROP_MAX; m++)
                if (g_strcmp0(s, drop_mode_names[m]) == 0) {
                        *ret = m;
                        return 0;
                }
        return -EINVAL;
}

/* ---- sockets ---- */

bool conn_usable(const Conn *conn) {
        return conn && !conn->closed && !conn->closing &&
               soup_websocket_connection_get_state(conn->ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

void conn_send(Conn *conn, const char *text) {
        if (!conn_usable(conn)) {
                log_warning("Socket gone, dropping outgoing message: %.*s", (int) strcspn(text, "\r\n"),
                            text);
                return;
        }
        log_debug("conn %u >>>\n%s", conn->id, text);
        soup_websocket_connection_send_text(conn->ws, text);
}

void conn_note_host(Conn *conn, const char *host) {
        if (!host || !*host)
                return;
        if (!g_hash_table_contains(conn->hosts, host))
                g_hash_table_add(conn->hosts, g_strdup(host));
        g_free(conn->client_host);
        conn->client_host = g_strdup(host);
}

Conn *sim_newest_conn(Sim *s) {
        for (GList *l = s->conns; l; l = l->next)
                if (conn_usable(l->data))
                        return l->data;
        return NULL;
}

Conn *sim_find_conn(Sim *s, unsigned id) {
        for (GList *l = s->conns; l; l = l->next) {
                Conn *conn = l->data;

                if (conn->id == id)
                        return conn_usable(conn) ? conn : NULL;
        }
        return NULL;
}

Conn *sim_conn_for_host(Sim *s, const char *host) {
        if (!host)
                return NULL;
        /* s->conns is newest first: a client that reconnected is reached on its new socket even
         * while the old one still looks open (a half-dead socket is exactly what it left). */
        for (GList *l = s->conns; l; l = l->next) {
                Conn *conn = l->data;

                if (conn_usable(conn) && g_hash_table_contains(conn->hosts, host))
                        return conn;
        }
        return NULL;
}

static void conn_free(Conn *c) {
        if (!c)
                return;
        g_signal_handlers_disconnect_by_data(c->ws, c);
        g_object_unref(c->ws);
        if (c->socket)
                g_object_unref(c->socket);
        g_hash_table_unref(c->hosts);
        g_free(c->peer);
        g_free(c->client_host);
        g_free(c);
}

static gboolean conn_free_idle(gpointer userdata) {
        conn_free(userdata);
        return G_SOURCE_REMOVE;
}

/* The socket is gone, whoever ended it: report it once and let the calls know. */
static void conn_gone(Conn *c) {
        Sim *s = c->sim;
        json_object *ev;

        if (c->closed)
                return;
        c->closed = true;
        log_info("conn %u from %s closed (code %u%s).", c->id, c->peer,
                 soup_websocket_connection_get_close_code(c->ws), c->dropped ? ", dropped by us" : "");
        ev = event_new("ws-close");
        event_add_int(ev, "conn", c->id);
        event_add_string(ev, "peer", c->peer);
        event_add_int(ev, "code", soup_websocket_connection_get_close_code(c->ws));
        event_add_bool(ev, "dropped", c->dropped);
        event_emit(ev);

        sip_conn_closed(c);
        s->conns = g_list_remove(s->conns, c);
        /* Not from inside the connection's own signal emission. */
        g_idle_add(conn_free_idle, c);
}

static void conn_on_closed(SoupWebsocketConnection *ws, gpointer userdata) {
        conn_gone(userdata);
}

static void conn_on_error(SoupWebsocketConnection *ws, GError *error, gpointer userdata) {
        Conn *c = userdata;

        /* After a drop of ours libsoup finds the stream dead; nothing worth a warning. */
        if (c->dropped)
                log_debug("conn %u: WebSocket error after the drop: %s", c->id, error ? error->message : "?");
        else
                log_warning("conn %u: WebSocket error: %s", c->id, error ? error->message : "?");
}

static void conn_on_message(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer userdata) {
        Conn *c = userdata;
        gsize len = 0;
        const char *data = g_bytes_get_data(message, &len);

        if (c->closed)
                return;
        if (len == 4 && memcmp(data, "\r\n\r\n", 4) == 0) {
                /* RFC 5626-style keep-alive; the SDK takes a lone CRLF frame as the pong. With
                 * pongs off the ping goes unanswered, so the client's missing-pong check fires. */
                bool answer = c->sim->pong && conn_usable(c);
                json_object *ev = event_new("ping");

                event_add_int(ev, "conn", c->id);
                event_add_bool(ev, "pong", answer);
                event_emit(ev);
                ev = event_new("ws-ping");
                event_add_int(ev, "conn", c->id);
                event_add_bool(ev, "answered", answer);
                event_emit(ev);
                if (answer)
                        conn_send(c, "\r\n");
                return;
        }
        sip_handle_frame(c, data, len);
}

static void on_websocket(SoupServer *server, SoupServerMessage *msg, const char *path,
                         SoupWebsocketConnection *ws, gpointer userdata) {
        Sim *s = userdata;
        Conn *c = g_new0(Conn, 1);
        GSocketAddress *local = soup_server_message_get_local_address(msg);
        GSocketAddress *remote = soup_server_message_get_remote_address(msg);
        json_object *ev;

        c->sim = s;
        c->id = ++s->n_conns;
        c->ws = g_object_ref(ws);
        /* The TCP socket itself (under TLS, and under libsoup's own stream wrapper). */
        c->socket = soup_server_message_get_socket(msg);
        if (c->socket)
                g_object_ref(c->socket);
        c->hosts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        if (G_IS_INET_SOCKET_ADDRESS(local))
                c->local_port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
        c->secure = s->wss_port != 0 && c->local_port == s->wss_port;
        if (G_IS_INET_SOCKET_ADDRESS(remote)) {
                g_autofree char *host = g_inet_address_to_string(
                        g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(remote)));
                c->peer = g_strdup_printf("%s:%u", host,
                                          g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(remote)));
        } else
                c->peer = g_strdup("?");
        if (!c->socket)
                log_warning("conn %u: no TCP socket found under the WebSocket; drop-socket will close the "
                            "stream instead.", c->id);

        g_signal_connect(ws, "message", G_CALLBACK(conn_on_message), c);
        g_signal_connect(ws, "closed", G_CALLBACK(conn_on_closed), c);
        g_signal_connect(ws, "error", G_CALLBACK(conn_on_error), c);
        s->conns = g_list_prepend(s->conns, c);

        log_info("conn %u: WebSocket from %s (%s, protocol %s).", c->id, c->peer, c->secure ? "wss" : "ws",
                 soup_websocket_connection_get_protocol(ws) ?: "none");
        ev = event_new("ws-open");
        event_add_int(ev, "conn", c->id);
        event_add_string(ev, "peer", c->peer);
        event_add_string(ev, "protocol", soup_websocket_connection_get_protocol(ws));
        event_add_bool(ev, "secure", c->secure);
        event_add_string(ev, "path", path);
        event_add_string(ev, "origin", soup_websocket_connection_get_origin(ws));
        event_emit(ev);
}

/* ---- network faults ---- */

static void conn_drop(Conn *c, DropMode mode, const char *cause) {
        int fd = c->socket ? g_socket_get_fd(c->socket) : -1;
        json_object *ev;

        log_info("conn %u from %s: dropping it (%s, %s).", c->id, c->peer, drop_mode_to_string(mode), cause);
        ev = event_new("ws-dropped");
        event_add_int(ev, "conn", c->id);
        event_add_string(ev, "peer", c->peer);
        event_add_string(ev, "mode", drop_mode_to_string(mode));
        event_add_string(ev, "cause", cause);
        event_emit(ev);
        c->dropped = true;

        if (mode == DROP_CLOSE) {
                /* A gateway going away politely. Nothing more is sent on it; it is gone (ws-close,
                 * pending INVITEs end) when libsoup finishes the handshake or gives up waiting. */
                c->closing = true;
                if (soup_websocket_connection_get_state(c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
                        soup_websocket_connection_close(c->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "going away");
                return;
        }
        if (fd >= 0 && mode == DROP_RESET) {
                struct sockaddr sa = { .sa_family = AF_UNSPEC };

                /* connect(AF_UNSPEC) disconnects a TCP socket with a RST at once, and leaves the
                 * fd (which GSocket still owns) open, so nothing can reuse its number under us. */
                if (connect(fd, &sa, sizeof(sa)) < 0) {
                        log_warning_errno(-errno, "conn %u: reset failed, shutting down instead: %m", c->id);
                        (void) shutdown(fd, SHUT_RDWR);
                }
        } else if (fd >= 0) {
                /* FIN, no close frame: to the client the stream just ends (close code 1006). Both
                 * directions, so that nothing follows it, not even a TLS close_notify when libsoup
                 * closes its stream. */
                if (shutdown(fd, SHUT_RDWR) < 0)
                        log_warning_errno(-errno, "conn %u: shutdown failed: %m", c->id);
        } else
                (void) g_io_stream_close(soup_websocket_connection_get_io_stream(c->ws), NULL, NULL);
        /* Gone now, not when libsoup notices: the control reply and the events already say so. */
        conn_gone(c);
}

int sim_drop_sockets(Sim *s, unsigned conn_id, DropMode mode, const char *cause, json_object *dropped) {
        g_autoptr(GList) conns = NULL;

        if (conn_id > 0) {
                for (GList *l = s->conns; l; l = l->next)
                        if (((Conn *) l->data)->id == conn_id)
                                conns = g_list_prepend(conns, l->data);
                if (!conns)
                        return -ENOENT;
        } else
                /* Oldest first; a copy, because dropping takes them off s->conns. */
                conns = g_list_reverse(g_list_copy(s->conns));
        for (GList *l = conns; l; l = l->next) {
                Conn *c = l->data;

                if (dropped)
                        json_object_array_add(dropped, json_object_new_int64(c->id));
                conn_drop(c, mode, cause);
        }
        return 0;
}

static void outage_end(Sim *s, bool early) {
        unsigned elapsed = (unsigned) ((g_get_monotonic_time() - s->outage_start_us) / 1000);
        json_object *ev;

        log_info("Outage over after %u ms%s (%u upgrades refused); accepting WebSockets again.", elapsed,
                 early ? ", ended early" : "", s->outage_refused);
        ev = event_new("outage-end");
        event_add_int(ev, "ms", s->outage_ms);
        event_add_int(ev, "elapsed_ms", elapsed);
        event_add_bool(ev, "early", early);
        event_add_int(ev, "refused", s->outage_refused);
        event_emit(ev);
        s->outage_timer = 0;
        s->outage_end_us = 0;
}

static gboolean on_outage_over(gpointer userdata) {
        outage_end(userdata, false);
        return G_SOURCE_REMOVE;
}

unsigned sim_outage_remaining_ms(Sim *s) {
        int64_t left;

        if (!s->outage_timer)
                return 0;
        left = s->outage_end_us - g_get_monotonic_time();
        return left > 0 ? (unsigned) ((left + 999) / 1000) : 1;
}

void sim_outage(Sim *s, unsigned ms, DropMode mode, json_object *dropped) {
        g_autoptr(GList) conns = NULL;
        bool extended = s->outage_timer != 0;
        json_object *ev, *ids;

        if (ms == 0) {
                if (extended) {
                        g_source_remove(s->outage_timer);
                        outage_end(s, true);
                }
                return;
        }
        /* A second outage while one runs restarts the clock: ms from now. */
        if (extended)
                g_source_remove(s->outage_timer);
        else {
                s->outage_refused = 0;
                s->outage_start_us = g_get_monotonic_time();
        }
        s->outage_ms = ms;
        s->outage_end_us = g_get_monotonic_time() + (int64_t) ms * 1000;
        s->outage_timer = g_timeout_add(ms, on_outage_over, s);

        conns = g_list_reverse(g_list_copy(s->conns));
        log_info("Outage for %u ms%s: dropping %u socket(s), refusing WebSocket upgrades.", ms,
                 extended ? " (restarted)" : "", g_list_length(conns));
        ev = event_new("outage-start");
        event_add_int(ev, "ms", ms);
        event_add_bool(ev, "extended", extended);
        event_add_string(ev, "mode", drop_mode_to_string(mode));
        ids = json_object_new_array();
        for (GList *l = conns; l; l = l->next)
                json_object_array_add(ids, json_object_new_int64(((Conn *) l->data)->id));
        json_object_object_add(ev, "dropped", ids);
        event_emit(ev);

        (void) sim_drop_sockets(s, 0, mode, "outage", dropped);
}

/* The normal handler of the WebSocket path runs before libsoup looks at the upgrade; a status set
 * here answers the request instead. During an outage that is 503: TCP (and TLS) still connect,
 * since the control and token endpoints share the ports, but the upgrade fails at once. */
static void ws_gate(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                    gpointer userdata) {
        Sim *s = userdata;
        SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
        GSocketAddress *remote = soup_server_message_get_remote_address(msg);
        g_autofree char *peer = NULL, *retry = NULL;
        static const char body[] = "bwgw-sim: gateway outage\n";
        unsigned left = sim_outage_remaining_ms(s);
        json_object *ev;

        if (left == 0)
                return; /* the WebSocket handshake proceeds */
        if (G_IS_INET_SOCKET_ADDRESS(remote)) {
                g_autofree char *host = g_inet_address_to_string(
                        g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(remote)));
                peer = g_strdup_printf("%s:%u", host,
                                       g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(remote)));
        }
        retry = g_strdup_printf("%u", (left + 999) / 1000);
        soup_message_headers_replace(h, "Retry-After", retry);
        soup_message_headers_replace(h, "Connection", "close");
        soup_server_message_set_status(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
        soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_STATIC, body, strlen(body));
        s->outage_refused++;
        log_info("Outage: refused a WebSocket upgrade from %s (%u ms left).", peer ?: "?", left);

        ev = event_new("ws-refused");
        event_add_string(ev, "peer", peer);
        event_add_string(ev, "path", path);
        event_add_int(ev, "status", SOUP_STATUS_SERVICE_UNAVAILABLE);
        event_add_int(ev, "remaining_ms", left);
        event_emit(ev);
}

void ws_setup(Sim *s) {
        static char *protocols[] = { (char *) "sip", NULL };

        /* Any path and any Origin (browsers send one; the daemon does not). */
        soup_server_add_handler(s->server, "/", ws_gate, s, NULL);
        soup_server_add_websocket_handler(s->server, "/", NULL, protocols, on_websocket, s, NULL);
}

void ws_shutdown(Sim *s) {
        if (s->outage_timer)
                g_source_remove(s->outage_timer);
        s->outage_timer = 0;
        while (s->conns) {
                Conn *c = s->conns->data;

                s->conns = g_list_delete_link(s->conns, s->conns);
                g_signal_handlers_disconnect_by_data(c->ws, c);
                if (soup_websocket_connection_get_state(c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
                        soup_websocket_connection_close(c->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "shutdown");
                conn_free(c);
        }
}
