/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "phone.h"

static const char *const phone_state_names[_PHONE_STATE_MAX] = {
        [PHONE_STATE_IDLE] = "idle",
        [PHONE_STATE_CONNECTING] = "connecting",
        [PHONE_STATE_CONNECTED] = "connected",
        [PHONE_STATE_RECONNECTING] = "reconnecting",
        [PHONE_STATE_DISCONNECTED] = "disconnected",
};

const char *phone_state_to_string(PhoneState s) {
        return s >= 0 && s < _PHONE_STATE_MAX ? phone_state_names[s] : "idle";
}

typedef struct ConnectWaiter {
        Phone *phone;
        PhoneDoneFunc done;
        void *userdata;
} ConnectWaiter;

static void phone_notify(Phone *p, const char *const *properties) {
        if (p->observer && p->observer->phone_changed)
                p->observer->phone_changed(p, properties, p->observer_data);
}

static void phone_notify_one(Phone *p, const char *property) {
        const char *props[] = { property, NULL };
        phone_notify(p, props);
}

static void phone_set_state(Phone *p, PhoneState s) {
        if (p->state == s)
                return;
        log_debug("Phone: %s → %s", phone_state_to_string(p->state), phone_state_to_string(s));
        p->state = s;
        phone_notify_one(p, "State");
}

static void phone_set_initialized(Phone *p, bool b) {
        if (p->initialized == b)
                return;
        p->initialized = b;
        phone_notify_one(p, "Initialized");
}

static void phone_login_state(Phone *p, bool is_login, const char *cause) {
        if (p->observer && p->observer->login_state_changed)
                p->observer->login_state_changed(p, is_login, cause, p->observer_data);
}

static void phone_flush_connect_waiters(Phone *p, int error, const char *message) {
        g_autoptr(GArray) waiters = p->connect_waiters;

        g_clear_handle_id(&p->connect_timeout, g_source_remove);
        p->connect_waiters = g_array_new(FALSE, FALSE, sizeof(ConnectWaiter));
        for (guint i = 0; i < waiters->len; i++) {
                ConnectWaiter *w = &g_array_index(waiters, ConnectWaiter, i);
                w->done(p, error, message, w->userdata);
        }
}

/* ---- transport ---- */

static void on_token_changed(Token *t, void *userdata) {
        static const char *const props[] = { "TokenState", "TokenExpiresAt", NULL };
        phone_notify(userdata, props);
}

/* Debug SIP trace with the bearer token cut out: the token is never logged. */
static void log_sip_trace(const char *direction, const char *text, size_t len) {
        g_autoptr(GString) s = NULL;
        const char *auth;

        if (log_get_max_level() < LOG_DEBUG)
                return;
        s = g_string_new_len(text, (gssize) len);
        auth = strstr(s->str, "\nAuthorization:");
        if (auth) {
                gsize start = (gsize) (auth - s->str) + strlen("\nAuthorization:");
                const char *eol = strstr(s->str + start, "\r\n");
                gsize end = eol ? (gsize) (eol - s->str) : s->len;
                g_string_erase(s, (gssize) start, (gssize) (end - start));
                g_string_insert(s, (gssize) start, " Bearer <redacted>");
        }
        log_debug("SIP %s:\n%s", direction, s->str);
}

int phone_send_sip(Phone *p, const char *text) {
        log_sip_trace("sent", text, strlen(text));
        return transport_send(p->transport, text);
}

static void on_transport_connected(Transport *t, void *userdata) {
        Phone *p = userdata;

        phone_set_state(p, PHONE_STATE_CONNECTED);
        phone_notify_one(p, "Server");
        phone_login_state(p, false, "connected");
        phone_flush_connect_waiters(p, 0, NULL);
}

