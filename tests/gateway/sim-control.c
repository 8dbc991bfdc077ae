/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "sim-sip.h"

/* The control endpoint: POST /control/<action>?k=v&... (parameters in the query string or an
 * application/x-www-form-urlencoded body) on the plain and the TLS port, so tests can make the
 * gateway act: call the client, cancel, hang up, hold/resume, send DTMF, REFER, OPTIONS; break
 * its token endpoints and INVITE authentication on purpose; and break the network: drop sockets,
 * stop answering keep-alives, go down for a while, drop a call's RTP until the client restarts
 * ICE. Every reply is JSON: 200 {"ok":true,...}, or 4xx/5xx {"error":"..."} (400 bad request, 404
 * unknown action/call/conn, 405 not POST, 409 the call is not in a state for that, 500 media could
 * not start). Everything here is input from a test; none of it may crash the sim. */

#define CONTROL_PATH "/control"

typedef struct Control {
        Sim *s;
        GHashTable *params; /* name → value, not owned */
        json_object *reply;
        const char *error;
        const char *call_id;
        char *error_buf;
} Control;

static bool chars_ok(const char *s, const char *extra, size_t max) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max)
                return false;
        for (const char *p = s; *p; p++)
                if (!g_ascii_isalnum(*p) && !strchr(extra, *p))
                        return false;
        return true;
}

/* A SIP user part we put into URIs: E.164 numbers and plain account names, nothing that could
 * end a URI or a header. */
static bool user_ok(const char *s) {
        return chars_ok(s, "+._~-", 64);
}

static bool host_ok(const char *s) {
        return chars_ok(s, ".-", 253);
}

static int param_uint(Control *ctl, const char *name, unsigned min, unsigned max, unsigned *ret) {
        const char *v = g_hash_table_lookup(ctl->params, name);
        guint64 n;
        char *end = NULL;

        if (!v)
                return 0;
        n = g_ascii_strtoull(v, &end, 10);
        if (!*v || !end || *end || n < min || n > max) {
                ctl->error = ctl->error_buf =
                        g_strdup_printf("%s must be a number from %u to %u", name, min, max);
                return -EINVAL;
        }
        *ret = (unsigned) n;
        return 1;
}

static int check_params(Control *ctl, const char *const *allowed) {
        GHashTableIter it;
        gpointer k;

        g_hash_table_iter_init(&it, ctl->params);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
                bool ok = false;

                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(*a, k) == 0;
                if (!ok) {
                        ctl->error = ctl->error_buf =
                                g_strdup_printf("unknown parameter '%s'", (const char *) k);
                        return -EINVAL;
                }
        }
        return 0;
}

static const char *param(Control *ctl, const char *name) {
        return g_hash_table_lookup(ctl->params, name);
}

