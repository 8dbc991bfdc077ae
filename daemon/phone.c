/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <string.h>

#include "audio-devices.h"
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

static void on_token_changed(Token *t, bool new_token, void *userdata) {
        static const char *const props[] = { "TokenState", "TokenExpiresAt", "TokenError", NULL };
        Phone *p = userdata;

        phone_notify(p, props);
        if (new_token && p->observer && p->observer->token_refreshed)
                p->observer->token_refreshed(p, token_get_expires_at(t), p->observer_data);
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
        /* The erased token bytes may linger in the buffer's slack: wipe all of it. */
        explicit_bzero(s->str, s->allocated_len);
}

int phone_send_sip(Phone *p, const char *text) {
        log_sip_trace("sent", text, strlen(text));
        return transport_send(p->transport, text);
}

/* A Dial() waiting for a token or a connection. */
typedef struct DialRequest {
        Phone *phone;
        char *number;
        CallOptions options; /* input/output point at the copies below */
        char *input, *output;
        PhoneDialFunc done;
        void *userdata;
} DialRequest;

static void dial_request_free(DialRequest *d) {
        g_free(d->number);
        g_free(d->input);
        g_free(d->output);
        g_free(d);
}

/* The SDK's reconnect back-off (gateway-protocol.md §1): floor(random·2^k)+1 s, clamped to
 * [ReconnectMinSec, ReconnectMaxSec] (2 and 30 by default, as setReconnectIntervals()). */

static void phone_start_connect(Phone *p);
static void phone_cancel_dials(Phone *p, const char *why);

#define PHONE_NETWORK_SETTLE_MS 500

static gboolean on_reconnect(gpointer userdata) {
        Phone *p = userdata;

        p->reconnect_source = 0;
        if (p->initialized)
                phone_start_connect(p);
        return G_SOURCE_REMOVE;
}

static void phone_schedule_reconnect(Phone *p) {
        unsigned k = MIN(p->reconnect_attempt, 10u);
        unsigned delay = (unsigned) (g_random_double() * (double) (1u << k)) + 1;

        delay = CLAMP(delay, p->config->reconnect_min_s, p->config->reconnect_max_s);
        p->reconnect_attempt++;
        g_clear_handle_id(&p->reconnect_source, g_source_remove);
        p->reconnect_source = g_timeout_add_seconds(delay, on_reconnect, p);
        log_info("Reconnecting to the gateway in %u s.", delay);
}