static void on_transport_disconnected(Transport *t, bool requested, const char *reason, void *userdata) {
        Phone *p = userdata;

        for (GList *l = p->calls; l;) {
                Call *c = l->data;
                l = l->next; /* the call may be released */
                call_ref(c);
                call_transport_lost(c);
                call_unref(c);
        }
        phone_set_state(p, requested ? PHONE_STATE_IDLE : PHONE_STATE_DISCONNECTED);
        phone_login_state(p, false, "disconnected");
        if (requested)
                phone_flush_connect_waiters(p, -ENOTCONN, "the connection was closed");
        else
                phone_flush_connect_waiters(p, -ENOTCONN, reason);
}

static Call *phone_find_call_by_call_id(Phone *p, const char *call_id) {
        if (!call_id)
                return NULL;
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                if (c->dialog && g_strcmp0(c->dialog->call_id, call_id) == 0)
                        return c;
        }
        return NULL;
}

static void phone_reply(Phone *p, const SipMessage *m, unsigned code, const char *phrase) {
        g_autofree char *text = sip_build_response(m, code, phrase, NULL, NULL, NULL, NULL);

        if (text)
                (void) phone_send_sip(p, text);
}

static void phone_handle_out_of_dialog(Phone *p, const SipMessage *m) {
        const char *method = sip_message_method(m);

        if (g_strcmp0(method, "ACK") == 0)
                return;
        if (g_strcmp0(method, "OPTIONS") == 0 || g_strcmp0(method, "NOTIFY") == 0)
                phone_reply(p, m, 200, "OK");
        else if (g_strcmp0(method, "INVITE") == 0 && !sip_message_to_tag(m)) {
                /* Incoming calls are not built yet; the SDK samples reject them the same way. */
                log_notice("Rejecting an incoming call: not supported yet.");
                phone_reply(p, m, 486, "Busy Here");
        } else if (g_strcmp0(method, "MESSAGE") == 0 || g_strcmp0(method, "SUBSCRIBE") == 0)
                phone_reply(p, m, 405, "Method Not Allowed");
        else
                phone_reply(p, m, 481, "Call/Transaction Does Not Exist");
}

static void on_transport_message(Transport *t, const char *text, size_t len, void *userdata) {
        _cleanup_(sip_message_freep) SipMessage *m = NULL;
        Phone *p = userdata;
        Call *c;
        int r;

        log_sip_trace("received", text, len);
        r = sip_message_parse(text, len, &m);
        if (r < 0) {
                log_warning("Ignoring a malformed SIP message from the gateway (%zu bytes).", len);
                return;
        }

        c = phone_find_call_by_call_id(p, sip_message_call_id(m));
        if (!sip_message_is_request(m)) {
                if (!c) {
                        log_debug("Ignoring a response for an unknown dialog.");
                        return;
                }
                call_ref(c);
                call_handle_response(c, m);
                call_unref(c);
                return;
        }
        if (c && (!sip_message_to_tag(m) || g_strcmp0(sip_message_to_tag(m), c->dialog->local_tag) == 0)) {
                call_ref(c);
                call_handle_request(c, m);
                call_unref(c);
                return;
        }
        phone_handle_out_of_dialog(p, m);
}

static const TransportCallbacks phone_transport_callbacks = {
        .connected = on_transport_connected,
        .disconnected = on_transport_disconnected,
        .message = on_transport_message,
};

/* ---- lifecycle ---- */

Phone *phone_new(Config *config) {
        Phone *p = g_new0(Phone, 1);

        p->config = config;
        p->state = PHONE_STATE_IDLE;
        p->connect_waiters = g_array_new(FALSE, FALSE, sizeof(ConnectWaiter));
        p->token = token_new(config, on_token_changed, p);
        p->transport = transport_new(config, &phone_transport_callbacks, p);
        if (!p->transport)
                return phone_free(p);
        p->ua = (SipUa) {
                .user = config->caller_id,
                .display_name = config->display_name,
                .domain = config->domain,
                .user_agent = config->user_agent,
        };
        return p;
}