static int require_user(Control *ctl, const char *name, const char **ret) {
        const char *v = param(ctl, name);

        if (!v) {
                ctl->error = ctl->error_buf = g_strdup_printf("%s= is required", name);
                return -EINVAL;
        }
        if (!user_ok(v)) {
                ctl->error = ctl->error_buf = g_strdup_printf(
                        "%s must be an E.164 number or a SIP user ([A-Za-z0-9+._~-], up to 64)", name);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int lookup_call(Control *ctl, Call **ret) {
        const char *id = param(ctl, "call_id");
        Call *c;

        if (!id || !*id) {
                ctl->error = "call_id= is required";
                return -EINVAL;
        }
        ctl->call_id = id;
        c = sim_find_call(ctl->s, id);
        if (!c) {
                ctl->error = "unknown call_id";
                return -ENOENT;
        }
        *ret = c;
        return 0;
}

static void reply_call(Control *ctl, const Call *c) {
        json_object_object_add(ctl->reply, "call_id", json_object_new_string(c->call_id));
}

/* The socket an in-dialog request went out on (null: none needed, e.g. RFC 4733 DTMF). */
static void reply_conn(Control *ctl, const Conn *conn) {
        json_object_object_add(ctl->reply, "conn", conn ? json_object_new_int64(conn->id) : NULL);
}

static int action_call(Control *ctl) {
        static const char *const allowed[] = { "to", "from", "conn", "host", "codec", "media", "ack", NULL };
        UacCallParams p = { .codec = MEDIA_CODEC_OPUS, .mode = MEDIA_TONE };
        const char *codec = param(ctl, "codec"), *media = param(ctl, "media");
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 || (r = require_user(ctl, "to", &p.to)) < 0 ||
            (r = require_user(ctl, "from", &p.from)) < 0 ||
            (r = param_uint(ctl, "conn", 1, G_MAXINT, &p.conn_id)) < 0)
                return r;
        p.host = param(ctl, "host");
        if (p.host && !host_ok(p.host)) {
                ctl->error = "host must be a DNS name ([A-Za-z0-9.-])";
                return -EINVAL;
        }
        if (codec && media_codec_from_string(codec, &p.codec) < 0) {
                ctl->error = "codec must be opus, pcmu or pcma";
                return -EINVAL;
        }
        if (media) {
                if (g_ascii_strcasecmp(media, "tone") == 0)
                        p.mode = MEDIA_TONE;
                else if (g_ascii_strcasecmp(media, "echo") == 0)
                        p.mode = MEDIA_ECHO;
                else if (g_ascii_strcasecmp(media, "silent") == 0)
                        p.mode = MEDIA_SILENT;
                else {
                        ctl->error = "media must be tone, echo or silent";
                        return -EINVAL;
                }
        }
        if (param(ctl, "ack")) {
                const char *ack = param(ctl, "ack");
                if (strcmp(ack, "0") != 0 && strcmp(ack, "1") != 0) {
                        ctl->error = "ack must be 0 or 1";
                        return -EINVAL;
                }
                p.no_ack = strcmp(ack, "0") == 0;
        }
        r = uac_call(ctl->s, &p, &c, &ctl->error);
        if (r < 0)
                return r;
        ctl->call_id = c->call_id;
        reply_call(ctl, c);
        json_object_object_add(ctl->reply, "conn", json_object_new_int64(c->conn->id));
        json_object_object_add(ctl->reply, "request_uri", json_object_new_string(c->remote_target));
        json_object_object_add(ctl->reply, "contact_host_learned",
                               json_object_new_boolean(p.host || c->conn->client_host));
        return 0;
}

static int action_simple(Control *ctl, const char *action) {
        static const char *const allowed[] = { "call_id", NULL };
        Conn *conn;
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 || (r = lookup_call(ctl, &c)) < 0)
                return r;
        conn = call_route(c);
        if (strcmp(action, "cancel") == 0)
                r = uac_cancel(c, &ctl->error);
        else if (strcmp(action, "bye") == 0)
                r = uac_bye(c, &ctl->error);
        else if (strcmp(action, "media-stop") == 0) {
                /* The far end's media vanishes (no STUN answers, no RTP): the client's ICE fails. */
                if (!c->media) {
                        ctl->error = "the call has no media";
                        return -EBUSY;
                }
                c->media = media_free(c->media);
                c->media_block = MEDIA_BLOCK_OFF; /* nothing left to block */
                log_info("Call %s: media stopped (control).", c->call_id);
                conn = NULL;
        }
        else
                r = uac_hold(c, strcmp(action, "hold") == 0, &ctl->error);
        if (r < 0)
                return r;
        reply_call(ctl, c);
        reply_conn(ctl, conn);
        return 0;
}

/* RTP/RTCP of one call dropped both ways at the sim, until the client restarts ICE (until=
 * ice-restart, the default), until it renews its media (until=renewal: the old path is dead for
 * good, as when the client's address went away), or until off=1 (until=none): the client must
 * notice the silence and recover. */