static void on_transport_connected(Transport *t, void *userdata) {
        Phone *p = userdata;

        p->reconnect_attempt = 0;
        p->reconnect_now = false;
        phone_set_state(p, PHONE_STATE_CONNECTED);
        phone_notify_one(p, "Server");
        phone_login_state(p, false, "connected");
        for (GList *l = p->calls; l; l = l->next)
                call_transport_restored(l->data);
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
        phone_login_state(p, false, "disconnected");
        if (requested && p->initialized && p->connect_waiters->len > 0) {
                /* A Connect()/Dial() came while the old socket was still closing: go again. */
                phone_start_connect(p);
                return;
        }
        if (!requested && p->initialized) {
                /* Connect()/Dial() waiting for this attempt get its failure now; the phone keeps
                 * trying in the background, as the SDK does. */
                phone_set_state(p, PHONE_STATE_RECONNECTING);
                phone_flush_connect_waiters(p, -ENOTCONN, reason);
                if (p->reconnect_now) {
                        p->reconnect_now = false;
                        log_info("Reconnecting to the gateway now (the network changed).");
                        phone_start_connect(p);
                } else
                        phone_schedule_reconnect(p);
                return;
        }
        phone_set_state(p, p->initialized ? PHONE_STATE_DISCONNECTED : PHONE_STATE_IDLE);
        phone_flush_connect_waiters(p, -ENOTCONN, requested ? "the connection was closed" : reason);
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

/* The user part of the Request-URI must be ours (gateway-protocol.md §8), else 404. */
static bool request_uri_is_ours(Phone *p, const SipMessage *m) {
        const char *ruri = sip_message_request_uri(m);
        g_autofree char *expected = g_strdup_printf("sip:%s@", p->config->caller_id);

        return ruri && g_str_has_prefix(ruri, expected);
}

static void phone_handle_incoming_invite(Phone *p, SipMessage *invite) {
        g_autofree char *from = NULL;
        Call *c = NULL;
        int r;

        if (!request_uri_is_ours(p, invite)) {
                log_notice("Incoming call for somebody else; 404.");
                phone_reply(p, invite, 404, "Not Found");
                sip_message_free(invite);
                return;
        }
        from = g_strdup(sip_message_header(invite, "From"));
        r = call_new_incoming(p, invite, &c);
        if (r < 0)
                return; /* the call answered the INVITE with the right error */
        p->calls = g_list_append(p->calls, c);
        c->on_bus = true;
        if (p->observer && p->observer->call_added)
                p->observer->call_added(p, c, p->observer_data);
        phone_notify_one(p, "Calls");
        log_info("Call %u: incoming call from %s.", c->id, c->number);
        phone_update_tones(p);
        if (p->observer && p->observer->incoming_call)
                p->observer->incoming_call(p, c, c->number, p->observer_data);
}

static void phone_handle_out_of_dialog(Phone *p, SipMessage **mp) {
        const SipMessage *m = *mp;
        const char *method = sip_message_method(m);

        if (g_strcmp0(method, "ACK") == 0)
                return;
        if (g_strcmp0(method, "OPTIONS") == 0 || g_strcmp0(method, "NOTIFY") == 0)
                phone_reply(p, m, 200, "OK");
        else if (g_strcmp0(method, "INVITE") == 0 && !sip_message_to_tag(m))
                phone_handle_incoming_invite(p, TAKE_PTR(*mp));
        else if (g_strcmp0(method, "MESSAGE") == 0 || g_strcmp0(method, "SUBSCRIBE") == 0)
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
        phone_handle_out_of_dialog(p, &m);
}

static const TransportCallbacks phone_transport_callbacks = {
        .connected = on_transport_connected,
        .disconnected = on_transport_disconnected,
        .message = on_transport_message,
};

/* ---- lifecycle ---- */

bool phone_has_device(Phone *p, CallDevice d, const char *node) {
        return !node || !*node ||
               audio_devices_has(p->devices, d == CALL_DEVICE_INPUT ? AUDIO_CLASS_SOURCE : AUDIO_CLASS_SINK, node);
}

char *phone_device_missing_message(CallDevice d, const char *node) {
        return g_strdup_printf("No %s named '%s' (see the %s property).", d == CALL_DEVICE_INPUT ? "microphone" : "speaker",
                               node, d == CALL_DEVICE_INPUT ? "Inputs" : "Outputs");
}

static int phone_set_device(Phone *p, char **field, CallDevice d, const char *node) {
        if (!phone_has_device(p, d, node))
                return -ENODEV;
        g_free(*field);
        *field = node && *node ? g_strdup(node) : NULL;
        return 0;
}

int phone_set_input(Phone *p, const char *node) {
        return phone_set_device(p, &p->config->input, CALL_DEVICE_INPUT, node);
}

int phone_set_output(Phone *p, const char *node) {
        return phone_set_device(p, &p->config->output, CALL_DEVICE_OUTPUT, node);
}

int phone_set_ringer(Phone *p, const char *node) {
        int r = phone_set_device(p, &p->config->ringer, CALL_DEVICE_OUTPUT, node);

        if (r >= 0)
                phone_update_tones(p); /* a call ringing now moves to it */
        return r;
}

static bool call_device_present(CallDevice d, const char *node, void *userdata) {
        return phone_has_device(userdata, d, node);
}

static void on_devices_changed(AudioDevices *devices, void *userdata) {
        Phone *p = userdata;

        for (GList *l = p->calls; l; l = l->next)
                call_devices_changed(l->data, call_device_present, p);
        if (p->observer && p->observer->devices_changed)
                p->observer->devices_changed(p, p->observer_data);
}

void phone_notify_audio_device(Phone *p, Call *c, const char *kind, const char *node, const char *reason) {
        phone_update_tones(p); /* a tone on that call's speaker moves along */
        if (p->observer && p->observer->audio_device_changed && c->on_bus)
                p->observer->audio_device_changed(p, c, kind, node, reason, p->observer_data);
}

static char *local_addresses(void);

/* addresses: the local addresses now (taken), which decide about the calls' media. */
static void phone_handle_network_change(Phone *p, char *addresses, const char *why) {
        g_free(p->local_addresses);
        p->local_addresses = addresses;
        if (!p->initialized)
                return;
        if (p->reconnect_source) {
                /* Waiting out a back-off: the reason to wait may be gone, try now. */
                log_info("Network changed (%s): reconnecting now.", why);
                g_clear_handle_id(&p->reconnect_source, g_source_remove);
                phone_start_connect(p);
        } else if (transport_is_connected(p->transport)) {
                /* If the probe finds the socket dead, the new network is worth trying at once. */
                p->reconnect_now = true;
                transport_probe(p->transport, why);
        }
        /* Media paths may have broken as well: re-check them (now, or after the reconnect), or,
         * when the addresses a call's media used are gone, give it new media. */
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;

                if (!call_media_addresses_gone(c, p->local_addresses))
                        (void) call_ice_restart(c, why);
                else if (call_renew_media(c, why) == -EBUSY)
                        log_debug("Call %u: a media renewal is on its way already.", c->id);
        }
}