Phone *phone_free(Phone *p) {
        if (!p)
                return NULL;
        /* Callbacks must not reach a half-freed phone. */
        p->observer = NULL;
        g_clear_handle_id(&p->connect_timeout, g_source_remove);
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                c->phone = NULL;
                call_unref(c);
        }
        g_list_free(p->calls);
        transport_free(p->transport);
        token_free(p->token);
        if (p->connect_waiters)
                g_array_unref(p->connect_waiters);
        g_free(p->contact_host);
        config_free(p->config);
        g_free(p);
        return NULL;
}

void phone_set_observer(Phone *p, const PhoneObserver *observer, void *userdata) {
        p->observer = observer;
        p->observer_data = userdata;
}

static gboolean on_connect_timeout(gpointer userdata) {
        Phone *p = userdata;
        g_autofree char *message = g_strdup_printf("no connection to %s after %u s",
                                                   transport_get_url(p->transport),
                                                   p->config->connect_timeout_ms / 1000);

        p->connect_timeout = 0;
        log_warning("Connect: %s.", message);
        transport_close(p->transport);
        phone_flush_connect_waiters(p, -ENOTCONN, message);
        return G_SOURCE_REMOVE;
}

static gboolean on_connected_later(gpointer userdata) {
        ConnectWaiter *w = userdata;

        w->done(w->phone, 0, NULL, w->userdata);
        g_free(w);
        return G_SOURCE_REMOVE;
}

void phone_connect(Phone *p, PhoneDoneFunc done, void *userdata) {
        ConnectWaiter w = { p, done, userdata };
        int r;

        if (transport_is_connected(p->transport)) {
                ConnectWaiter *later = g_memdup2(&w, sizeof w);
                g_idle_add(on_connected_later, later);
                return;
        }
        g_array_append_val(p->connect_waiters, w);

        phone_set_initialized(p, true);
        if (p->state == PHONE_STATE_CONNECTING)
                return; /* the attempt under way answers everyone */

        /* A new random Contact host per init(), like the SDK. */
        g_free(p->contact_host);
        p->contact_host = sip_contact_host_new();
        p->ua.contact_host = p->contact_host;
        p->ua.transport = transport_get_via(p->transport);

        phone_set_state(p, PHONE_STATE_CONNECTING);
        r = transport_connect(p->transport);
        if (r < 0 && r != -EALREADY) {
                phone_set_state(p, PHONE_STATE_DISCONNECTED);
                phone_flush_connect_waiters(p, -ENOTCONN, "invalid gateway URL");
                return;
        }
        if (!p->connect_timeout)
                p->connect_timeout = g_timeout_add(p->config->connect_timeout_ms, on_connect_timeout, p);
}

void phone_disconnect(Phone *p) {
        phone_hangup_all(p);
        phone_set_initialized(p, false);
        if (transport_is_connected(p->transport) || p->state == PHONE_STATE_CONNECTING)
                transport_close(p->transport);
        else
                phone_set_state(p, PHONE_STATE_IDLE);
}

/* ---- dialing ---- */

int phone_normalize_number(const char *number, char **ret, char **ret_message) {
        g_autoptr(GString) s = g_string_new("+");
        size_t digits = 0;

        if (!number || !*number) {
                *ret_message = g_strdup("the number is empty");
                return -EINVAL;
        }
        for (const char *c = number; *c; c++) {
                if (g_ascii_isdigit(*c)) {
                        g_string_append_c(s, *c);
                        digits++;
                } else if (*c == '+' && c == number)
                        continue;
                else if (strchr(" \t-.()", *c))
                        continue; /* JsSIP normalizeTarget removes these */
                else {
                        *ret_message = g_strdup_printf("invalid character '%c' in the number; use E.164, "
                                                       "e.g. +15551234567", g_ascii_isprint(*c) ? *c : '?');
                        return -EINVAL;
                }
        }
        if (digits < 2 || digits > 15) {
                *ret_message = g_strdup_printf("an E.164 number has 2 to 15 digits, this one has %zu", digits);
                return -EINVAL;
        }
        *ret = g_string_free(g_steal_pointer(&s), FALSE);
        return 0;
}