static int action_media_block(Control *ctl) {
        static const char *const allowed[] = { "call_id", "until", "off", NULL };
        const char *until = param(ctl, "until"), *off = param(ctl, "off");
        MediaBlock b = MEDIA_BLOCK_UNTIL_ICE_RESTART;
        unsigned sent = 0, received = 0;
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        if (off && strcmp(off, "1") != 0) {
                ctl->error = "off must be 1 (to block, leave it out)";
                return -EINVAL;
        }
        if (off && until) {
                ctl->error = "off=1 and until= exclude each other";
                return -EINVAL;
        }
        if (until && strcmp(until, "ice-restart") == 0)
                b = MEDIA_BLOCK_UNTIL_ICE_RESTART;
        else if (until && strcmp(until, "none") == 0)
                b = MEDIA_BLOCK_UNTIL_OFF;
        else if (until && strcmp(until, "renewal") == 0)
                b = MEDIA_BLOCK_UNTIL_RENEWAL;
        else if (until) {
                ctl->error = "until must be ice-restart, renewal or none";
                return -EINVAL;
        }
        if ((r = lookup_call(ctl, &c)) < 0)
                return r;
        reply_call(ctl, c);
        if (off) {
                bool was = call_media_unblock(c, "control", &sent, &received);

                json_object_object_add(ctl->reply, "blocked", json_object_new_boolean(false));
                json_object_object_add(ctl->reply, "until", NULL);
                json_object_object_add(ctl->reply, "was_blocked", json_object_new_boolean(was));
        } else {
                r = call_media_block(c, b, &ctl->error);
                if (r < 0)
                        return r;
                media_get_dropped(c->media, &sent, &received);
                json_object_object_add(ctl->reply, "blocked", json_object_new_boolean(true));
                json_object_object_add(ctl->reply, "until", json_object_new_string(media_block_to_string(b)));
        }
        json_object_object_add(ctl->reply, "dropped_sent", json_object_new_int64(sent));
        json_object_object_add(ctl->reply, "dropped_received", json_object_new_int64(received));
        return 0;
}

static int action_dtmf(Control *ctl) {
        static const char *const allowed[] = { "call_id", "digits", "method", "duration", NULL };
        const char *method = param(ctl, "method"), *digits = param(ctl, "digits");
        g_autofree char *upper = NULL;
        unsigned duration = DTMF_DEFAULT_MS;
        bool info;
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 ||
            (r = param_uint(ctl, "duration", 40, 6000, &duration)) < 0)
                return r;
        if (!digits || !chars_ok(digits, "*#", 64) ||
            strspn(digits, "0123456789*#ABCDabcd") != strlen(digits)) {
                ctl->error = "digits= is required: 1 to 64 of 0-9 * # A-D (# is %23 in a URL)";
                return -EINVAL;
        }
        if (!method || strcmp(method, "rfc4733") == 0)
                info = false;
        else if (strcmp(method, "info") == 0)
                info = true;
        else {
                ctl->error = "method must be rfc4733 or info";
                return -EINVAL;
        }
        if ((r = lookup_call(ctl, &c)) < 0)
                return r;
        upper = g_ascii_strup(digits, -1);
        r = uac_dtmf(c, upper, info, duration, &ctl->error);
        if (r < 0)
                return r;
        reply_call(ctl, c);
        reply_conn(ctl, info ? call_route(c) : NULL);
        json_object_object_add(ctl->reply, "digits", json_object_new_string(upper));
        json_object_object_add(ctl->reply, "method", json_object_new_string(info ? "info" : "rfc4733"));
        return 0;
}

static int action_refer(Control *ctl) {
        static const char *const allowed[] = { "call_id", "target", NULL };
        const char *target = NULL;
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 || (r = require_user(ctl, "target", &target)) < 0 ||
            (r = lookup_call(ctl, &c)) < 0)
                return r;
        r = uac_refer(c, target, &ctl->error);
        if (r < 0)
                return r;
        reply_call(ctl, c);
        reply_conn(ctl, call_route(c));
        return 0;
}

static int action_options(Control *ctl) {
        static const char *const allowed[] = { "call_id", "to", "conn", NULL };
        g_autofree char *call_id = NULL;
        const char *to = NULL;
        unsigned conn_id = 0;
        Call *c = NULL;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 || (r = param_uint(ctl, "conn", 1, G_MAXINT, &conn_id)) < 0)
                return r;
        if (param(ctl, "call_id")) {
                if ((r = lookup_call(ctl, &c)) < 0)
                        return r;
        } else if ((r = require_user(ctl, "to", &to)) < 0)
                return r;
        r = uac_options(ctl->s, c, to, conn_id, &call_id, &ctl->error);
        if (r < 0)
                return r;
        json_object_object_add(ctl->reply, "call_id", json_object_new_string(call_id));
        reply_conn(ctl, c         ? call_route(c)
                        : conn_id ? sim_find_conn(ctl->s, conn_id)
                                  : sim_newest_conn(ctl->s));
        return 0;
}