void phone_network_changed(Phone *p, const char *why) {
        /* Resume comes without a settle: the addresses as they are now. */
        phone_handle_network_change(p, local_addresses(), why);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The local addresses, sorted: what a socket's survival depends on. Route-only churn (which
 * netlink reports in several bursts per change) leaves it alone; the keep-alive covers that. */
static char *local_addresses(void) {
        struct ifaddrs *ifa = NULL;
        g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);

        if (getifaddrs(&ifa) < 0)
                return g_strdup("?");
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                char host[NI_MAXHOST];
                socklen_t len;

                if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
                        continue;
                if (i->ifa_addr->sa_family == AF_INET)
                        len = sizeof(struct sockaddr_in);
                else if (i->ifa_addr->sa_family == AF_INET6)
                        len = sizeof(struct sockaddr_in6);
                else
                        continue;
                if (getnameinfo(i->ifa_addr, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) == 0)
                        g_ptr_array_add(list, g_strdup_printf("%s/%s", i->ifa_name, host));
        }
        freeifaddrs(ifa);
        g_ptr_array_sort(list, (GCompareFunc) compare_strings);
        g_ptr_array_add(list, NULL);
        return g_strjoinv(" ", (char **) list->pdata);
}

static gboolean on_network_settled(gpointer userdata) {
        Phone *p = userdata;
        g_autofree char *addresses = local_addresses();

        p->network_settle = 0;
        if (g_strcmp0(addresses, p->local_addresses) == 0)
                return G_SOURCE_REMOVE;
        log_debug("Local addresses now: %s", addresses);
        phone_handle_network_change(p, TAKE_PTR(addresses), "network changed");
        return G_SOURCE_REMOVE;
}

static void on_network_changed(GNetworkMonitor *monitor, gboolean available, gpointer userdata) {
        Phone *p = userdata;

        /* One address change comes as a burst of route and address events. */
        g_clear_handle_id(&p->network_settle, g_source_remove);
        p->network_settle = g_timeout_add(PHONE_NETWORK_SETTLE_MS, on_network_settled, p);
}

Phone *phone_new(Config *config) {
        Phone *p = g_new0(Phone, 1);

        p->config = config;
        p->state = PHONE_STATE_IDLE;
        p->connect_waiters = g_array_new(FALSE, FALSE, sizeof(ConnectWaiter));
        p->token = token_new(config, on_token_changed, p);
        p->devices = audio_devices_new(on_devices_changed, p);
        p->transport = transport_new(config, &phone_transport_callbacks, p);
        if (!p->transport)
                return phone_free(p);
        p->ua = (SipUa) {
                .user = config->caller_id,
                .display_name = config->display_name,
                .domain = config->domain,
                .user_agent = config->user_agent,
        };
        p->local_addresses = local_addresses();
        p->network_monitor = g_object_ref(g_network_monitor_get_default());
        p->network_changed_handler = g_signal_connect(p->network_monitor, "network-changed",
                                                      G_CALLBACK(on_network_changed), p);
        return p;
}