typedef struct DialRequest {
        Phone *phone;
        char *number;
        PhoneDialFunc done;
        void *userdata;
} DialRequest;

static void dial_request_finish(DialRequest *d, Call *c, int error, const char *message) {
        d->done(d->phone, c, error, message, d->userdata);
        g_free(d->number);
        g_free(d);
}

static void on_dial_connected(Phone *unused, int error, const char *message, void *userdata) {
        DialRequest *d = userdata;
        Phone *p = d->phone;
        Call *c = NULL;
        int r;

        if (error < 0) {
                g_autofree char *m = g_strdup_printf("not connected to the gateway: %s", message);
                dial_request_finish(d, NULL, error, m);
                return;
        }
        r = call_new_outgoing(p, d->number, &c);
        if (r < 0) {
                dial_request_finish(d, NULL, r == -ENODEV ? -ENODEV : r,
                                    r == -ENODEV ? "audio elements or devices are missing (see the log)"
                                                 : "failed to set up the call (see the log)");
                return;
        }
        p->calls = g_list_append(p->calls, c);
        c->on_bus = true;
        if (p->observer && p->observer->call_added)
                p->observer->call_added(p, c, p->observer_data);
        phone_notify_one(p, "Calls");
        log_info("Call %u: dialing %s.", c->id, c->number);
        dial_request_finish(d, c, 0, NULL);
}

static void on_dial_token(Token *t, int error, const char *message, void *userdata) {
        DialRequest *d = userdata;

        if (error < 0) {
                g_autofree char *m = g_strdup_printf("no OAuth token: %s", message);
                dial_request_finish(d, NULL, -ENOKEY, m);
                return;
        }
        phone_connect(d->phone, on_dial_connected, d);
}

int phone_dial(Phone *p, const char *number, PhoneDialFunc done, void *userdata, char **ret_message) {
        g_autofree char *normalized = NULL;
        DialRequest *d;
        int r;

        r = phone_normalize_number(number, &normalized, ret_message);
        if (r < 0)
                return r;

        d = g_new0(DialRequest, 1);
        d->phone = p;
        d->number = g_steal_pointer(&normalized);
        d->done = done;
        d->userdata = userdata;
        token_acquire(p->token, on_dial_token, d);
        return 0;
}

void phone_hangup_all(Phone *p) {
        for (GList *l = p->calls; l;) {
                Call *c = l->data;
                l = l->next;
                call_ref(c);
                (void) call_hangup(c);
                call_unref(c);
        }
}

Call *phone_find_call(Phone *p, unsigned id) {
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                if (c->id == id && c->on_bus)
                        return c;
        }
        return NULL;
}

GPtrArray *phone_get_published_calls(Phone *p) {
        GPtrArray *a = g_ptr_array_new();

        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                if (c->on_bus)
                        g_ptr_array_add(a, c);
        }
        return a;
}

void phone_notify_call_state(Phone *p, Call *c, CallState old, CallState new) {
        if (p->observer && p->observer->call_state_changed && c->on_bus)
                p->observer->call_state_changed(p, c, old, new, p->observer_data);
}

void phone_notify_call_changed(Phone *p, Call *c, const char *const *properties) {
        if (p->observer && p->observer->call_changed && c->on_bus)
                p->observer->call_changed(p, c, properties, p->observer_data);
}

void phone_release_call(Phone *p, Call *c) {
        if (c->state != CALL_STATE_TERMINATED)
                return;
        if (c->on_bus && !c->linger_source) {
                c->on_bus = false;
                if (p->observer && p->observer->call_removed)
                        p->observer->call_removed(p, c, p->observer_data);
                phone_notify_one(p, "Calls");
        }
        if (!c->on_bus && c->sip_done) {
                p->calls = g_list_remove(p->calls, c);
                c->phone = NULL;
                call_unref(c);
        }
}