static int action_calls(Control *ctl) {
        static const char *const allowed[] = { NULL };
        static const char *const states[] = { "proceeding", "early", "confirmed", "ended" };
        json_object *a = json_object_new_array();
        GHashTableIter it;
        gpointer v;
        int r;

        json_object_object_add(ctl->reply, "calls", a);
        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        g_hash_table_iter_init(&it, ctl->s->calls);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Call *c = v;
                json_object *o = json_object_new_object();
                Conn *route;

                json_object_object_add(o, "call_id", json_object_new_string(c->call_id));
                json_object_object_add(o, "number", json_object_new_string(c->number));
                json_object_object_add(o, "outbound", json_object_new_boolean(c->outbound));
                json_object_object_add(o, "state", json_object_new_string(states[c->state]));
                json_object_object_add(o, "direction",
                                       c->direction ? json_object_new_string(c->direction) : NULL);
                json_object_object_add(o, "remote_direction",
                                       c->remote_direction ? json_object_new_string(c->remote_direction)
                                                           : NULL);
                json_object_object_add(o, "conn", json_object_new_int64(c->conn ? c->conn->id : 0));
                route = call_route(c);
                json_object_object_add(o, "route_conn", route ? json_object_new_int64(route->id) : NULL);
                json_object_object_add(o, "origin_conn", json_object_new_int64(c->origin_conn));
                json_object_object_add(o, "contact_host",
                                       c->contact_host ? json_object_new_string(c->contact_host) : NULL);
                json_object_object_add(o, "media_blocked",
                                       c->media_block != MEDIA_BLOCK_OFF
                                               ? json_object_new_string(media_block_to_string(c->media_block))
                                               : NULL);
                json_object_object_add(o, "ice_restarts", json_object_new_int64(c->n_ice_restarts));
                json_object_array_add(a, o);
        }
        return 0;
}

static int param_drop_mode(Control *ctl, DropMode *ret) {
        const char *mode = param(ctl, "mode");

        *ret = DROP_FIN;
        if (mode && drop_mode_from_string(mode, ret) < 0) {
                ctl->error = "mode must be drop (TCP FIN, no close frame), reset (TCP RST) or close (close "
                             "frame 1001)";
                return -EINVAL;
        }
        return 0;
}

/* The client's sockets end without a close handshake (network loss) or with one (mode=close). */
static int action_drop_socket(Control *ctl) {
        static const char *const allowed[] = { "conn", "mode", NULL };
        json_object *dropped;
        unsigned conn_id = 0;
        DropMode mode;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 ||
            (r = param_uint(ctl, "conn", 1, G_MAXINT, &conn_id)) < 0 || (r = param_drop_mode(ctl, &mode)) < 0)
                return r;
        dropped = json_object_new_array();
        r = sim_drop_sockets(ctl->s, conn_id, mode, "control", dropped);
        if (r < 0) {
                json_object_put(dropped);
                ctl->error = "no open WebSocket with that conn id";
                return r;
        }
        json_object_object_add(ctl->reply, "mode", json_object_new_string(drop_mode_to_string(mode)));
        json_object_object_add(ctl->reply, "dropped", dropped);
        return 0;
}

/* Whether CRLF keep-alives get their CRLF pong; without mode just the current setting. */
static int action_pong(Control *ctl) {
        static const char *const allowed[] = { "mode", NULL };
        const char *mode = param(ctl, "mode");
        int r;

        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        if (mode) {
                if (strcmp(mode, "on") != 0 && strcmp(mode, "off") != 0) {
                        ctl->error = "mode must be on or off";
                        return -EINVAL;
                }
                ctl->s->pong = strcmp(mode, "on") == 0;
                log_info("CRLF keep-alives are %s from now on.", ctl->s->pong ? "answered" : "ignored");
        }
        json_object_object_add(ctl->reply, "pong", json_object_new_boolean(ctl->s->pong));
        return 0;
}

/* The gateway is down for ms: every socket dropped, upgrades refused with 503 meanwhile. */
static int action_outage(Control *ctl) {
        static const char *const allowed[] = { "ms", "mode", NULL };
        json_object *dropped;
        unsigned ms = 0;
        DropMode mode;
        int r;

        if ((r = check_params(ctl, allowed)) < 0 || (r = param_drop_mode(ctl, &mode)) < 0)
                return r;
        r = param_uint(ctl, "ms", 0, 600000, &ms);
        if (r < 0)
                return r;
        if (r == 0) {
                ctl->error = "ms= is required (0 to 600000; 0 ends an outage now)";
                return -EINVAL;
        }
        dropped = json_object_new_array();
        sim_outage(ctl->s, ms, mode, dropped);
        json_object_object_add(ctl->reply, "ms", json_object_new_int64(ms));
        json_object_object_add(ctl->reply, "active",
                               json_object_new_boolean(sim_outage_remaining_ms(ctl->s) > 0));
        json_object_object_add(ctl->reply, "dropped", dropped);
        return 0;
}