Phone *phone_free(Phone *p) {
        if (!p)
                return NULL;
        /* Deferred D-Bus replies are answered, then nothing may reach a half-freed phone. */
        phone_cancel_dials(p, "bwcalld is shutting down");
        phone_flush_connect_waiters(p, -ECANCELED, "bwcalld is shutting down");
        p->observer = NULL;
        g_clear_handle_id(&p->connect_timeout, g_source_remove);
        g_clear_handle_id(&p->reconnect_source, g_source_remove);
        g_clear_handle_id(&p->network_settle, g_source_remove);
        if (p->network_monitor) {
                g_clear_signal_handler(&p->network_changed_handler, p->network_monitor);
                g_clear_object(&p->network_monitor);
        }
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                c->phone = NULL;
                call_unref(c);
        }
        g_list_free(p->calls);
        transport_free(p->transport);
        token_free(p->token); /* answers its waiters (our DialRequests) with -ECANCELED */
        audio_devices_free(p->devices);
        g_list_free_full(p->dial_requests, (GDestroyNotify) dial_request_free); /* only cancelled ones remain */
        if (p->connect_waiters)
                g_array_unref(p->connect_waiters);
        g_free(p->contact_host);
        g_free(p->local_addresses);
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
        /* Answer the waiters first: closing reports itself as a requested close. */
        phone_flush_connect_waiters(p, -ENOTCONN, message);
        transport_close(p->transport);
        return G_SOURCE_REMOVE;
}

static gboolean on_connected_later(gpointer userdata) {
        ConnectWaiter *w = userdata;

        w->done(w->phone, 0, NULL, w->userdata);
        g_free(w);
        return G_SOURCE_REMOVE;
}

static void phone_start_connect(Phone *p) {
        int r;

        if (p->state == PHONE_STATE_CONNECTING || transport_is_connected(p->transport))
                return;
        g_clear_handle_id(&p->reconnect_source, g_source_remove);
        p->ua.transport = transport_get_via(p->transport);
        phone_set_state(p, p->reconnect_attempt > 0 ? PHONE_STATE_RECONNECTING : PHONE_STATE_CONNECTING);
        r = transport_connect(p->transport);
        if (r == -EALREADY)
                return; /* the old socket is still closing; its "disconnected" restarts us */
        if (r < 0) {
                phone_set_state(p, PHONE_STATE_DISCONNECTED);
                phone_flush_connect_waiters(p, -ENOTCONN, "invalid gateway URL");
                return;
        }
        if (!p->connect_timeout && p->connect_waiters->len > 0)
                p->connect_timeout = g_timeout_add(p->config->connect_timeout_ms, on_connect_timeout, p);
}

void phone_connect(Phone *p, PhoneDoneFunc done, void *userdata) {
        ConnectWaiter w = { p, done, userdata };

        if (transport_is_connected(p->transport)) {
                ConnectWaiter *later = g_memdup2(&w, sizeof w);
                g_idle_add(on_connected_later, later);
                return;
        }
        g_array_append_val(p->connect_waiters, w);

        /* A new random Contact host per init(), like the SDK, but not per reconnect: the gateway
         * routes in-dialog requests of live calls by it (gateway-protocol.md §1). */
        if (!p->initialized || !p->contact_host) {
                g_free(p->contact_host);
                p->contact_host = sip_contact_host_new();
                p->ua.contact_host = p->contact_host;
        }
        phone_set_initialized(p, true);
        if (!p->connect_timeout)
                p->connect_timeout = g_timeout_add(p->config->connect_timeout_ms, on_connect_timeout, p);
        phone_start_connect(p);
}