/* The open sockets and the hosts their clients used on them (what routing goes by). */
static int action_conns(Control *ctl) {
        static const char *const allowed[] = { NULL };
        json_object *a = json_object_new_array();
        int r;

        json_object_object_add(ctl->reply, "conns", a);
        json_object_object_add(ctl->reply, "pong", json_object_new_boolean(ctl->s->pong));
        json_object_object_add(ctl->reply, "outage_ms_left",
                               json_object_new_int64(sim_outage_remaining_ms(ctl->s)));
        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        for (GList *l = g_list_last(ctl->s->conns); l; l = l->prev) {
                Conn *conn = l->data;
                json_object *o = json_object_new_object(), *hosts = json_object_new_array();
                g_autoptr(GList) keys = g_list_sort(g_hash_table_get_keys(conn->hosts),
                                                    (GCompareFunc) strcmp);

                json_object_object_add(o, "conn", json_object_new_int64(conn->id));
                json_object_object_add(o, "peer", json_object_new_string(conn->peer));
                json_object_object_add(o, "secure", json_object_new_boolean(conn->secure));
                json_object_object_add(o, "usable", json_object_new_boolean(conn_usable(conn)));
                json_object_object_add(o, "client_host",
                                       conn->client_host ? json_object_new_string(conn->client_host) : NULL);
                for (GList *k = keys; k; k = k->next)
                        json_object_array_add(hosts, json_object_new_string(k->data));
                json_object_object_add(o, "hosts", hosts);
                json_object_array_add(a, o);
        }
        return 0;
}

static void reply_token_faults(Control *ctl) {
        const TokenFault *f = &ctl->s->token_fault;
        json_object *o = ctl->reply;
        bool armed = f->status > 0 || f->body != TOKEN_BODY_NONE || f->delay;

        json_object_object_add(o, "armed", json_object_new_boolean(armed));
        json_object_object_add(o, "status", f->status > 0 ? json_object_new_int64(f->status) : NULL);
        json_object_object_add(o, "retry_after", f->status == SIM_HTTP_TOO_MANY_REQUESTS
                                                         ? json_object_new_int64(f->retry_after)
                                                         : NULL);
        json_object_object_add(o, "body", f->body != TOKEN_BODY_NONE
                                                  ? json_object_new_string(token_body_fault_to_string(f->body))
                                                  : NULL);
        json_object_object_add(o, "delay_ms", f->delay ? json_object_new_int64(f->delay_ms) : NULL);
        /* Requests the fault still applies to; null: until cleared (or nothing armed). */
        json_object_object_add(o, "count", armed && f->count > 0 ? json_object_new_int64(f->count) : NULL);
        json_object_object_add(o, "expires_in", json_object_new_int64(token_lifetime_now(ctl->s)));
}

/* status/body/delay_ms (+ retry_after, count) replace the armed fault as a whole; expires_in on
 * its own leaves it alone; no parameters at all clear everything, expires_in included. */
static int action_token_faults(Control *ctl) {
        static const char *const allowed[] = { "status", "retry_after", "body", "delay_ms", "expires_in",
                                               "count", NULL };
        TokenFault f = { .retry_after = 1 };
        const char *body = param(ctl, "body");
        unsigned expires_in = 0;
        int r, has_status, has_retry, has_delay, has_expires, has_count;
        Sim *s = ctl->s;

        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        if ((has_status = param_uint(ctl, "status", 400, 599, &f.status)) < 0 ||
            (has_retry = param_uint(ctl, "retry_after", 0, 3600, &f.retry_after)) < 0 ||
            (has_delay = param_uint(ctl, "delay_ms", 0, 120000, &f.delay_ms)) < 0 ||
            (has_expires = param_uint(ctl, "expires_in", 1, 86400, &expires_in)) < 0 ||
            (has_count = param_uint(ctl, "count", 1, 1000, &f.count)) < 0)
                return -EINVAL;
        if (body && token_body_fault_from_string(body, &f.body) < 0) {
                ctl->error = "body must be garbage, not-object, no-token, bad-expiry or empty";
                return -EINVAL;
        }
        if (has_status && body) {
                ctl->error = "status and body exclude each other (a body fault answers 200)";
                return -EINVAL;
        }
        if (has_retry && f.status != SIM_HTTP_TOO_MANY_REQUESTS) {
                ctl->error = "retry_after goes with status=429";
                return -EINVAL;
        }
        if (has_count && !has_status && !body && !has_delay) {
                ctl->error = "count needs status, body or delay_ms";
                return -EINVAL;
        }
        f.delay = has_delay;

        if (g_hash_table_size(ctl->params) == 0) {
                s->token_fault = (TokenFault) {};
                s->token_expires_in = 0;
                log_info("Token faults cleared; tokens live %u s.", s->token_lifetime);
        } else {
                if (has_status || body || has_delay) {
                        const char *what = has_status ? "status" : body ? "body" : "delay";

                        s->token_fault = f;
                        if (f.count > 0)
                                log_info("Token fault armed (%s%s) for the next %u requests.", what,
                                         has_delay && (has_status || body) ? " + delay" : "", f.count);
                        else
                                log_info("Token fault armed (%s%s) until cleared.", what,
                                         has_delay && (has_status || body) ? " + delay" : "");
                }
                if (has_expires) {
                        s->token_expires_in = expires_in;
                        log_info("Tokens minted from now on live %u s.", expires_in);
                }
        }
        reply_token_faults(ctl);
        return 0;
}

static int action_revoke_tokens(Control *ctl) {
        static const char *const allowed[] = { NULL };
        json_object *ev;
        unsigned n;
        int r;

        if ((r = check_params(ctl, allowed)) < 0)
                return r;
        n = token_revoke_all(ctl->s);
        log_info("Revoked %u tokens.", n);
        ev = event_new("tokens-revoked");
        event_add_int(ev, "count", n);
        event_emit(ev);
        json_object_object_add(ctl->reply, "count", json_object_new_int64(n));
        return 0;
}

/* The next count initial INVITEs are refused with status whatever their token; no parameters
 * clear it. */
static int action_invite_auth(Control *ctl) {
        static const char *const allowed[] = { "status", "count", NULL };
        unsigned status = 0, count = 1;
        int r;
        Sim *s = ctl->s;

        if ((r = check_params(ctl, allowed)) < 0 || param_uint(ctl, "count", 1, 1000, &count) < 0)
                return -EINVAL;
        if (g_hash_table_size(ctl->params) == 0) {
                s->invite_auth_status = 0;
                s->invite_auth_left = 0;
        } else {
                const char *v = param(ctl, "status");

                if (!v) {
                        ctl->error = "status= is required (401 or 403)";
                        return -EINVAL;
                }
                if (strcmp(v, "401") != 0 && strcmp(v, "403") != 0) {
                        ctl->error = "status must be 401 or 403";
                        return -EINVAL;
                }
                status = strcmp(v, "401") == 0 ? SOUP_STATUS_UNAUTHORIZED : SOUP_STATUS_FORBIDDEN;
                s->invite_auth_status = status;
                s->invite_auth_left = count;
                log_info("The next %u INVITEs get %u.", count, status);
        }
        json_object_object_add(ctl->reply, "status",
                               s->invite_auth_left > 0 ? json_object_new_int64(s->invite_auth_status) : NULL);
        json_object_object_add(ctl->reply, "count", json_object_new_int64(s->invite_auth_left));
        return 0;
}

static guint control_status(int r) {
        switch (r) {
        case 0:
                return SOUP_STATUS_OK;
        case -EINVAL:
                return SOUP_STATUS_BAD_REQUEST;
        case -ENOENT:
                return SOUP_STATUS_NOT_FOUND;
        case -EIO:
        case -ENODEV:
                return SOUP_STATUS_INTERNAL_SERVER_ERROR;
        default:
                return SOUP_STATUS_CONFLICT;
        }
}