void phone_disconnect(Phone *p) {
        phone_cancel_dials(p, "the phone was disconnected");
        g_clear_handle_id(&p->reconnect_source, g_source_remove);
        p->reconnect_attempt = 0;
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

static void dial_request_finish(DialRequest *d, Call *c, int error, const char *message) {
        d->phone->dial_requests = g_list_remove(d->phone->dial_requests, d);
        if (d->done)
                d->done(d->phone, c, error, message, d->userdata);
        dial_request_free(d);
}

/* Dials still waiting for a token or a connection must not place a call after Disconnect()
 * or outlive the phone; they answer their callers now. Their token/connect callbacks find
 * them gone (done == NULL marks a cancelled request that is freed when its callback runs). */
static void phone_cancel_dials(Phone *p, const char *why) {
        for (GList *l = p->dial_requests; l; l = l->next) {
                DialRequest *d = l->data;
                PhoneDialFunc done = d->done;

                d->done = NULL;
                if (done)
                        done(p, NULL, -ECANCELED, why, d->userdata);
        }
}

static void on_dial_connected(Phone *unused, int error, const char *message, void *userdata) {
        DialRequest *d = userdata;
        Phone *p = d->phone;
        Call *c = NULL;
        int r;

        if (!d->done) {
                dial_request_finish(d, NULL, -ECANCELED, NULL);
                return;
        }
        if (error < 0) {
                g_autofree char *m = g_strdup_printf("not connected to the gateway: %s", message);
                dial_request_finish(d, NULL, error, m);
                return;
        }
        r = call_new_outgoing(p, d->number, &d->options, &c);
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

        if (!d->done) {
                dial_request_finish(d, NULL, -ECANCELED, NULL);
                return;
        }
        if (error < 0) {
                g_autofree char *m = g_strdup_printf("no OAuth token: %s", message);
                dial_request_finish(d, NULL, -ENOKEY, m);
                return;
        }
        phone_connect(d->phone, on_dial_connected, d);
}

int phone_dial(Phone *p, const char *number, const CallOptions *options, PhoneDialFunc done, void *userdata,
               char **ret_message) {
        g_autofree char *normalized = NULL;
        DialRequest *d;
        int r;

        r = phone_normalize_number(number, &normalized, ret_message);
        if (r < 0)
                return r;
        for (CallDevice dev = 0; dev < _CALL_DEVICE_MAX; dev++) {
                const char *node = dev == CALL_DEVICE_INPUT ? options->input : options->output;

                if (!phone_has_device(p, dev, node)) {
                        *ret_message = phone_device_missing_message(dev, node);
                        return -ENODEV;
                }
        }

        d = g_new0(DialRequest, 1);
        d->phone = p;
        d->number = g_steal_pointer(&normalized);
        d->options = *options;
        d->input = g_strdup(options->input);
        d->output = g_strdup(options->output);
        d->options.input = d->input;
        d->options.output = d->output;
        d->done = done;
        d->userdata = userdata;
        p->dial_requests = g_list_prepend(p->dial_requests, d);
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

/* The local tones follow the calls: ringback for an outgoing call that rings without early
 * media; for an incoming call a ring on the ringer when no other call is up, else the
 * call-waiting beep on the speaker of the call that is. */
void phone_update_tones(Phone *p) {
        const Config *config = p->config;
        Call *up = NULL;

        for (GList *l = p->calls; l && !up; l = l->next) {
                Call *c = l->data;
                if (c->state == CALL_STATE_ACTIVE || c->state == CALL_STATE_HELD || c->state == CALL_STATE_EARLY_MEDIA)
                        up = c;
        }
        for (GList *l = p->calls; l; l = l->next) {
                Call *c = l->data;
                ToneKind kind = _TONE_MAX;
                const char *target = NULL;

                if (c->direction == CALL_DIRECTION_OUTGOING && c->state == CALL_STATE_RINGING &&
                    config->tone_ringback) {
                        kind = TONE_RINGBACK;
                        target = call_device_in_use(c, CALL_DEVICE_OUTPUT);
                } else if (c->state == CALL_STATE_INCOMING && up && config->tone_call_waiting) {
                        kind = TONE_CALL_WAITING;
                        target = call_device_in_use(up, CALL_DEVICE_OUTPUT);
                } else if (c->state == CALL_STATE_INCOMING && !up && config->tone_ring) {
                        kind = TONE_RING;
                        target = config->ringer;
                }
                call_set_tone(c, kind, target);
        }
}

void phone_notify_call_state(Phone *p, Call *c, CallState old, CallState new) {
        phone_update_tones(p);
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

void phone_notify_hold(Phone *p, Call *c, bool is_hold, bool is_remote) {
        if (p->observer && p->observer->hold_state_changed && c->on_bus)
                p->observer->hold_state_changed(p, c, is_hold, is_remote, p->observer_data);
}

void phone_notify_dtmf(Phone *p, Call *c, char digit) {
        if (p->observer && p->observer->dtmf_received && c->on_bus)
                p->observer->dtmf_received(p, c, digit, p->observer_data);
}

void phone_notify_transfer_requested(Phone *p, Call *c, const char *target) {
        if (p->observer && p->observer->transfer_requested && c->on_bus)
                p->observer->transfer_requested(p, c, target, p->observer_data);
}