static void control_handler(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                            gpointer userdata) {
        Control ctl = { .s = userdata };
        SoupMessageHeaders *req_headers = soup_server_message_get_request_headers(msg);
        g_autoptr(GHashTable) params = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_autoptr(GHashTable) form = NULL;
        const char *action = path + strlen(CONTROL_PATH), *ctype, *text;
        json_object *ev;
        GHashTableIter it;
        gpointer k, v;
        guint status;
        int r;

        if (*action == '/')
                action++;
        /* "ok" first, for people reading curl output; actions add their fields after it. */
        ctl.reply = json_object_new_object();
        json_object_object_add(ctl.reply, "ok", json_object_new_boolean(true));
        ctl.params = params;

        /* A form body first, the query string wins. */
        ctype = soup_message_headers_get_content_type(req_headers, NULL);
        if (ctype && g_ascii_strcasecmp(ctype, "application/x-www-form-urlencoded") == 0) {
                g_autoptr(GBytes) body =
                        soup_message_body_flatten(soup_server_message_get_request_body(msg));
                g_autofree char *b = g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body));

                form = soup_form_decode(b);
                g_hash_table_iter_init(&it, form);
                while (g_hash_table_iter_next(&it, &k, &v))
                        g_hash_table_replace(params, g_strdup(k), g_strdup(v));
        }
        if (query) {
                g_hash_table_iter_init(&it, query);
                while (g_hash_table_iter_next(&it, &k, &v))
                        g_hash_table_replace(params, g_strdup(k), g_strdup(v ? v : ""));
        }

        if (strcmp(soup_server_message_get_method(msg), "POST") != 0) {
                soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", "POST");
                ctl.error = "use POST";
                r = -EPERM;
                status = SOUP_STATUS_METHOD_NOT_ALLOWED;
        } else {
                if (strcmp(action, "call") == 0)
                        r = action_call(&ctl);
                else if (strcmp(action, "cancel") == 0 || strcmp(action, "bye") == 0 ||
                         strcmp(action, "hold") == 0 || strcmp(action, "resume") == 0 ||
                         strcmp(action, "media-stop") == 0)
                        r = action_simple(&ctl, action);
                else if (strcmp(action, "media-block") == 0)
                        r = action_media_block(&ctl);
                else if (strcmp(action, "dtmf") == 0)
                        r = action_dtmf(&ctl);
                else if (strcmp(action, "refer") == 0)
                        r = action_refer(&ctl);
                else if (strcmp(action, "options") == 0)
                        r = action_options(&ctl);
                else if (strcmp(action, "calls") == 0)
                        r = action_calls(&ctl);
                else if (strcmp(action, "conns") == 0)
                        r = action_conns(&ctl);
                else if (strcmp(action, "drop-socket") == 0)
                        r = action_drop_socket(&ctl);
                else if (strcmp(action, "pong") == 0)
                        r = action_pong(&ctl);
                else if (strcmp(action, "outage") == 0)
                        r = action_outage(&ctl);
                else if (strcmp(action, "token-faults") == 0)
                        r = action_token_faults(&ctl);
                else if (strcmp(action, "revoke-tokens") == 0)
                        r = action_revoke_tokens(&ctl);
                else if (strcmp(action, "invite-auth") == 0)
                        r = action_invite_auth(&ctl);
                else {
                        ctl.error = "unknown action; one of call, cancel, bye, hold, resume, media-stop, "
                                    "media-block, dtmf, refer, options, calls, conns, drop-socket, pong, outage, "
                                    "token-faults, revoke-tokens, invite-auth";
                        r = -ENOENT;
                }
                status = control_status(r);
        }

        if (r < 0) {
                json_object_put(ctl.reply);
                ctl.reply = json_object_new_object();
                json_object_object_add(ctl.reply, "error",
                                       json_object_new_string(ctl.error ? ctl.error : "failed"));
                log_info("Control %.64s: %u %s", action, status, ctl.error ? ctl.error : "failed");
        } else
                log_info("Control %.64s: ok", action);
        text = json_object_to_json_string_ext(ctl.reply,
                                              JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        soup_server_message_set_status(msg, status, NULL);
        soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control",
                                     "no-store");
        soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, text, strlen(text));

        ev = event_new("control");
        event_add_string(ev, "action", action);
        event_add_int(ev, "status", status);
        if (ctl.call_id)
                event_add_string(ev, "call_id", ctl.call_id);
        if (r < 0)
                event_add_string(ev, "error", ctl.error ? ctl.error : "failed");
        {
                json_object *p = json_object_new_object();

                g_hash_table_iter_init(&it, params);
                while (g_hash_table_iter_next(&it, &k, &v))
                        json_object_object_add(p, k, json_object_new_string(v));
                json_object_object_add(ev, "params", p);
        }
        event_emit(ev);

        json_object_put(ctl.reply);
        g_free(ctl.error_buf);
}

void control_setup(Sim *s) {
        soup_server_add_handler(s->server, CONTROL_PATH, control_handler, s, NULL);
}
