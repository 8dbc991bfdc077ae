/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "log.h"
#include "sim-sip.h"

/* SIP over WebSocket, the gateway side (gateway-protocol.md, "What a local test gateway must do").
 * Reliable transport, so no retransmissions; transactions are reduced to what the SDK needs:
 * responses echo the request's Via/From/To/Call-ID/CSeq, an INVITE's final response is sent
 * once, ACKs are absorbed, CANCEL matches the INVITE by Call-ID + branch + CSeq. A Call is the
 * dialog plus the scripted called party chosen by the Request-URI user (the number plan), or a
 * call the gateway places to the client (sim-uac.c). */

#define CALL_LINGER_SECONDS 32 /* an ended call still absorbs ACKs and answers BYE with 481 */
#define REDIRECT_TARGET "+15550001000"

/* ---- sending ---- */

static void sim_respond(Sim *s, Conn *conn, const SipMsg *req, int code, const char *to_tag,
                        const char *extra_headers, const char *body, const char *number) {
        g_autofree char *text = NULL, *tag = NULL;
        json_object *ev;

        if (!sipmsg_can_respond(req)) {
                log_warning("Cannot answer a request without Via/From/To/Call-ID/CSeq; dropping it.");
                return;
        }
        if (!conn_usable(conn)) {
                /* It came in on a socket we are closing (drop-socket mode=close): no answer. */
                log_info("Not answering %s %u: its socket is closing.", req->cseq_method ?: "?", req->cseq);
                return;
        }
        /* Every response but 100 needs a To tag; outside a dialog any fresh one will do. */
        if (!to_tag)
                to_tag = tag = sip_random_token(TAG_LEN);
        text = sip_build_response(req, code, to_tag, extra_headers, body ? "application/sdp" : NULL, body);
        conn_send(conn, text);

        ev = event_new("response-sent");
        event_add_call(ev, req->call_id, number);
        event_add_int(ev, "status", code);
        event_add_string(ev, "reason", sip_reason_phrase(code));
        event_add_string(ev, "method", req->cseq_method ? req->cseq_method : req->method);
        event_add_int(ev, "cseq", req->cseq);
        event_add_int(ev, "conn", conn ? conn->id : 0);
        if (body)
                event_add_string(ev, "body", body);
        event_emit(ev);
}

/* Our Contact, naming the port of the socket the message goes out on. */
char *call_contact_header(const Call *c, const Conn *conn) {
        guint port = conn ? conn->local_port : c->sim->ws_port;

        return g_strdup_printf("Contact: <sip:" SIM_NAME "@127.0.0.1:%u;transport=ws>\r\n", port);
}

/* A response to the call's INVITE, now or later (after ringing): it goes where the call's
 * requests would go, not necessarily where the INVITE came in. 18x and 2xx carry our Contact;
 * body is an SDP or NULL. */
static void call_respond_invite_with(Call *c, int code, const char *extra_headers, const char *body) {
        g_autofree char *contact = NULL, *extra = NULL;
        Conn *conn;

        if (c->final_sent || !c->invite) {
                log_debug("Call %s: final response already sent, not sending %d.", c->call_id, code);
                return;
        }
        if (code >= 200) {
                c->final_sent = true;
                c->final_status = code;
        }
        conn = call_route(c);
        if (!conn) {
                call_emit_no_route(c, "INVITE", c->invite->cseq, code, NULL);
                return;
        }
        if (code > 100 && code < 300)
                contact = call_contact_header(c, conn);
        extra = g_strconcat(contact ?: "", extra_headers ?: "", NULL);
        sim_respond(c->sim, conn, c->invite, code, c->local_tag, extra, body, c->number);
}

static void call_respond_invite(Call *c, int code, const char *body) {
        call_respond_invite_with(c, code, NULL, body);
}

static void call_reject(Call *c, int code, const char *extra_headers) {
        g_autofree char *cause = g_strdup_printf("rejected-%d", code);

        call_respond_invite_with(c, code, extra_headers, NULL);
        call_end(c, cause);
}

/* ---- calls ---- */

static void call_free(gpointer p) {
        Call *c = p;

        if (!c)
                return;
        if (c->timer)
                g_source_remove(c->timer);
        if (c->reap_timer)
                g_source_remove(c->reap_timer);
        uac_call_cleanup(c);
        media_free(c->pending_media);
        sipmsg_free(c->renewal_reinvite);
        media_free(c->media);
        sipmsg_free(c->invite);
        if (c->txns)
                g_ptr_array_unref(c->txns);
        g_free(c->call_id);
        g_free(c->number);
        g_free(c->local_tag);
        g_free(c->local_id);
        g_free(c->remote_id);
        g_free(c->remote_target);
        g_free(c->contact_host);
        g_free(c->local_sdp);
        g_free(c);
}

Call *call_new(Sim *s, const char *call_id, const char *number, Conn *conn) {
        Call *c = g_new0(Call, 1);

        c->sim = s;
        c->call_id = g_strdup(call_id);
        c->number = g_strdup(number ? number : "");
        c->conn = conn;
        c->origin_conn = conn ? conn->id : 0;
        c->local_tag = sip_random_token(TAG_LEN);
        c->local_cseq = (uint32_t) g_random_int_range(1, 10000);
        c->txns = g_ptr_array_new_with_free_func((GDestroyNotify) txn_free);
        g_hash_table_insert(s->calls, g_strdup(c->call_id), c);
        return c;
}

Call *sim_find_call(Sim *s, const char *call_id) {
        return call_id ? g_hash_table_lookup(s->calls, call_id) : NULL;
}

static gboolean call_on_reap(gpointer userdata) {
        Call *c = userdata;

        c->reap_timer = 0;
        g_hash_table_remove(c->sim->calls, c->call_id); /* frees c */
        return G_SOURCE_REMOVE;
}

void call_end(Call *c, const char *cause) {
        json_object *ev;

        if (c->state == CALL_ENDED)
                return;
        c->state = CALL_ENDED;
        if (c->timer)
                g_source_remove(c->timer);
        c->timer = 0;
        uac_call_cleanup(c);
        c->media = media_free(c->media);
        c->pending_media = media_free(c->pending_media);
        c->renewal_reinvite = sipmsg_free(c->renewal_reinvite);
        c->media_block = MEDIA_BLOCK_OFF; /* went with the media; no event */
        log_info("Call %s to %s ended: %s", c->call_id, c->number, cause);

        ev = event_new("call-ended");
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "cause", cause);
        event_emit(ev);

        c->reap_timer = g_timeout_add_seconds(CALL_LINGER_SECONDS, call_on_reap, c);
}

Conn *call_route(Call *c) {
        Conn *conn = sim_conn_for_host(c->sim, c->contact_host);

        /* By the client's Contact host, never by the socket the call started on: the SDK keeps
         * its host and its dialogs across reconnects. A reconnected client is only known on its
         * new socket once it sent something there (as with the real gateway, which has nothing
         * else to go by). The call's own socket only serves while the client's Contact is not
         * known yet (a gateway call before its 2xx) or named a host never seen on a socket. */
        if (!conn && conn_usable(c->conn))
                conn = c->conn;
        return conn;
}

void call_emit_no_route(Call *c, const char *method, uint32_t cseq, int status, const char *action) {
        json_object *ev = event_new("no-route");

        log_warning("Call %s: no open WebSocket for the client's Contact host %s; %s %s not sent.",
                    c->call_id, c->contact_host ?: "(unknown)", status > 0 ? "response to" : "request", method);
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "method", method);
        if (cseq > 0)
                event_add_int(ev, "cseq", cseq);
        if (status > 0)
                event_add_int(ev, "status", status);
        event_add_string(ev, "action", action);
        event_add_string(ev, "contact_host", c->contact_host);
        event_add_int(ev, "origin_conn", c->origin_conn);
        event_emit(ev);
}

int call_check_route(Call *c, const char *method, const char *action, const char **ret_error) {
        if (call_route(c))
                return 0;
        call_emit_no_route(c, method, 0, 0, action);
        *ret_error = "no open WebSocket has carried the client's Contact host (it has not reconnected, or "
                     "sent nothing on its new socket yet)";
        return -ENOTCONN;
}

/* The sim sends while the client's last SDP wants to receive (hold: sendonly/inactive stop it). */
void call_update_sending(Call *c) {
        bool send = !c->remote_direction || strcmp(c->remote_direction, "sendrecv") == 0 ||
                    strcmp(c->remote_direction, "recvonly") == 0;
        json_object *ev;

        if (!c->media)
                return;
        media_set_sending(c->media, send);
        ev = event_new("media-sending");
        event_add_call(ev, c->call_id, c->number);
        event_add_bool(ev, "sending", send && c->mode != MEDIA_SILENT);
        event_add_string(ev, "remote_direction", c->remote_direction ? c->remote_direction : "sendrecv");
        event_emit(ev);
}

const char *media_block_to_string(MediaBlock b) {
        switch (b) {
        case MEDIA_BLOCK_UNTIL_ICE_RESTART:
                return "ice-restart";
        case MEDIA_BLOCK_UNTIL_OFF:
                return "none";
        case MEDIA_BLOCK_UNTIL_RENEWAL:
                return "renewal";
        default:
                return NULL;
        }
}

int call_media_block(Call *c, MediaBlock until, const char **ret_error) {
        json_object *ev;
        int r;

        assert(until != MEDIA_BLOCK_OFF);
        if (!c->media) {
                *ret_error = "the call has no media (ended, media-stop, or not started)";
                return -EBUSY;
        }
        r = media_set_blocked(c->media, true);
        if (r < 0) {
                *ret_error = "webrtcbin has no ICE transport yet (media not negotiated)";
                return r;
        }
        c->media_block = until;
        log_info("Call %s: RTP/RTCP blocked both ways until %s.", c->call_id, media_block_to_string(until));
        ev = event_new("media-blocked");
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "until", media_block_to_string(until));
        event_emit(ev);
        return 0;
}

bool call_media_unblock(Call *c, const char *reason, unsigned *ret_sent, unsigned *ret_received) {
        unsigned sent = 0, received = 0;
        json_object *ev;

        if (c->media_block == MEDIA_BLOCK_OFF || !c->media) {
                c->media_block = MEDIA_BLOCK_OFF;
                return false;
        }
        (void) media_set_blocked(c->media, false);
        media_get_dropped(c->media, &sent, &received);
        c->media_block = MEDIA_BLOCK_OFF;
        log_info("Call %s: media unblocked (%s) after dropping %u sent and %u received packets.", c->call_id,
                 reason, sent, received);
        ev = event_new("media-unblocked");
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "reason", reason);
        event_add_int(ev, "dropped_sent", sent);
        event_add_int(ev, "dropped_received", received);
        event_emit(ev);
        if (ret_sent)
                *ret_sent = sent;
        if (ret_received)
                *ret_received = received;
        return true;
}

static gboolean call_on_hangup_timer(gpointer userdata) {
        Call *c = userdata;

        c->timer = 0;
        uac_send_bye(c, "hangup");
        return G_SOURCE_REMOVE;
}

static void call_try_answer(Call *c) {
        json_object *ev;

        /* Audio without ICE credentials, fingerprint or candidates: a WebRTC client must refuse it. */
        static const char unusable_sdp[] = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                                           "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\n"
                                           "a=rtpmap:111 opus/48000/2\r\n";

        if (c->state >= CALL_CONFIRMED || !c->may_answer || !c->local_sdp)
                return;
        call_respond_invite(c, 200, c->script == SCRIPT_NO_SDP    ? NULL
                                    : c->script == SCRIPT_BAD_SDP ? unusable_sdp
                                                                  : c->local_sdp);
        c->state = CALL_CONFIRMED;
        c->answered = true;
        c->direction = "sendrecv";
        log_info("Call %s to %s answered.", c->call_id, c->number);

        ev = event_new("answered");
        event_add_call(ev, c->call_id, c->number);
        event_emit(ev);

        if (c->script == SCRIPT_ANSWER_HANGUP)
                c->timer = g_timeout_add(c->sim->hangup_ms, call_on_hangup_timer, c);
}

static gboolean call_on_wait_over(gpointer userdata) {
        Call *c = userdata;

        c->timer = 0;
        c->may_answer = true;
        call_try_answer(c);
        return G_SOURCE_REMOVE;
}

static void call_emit_media_failed(Call *c, const char *message) {
        json_object *ev = event_new("media-failed");

        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "message", message);
        event_emit(ev);
}

static void call_renewal_answer_ready(Call *c, const char *sdp, int error, const char *message);

static void call_on_sdp_ready(Media *m, const char *sdp, int error, const char *message, void *userdata) {
        Call *c = userdata;

        if (c->state == CALL_ENDED)
                return;
        if (m == c->pending_media) {
                call_renewal_answer_ready(c, sdp, error, message);
                return;
        }
        if (error < 0) {
                call_emit_media_failed(c, message);
                if (c->outbound)
                        call_end(c, "media-failed");
                else
                        call_reject(c, 500, NULL);
                return;
        }
        c->local_sdp = g_strdup(sdp);
        c->direction = "sendrecv";
        if (c->outbound) {
                uac_send_invite(c);
                return;
        }
        if (c->script == SCRIPT_EARLY_MEDIA && !c->early_sent) {
                c->early_sent = true;
                call_respond_invite(c, 183, c->local_sdp);
                c->state = CALL_EARLY;
                c->timer = g_timeout_add(c->sim->answer_delay_ms, call_on_wait_over, c);
        }
        call_try_answer(c);
}

static void call_on_media_connected(Media *m, void *userdata) {
        Call *c = userdata;
        json_object *ev = event_new("media-connected");

        event_add_call(ev, c->call_id, c->number);
        event_emit(ev);
}

static void call_on_frequency(Media *m, double hz, double dbfs, void *userdata) {
        Call *c = userdata;
        json_object *ev = event_new("frequency");

        event_add_call(ev, c->call_id, c->number);
        event_add_double(ev, "hz", hz);
        event_add_double(ev, "dbfs", round(dbfs * 10.0) / 10.0);
        event_emit(ev);
}

static void call_on_first_audio(Media *m, double dbfs, void *userdata) {
        Call *c = userdata;
        json_object *ev = event_new("first-audio");

        event_add_call(ev, c->call_id, c->number);
        event_add_double(ev, "dbfs", round(dbfs * 10.0) / 10.0);
        event_emit(ev);
}

static void call_emit_dtmf(Call *c, const char *digit, const char *method) {
        json_object *ev = event_new("dtmf");

        log_info("Call %s: DTMF %s (%s)", c->call_id, digit, method);
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "digit", digit);
        event_add_string(ev, "method", method);
        event_emit(ev);
}

static void call_on_dtmf(Media *m, const char *digit, void *userdata) {
        call_emit_dtmf(userdata, digit, "rfc4733");
}

static void call_on_dtmf_sent(Media *m, const char *digit, void *userdata) {
        Call *c = userdata;
        json_object *ev = event_new("dtmf-sent");

        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "digit", digit);
        event_add_string(ev, "method", "rfc4733");
        event_emit(ev);
}

static void call_on_media_failed(Media *m, const char *message, void *userdata) {
        Call *c = userdata;

        log_warning("Call %s: media failed: %s", c->call_id, message);
        call_emit_media_failed(c, message);
}

static const MediaCallbacks call_media_callbacks = {
        .sdp_ready = call_on_sdp_ready,
        .connected = call_on_media_connected,
        .frequency = call_on_frequency,
        .first_audio = call_on_first_audio,
        .dtmf = call_on_dtmf,
        .dtmf_sent = call_on_dtmf_sent,
        .failed = call_on_media_failed,
};

int call_start_media(Call *c, bool offer) {
        if (offer)
                return media_new_offer(c->mode, c->codec, TONE_HZ, c->sim->ice_address,
                                       &call_media_callbacks, c, &c->media);
        return media_new_answer(c->invite->body, c->mode, c->codec, TONE_HZ, c->sim->ice_address,
                                &call_media_callbacks, c, &c->media);
}

/* The number plan; see --help and README.md. */
static CallScript number_plan(const char *user, int *ret_code) {
        static const char prefix[] = "+1555000";
        const char *x;
        int n = 0;

        *ret_code = 404;
        if (!user || strncmp(user, prefix, strlen(prefix)) != 0)
                return SCRIPT_REJECT;
        x = user + strlen(prefix);
        if (strlen(x) != 4)
                return SCRIPT_REJECT;
        for (int i = 0; i < 4; i++) {
                if (!g_ascii_isdigit(x[i]))
                        return SCRIPT_REJECT;
                n = n * 10 + (x[i] - '0');
        }
        switch (n) {
        case 1000:
                return SCRIPT_RING_ANSWER;
        case 1001:
                return SCRIPT_ECHO;
        case 1002:
                return SCRIPT_RING_FOREVER;
        case 1003:
                return SCRIPT_EARLY_MEDIA;
        case 1004:
                return SCRIPT_ANSWER_HANGUP;
        case 1005:
                return SCRIPT_ANSWER_PCMU;
        case 1006:
                return SCRIPT_ANSWER_PCMA;
        case 1007:
                return SCRIPT_REINVITE_491;
        case 1008:
                return SCRIPT_REINVITE_488;
        case 1009:
                return SCRIPT_SILENT;
        case 1010:
                *ret_code = 302;
                return SCRIPT_REDIRECT;
        case 1011:
                return SCRIPT_NO_SDP;
        case 1012:
                return SCRIPT_BAD_SDP;
        default:
                if (n >= 400 && n <= 699)
                        *ret_code = n;
                return SCRIPT_REJECT;
        }
}

int sim_number_outcome(const char *user) {
        int code = 404;

        switch (number_plan(user, &code)) {
        case SCRIPT_REJECT:
                return code;
        case SCRIPT_RING_FOREVER:
                return 480; /* nobody answers */
        default:
                return 200; /* answers (a redirect is followed to +15550001000, which answers) */
        }
}

static void call_start(Call *c, int reject_code) {
        Sim *s = c->sim;
        int r;

        c->mode = MEDIA_TONE;
        c->codec = MEDIA_CODEC_OPUS;
        switch (c->script) {
        case SCRIPT_REJECT:
                call_reject(c, reject_code, NULL);
                return;
        case SCRIPT_REDIRECT: {
                g_autofree char *contact =
                        g_strdup_printf("Contact: <sip:" REDIRECT_TARGET "@%s>\r\n", s->domain);

                call_reject(c, 302, contact);
                return;
        }
        case SCRIPT_ECHO:
                c->mode = MEDIA_ECHO;
                break;
        case SCRIPT_SILENT:
                c->mode = MEDIA_SILENT;
                break;
        case SCRIPT_ANSWER_PCMU:
                c->codec = MEDIA_CODEC_PCMU;
                break;
        case SCRIPT_ANSWER_PCMA:
                c->codec = MEDIA_CODEC_PCMA;
                break;
        default:
                break;
        }
        r = media_check_offer(c->invite->body_len > 0 ? c->invite->body : NULL, c->codec);
        if (r < 0) {
                log_warning_errno(r, "Call %s: unusable SDP offer for %s: %m", c->call_id,
                                  media_codec_name(c->codec));
                call_reject(c, 488, NULL);
                return;
        }

        switch (c->script) {
        case SCRIPT_RING_ANSWER:
                call_respond_invite(c, 180, NULL);
                c->state = CALL_EARLY;
                c->timer = g_timeout_add(s->ring_ms, call_on_wait_over, c);
                break;
        case SCRIPT_RING_FOREVER:
                call_respond_invite(c, 180, NULL);
                c->state = CALL_EARLY;
                return; /* no media */
        case SCRIPT_EARLY_MEDIA:
                /* 183 goes out with the SDP once it is ready (call_on_sdp_ready). */
                break;
        default:
                c->may_answer = true;
                break;
        }
        r = call_start_media(c, false);
        if (r < 0) {
                log_warning_errno(r, "Call %s: cannot start media: %m", c->call_id);
                call_reject(c, r == -EPROTONOSUPPORT || r == -EBADMSG ? 488 : 500, NULL);
        }
}

/* ---- requests ---- */

static json_object *request_event(Conn *conn, const SipMsg *m, const char *number) {
        json_object *ev = event_new("request");

        event_add_call(ev, m->call_id, number);
        event_add_string(ev, "method", m->method);
        event_add_int(ev, "cseq", m->cseq);
        event_add_string(ev, "request_uri", m->request_uri);
        event_add_int(ev, "conn", conn->id);
        json_object_object_add(ev, "headers", sipmsg_headers_json(m));
        if (m->body_len > 0) {
                event_add_string(ev, "body", m->body);
                if (strcmp(m->method, "INVITE") == 0) {
                        const char *dir = media_sdp_direction(m->body);

                        if (dir)
                                event_add_string(ev, "direction", dir);
                }
        }
        return ev;
}

#define AUTH_CHALLENGE "WWW-Authenticate: Bearer realm=\"" SIM_NAME "\", error=\"invalid_token\"\r\n"

static void sip_handle_initial_invite(Conn *conn, SipMsg *m) {
        Sim *s = conn->sim;
        g_autofree char *jti = NULL, *injected_error = NULL;
        const char *auth_error = NULL;
        unsigned injected = 0;
        bool authorized;
        json_object *ev;
        Call *c;
        int code = 0;

        c = g_hash_table_lookup(s->calls, m->call_id);
        /* After a refusal (a 401/403 above all: RFC 3261 §22.2) the client may send the INVITE
         * again in the same Call-ID with a higher CSeq and no To tag. That is a new transaction,
         * not a loop: the refused call, only lingering to absorb its ACK, makes way (early
         * reaping; a late ACK of it is absorbed all the same). */
        if (c && !c->outbound && c->state == CALL_ENDED && c->final_status >= 300 && c->invite &&
            m->cseq > c->invite->cseq) {
                log_info("INVITE %s: new attempt (CSeq %u) after %d.", m->call_id, m->cseq, c->final_status);
                g_hash_table_remove(s->calls, m->call_id); /* frees c */
                c = NULL;
        }
        if (c) {
                ev = request_event(conn, m, c->number);
                event_emit(ev);
                if (c->invite && c->invite->cseq == m->cseq &&
                    g_strcmp0(c->invite->via_branch, m->via_branch) == 0)
                        log_debug("Ignoring retransmitted INVITE for %s.", m->call_id);
                else
                        sim_respond(s, conn, m, 482, NULL, NULL, NULL, c->number);
                sipmsg_free(m);
                return;
        }

        authorized = token_check_authorization(s, sipmsg_header(m, "Authorization"), &jti, &auth_error) >= 0;
        /* /control/invite-auth: refuse this one whatever its token (even with --no-auth). The
         * token is still checked above, so the event keeps its token_jti. */
        if (s->invite_auth_left > 0) {
                injected = s->invite_auth_status;
                if (--s->invite_auth_left == 0)
                        s->invite_auth_status = 0;
                authorized = false;
                auth_error = injected_error = g_strdup_printf("injected %u", injected);
        }
        ev = request_event(conn, m, m->ruri_user);
        event_add_bool(ev, "authorized", authorized);
        if (!authorized)
                event_add_string(ev, "auth_error", auth_error);
        if (jti)
                event_add_string(ev, "token_jti", jti);
        if (token_is_revoked(s, jti))
                event_add_bool(ev, "token_revoked", true);
        event_emit(ev);

        c = call_new(s, m->call_id, m->ruri_user, conn);
        c->local_id = g_strdup(sipmsg_header(m, "To"));
        c->remote_id = g_strdup(sipmsg_header(m, "From"));
        c->remote_target = g_strdup(m->contact_uri);
        c->contact_host = g_strdup(m->contact_host);
        c->remote_direction = m->body_len > 0 ? media_sdp_direction(m->body) : NULL;
        c->invite = m;
        log_info("INVITE %s for %s on conn %u (%s)", c->call_id, c->number, conn->id,
                 authorized ? "authorized" : auth_error);

        call_respond_invite(c, 100, NULL);
        if (injected > 0) {
                call_reject(c, (int) injected, AUTH_CHALLENGE);
                return;
        }
        if (!authorized && s->require_auth) {
                call_reject(c, 401, AUTH_CHALLENGE);
                return;
        }
        c->script = number_plan(c->number, &code);
        call_start(c, code);
}

static void sip_handle_cancel(Conn *conn, SipMsg *m, Call *c) {
        Sim *s = conn->sim;

        if (!c || !c->invite || c->invite->cseq != m->cseq ||
            g_strcmp0(c->invite->via_branch, m->via_branch) != 0) {
                sim_respond(s, conn, m, 481, NULL, NULL, NULL, c ? c->number : NULL);
                return;
        }
        sim_respond(s, conn, m, 200, c->local_tag, NULL, NULL, c->number);
        if (c->state != CALL_ENDED && !c->final_sent) {
                call_respond_invite(c, 487, NULL);
                call_end(c, "cancel");
        }
}

static void call_emit_ice_restart(Call *c, const MediaIceRestart *ir) {
        json_object *ev = event_new("ice-restart");

        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "old_ufrag", ir->old_remote_ufrag);
        event_add_string(ev, "new_ufrag", ir->remote_ufrag);
        event_add_string(ev, "answer_ufrag", ir->local_ufrag);
        event_add_int(ev, "candidates", ir->n_candidates);
        event_emit(ev);
}

/* The new answerer of a media renewal has its answer: the 200 to the client's re-INVITE, and
 * the new media replaces the old one (a media-block goes with the old one). */
static void call_renewal_answer_ready(Call *c, const char *sdp, int error, const char *message) {
        _cleanup_(sipmsg_freep) SipMsg *req = TAKE_PTR(c->renewal_reinvite);
        Conn *conn = sim_find_conn(c->sim, c->renewal_conn);
        g_autofree char *contact = NULL, *answer = NULL;
        json_object *ev;

        if (error < 0 || !req || !conn) {
                log_warning("Call %s: media renewal failed: %s", c->call_id, message ?: "its socket is gone");
                c->pending_media = media_free(c->pending_media);
                if (req && conn)
                        sim_respond(c->sim, conn, req, 488, c->local_tag, NULL, NULL, c->number);
                return;
        }
        answer = media_sdp_with_direction(sdp, media_direction_mirror(c->remote_direction ?: "sendrecv"), false);
        g_free(c->local_sdp);
        c->local_sdp = g_strdup(answer ?: sdp);
        c->direction = media_direction_mirror(c->remote_direction ?: "sendrecv");
        contact = call_contact_header(c, conn);
        sim_respond(c->sim, conn, req, 200, c->local_tag, contact, c->local_sdp, c->number);
        /* The block went with the old media, but for one until off=1 (a far end gone for good). */
        if (c->media_block != MEDIA_BLOCK_UNTIL_OFF)
                (void) call_media_unblock(c, "media-renewal", NULL, NULL);
        media_free(c->media);
        c->media = TAKE_PTR(c->pending_media);
        /* A block until off=1 (a far end gone for good) holds for the new media too. */
        if (c->media_block == MEDIA_BLOCK_UNTIL_OFF && media_set_blocked(c->media, true) < 0)
                log_warning("Call %s: cannot block the renewed media.", c->call_id);
        c->n_renewals++;
        log_info("Call %s: media renewed (new DTLS session and candidates from the client).", c->call_id);
        ev = event_new("media-renewed");
        event_add_call(ev, c->call_id, c->number);
        event_emit(ev);
        call_update_sending(c);
}

/* Returns true when it kept m (a media renewal answers it later). */
static bool sip_handle_reinvite(Conn *conn, SipMsg *m, Call *c) {
        g_autofree char *contact = NULL, *sdp = NULL;
        _cleanup_(media_ice_restart_clear) MediaIceRestart ir = {};
        const char *offer_dir = NULL, *dir;
        bool restart = false;
        int r;

        /* Before our 200 (or while our own re-INVITE waits for its answer: glare) → 491. */
        if (c->state != CALL_CONFIRMED || !c->local_sdp || c->reinvite_txn || c->pending_media) {
                sim_respond(conn->sim, conn, m, 491, c->local_tag, NULL, NULL, c->number);
                return false;
        }
        c->n_reinvites++;
        if (c->script == SCRIPT_REINVITE_491 && c->n_reinvites == 1) {
                sim_respond(conn->sim, conn, m, 491, c->local_tag, NULL, NULL, c->number);
                return false;
        }
        if (c->script == SCRIPT_REINVITE_488) {
                sim_respond(conn->sim, conn, m, 488, c->local_tag, NULL, NULL, c->number);
                return false;
        }
        if (m->body_len > 0)
                offer_dir = media_sdp_direction(m->body);
        /* Another DTLS certificate: the client built new media (its old addresses may be gone).
         * A new answerer for the offer, as for an initial INVITE; the 200 goes when its answer
         * is gathered (call_renewal_answer_ready()). */
        if (offer_dir && c->media && media_offer_is_new_session(c->media, m->body)) {
                r = media_new_answer(m->body, c->mode, c->codec, TONE_HZ, c->sim->ice_address, &call_media_callbacks,
                                     c, &c->pending_media);
                if (r < 0) {
                        log_warning_errno(r, "Call %s: cannot answer the media renewal: %m", c->call_id);
                        sim_respond(conn->sim, conn, m, 488, c->local_tag, NULL, NULL, c->number);
                        return false;
                }
                sim_respond(conn->sim, conn, m, 100, NULL, NULL, NULL, c->number);
                c->remote_direction = offer_dir;
                c->renewal_reinvite = m;
                c->renewal_conn = conn->id;
                return true;
        }
        /* New ICE credentials in the offer: an ICE restart (the client restarted its libnice
         * stream and offers its unchanged SDP with new ufrag/pwd). We restart ours the same way,
         * under webrtcbin, and answer with new credentials; webrtcbin negotiates nothing. */
        if (offer_dir && c->media) {
                r = media_answer_ice_restart(c->media, m->body, &ir);
                if (r < 0) {
                        log_warning_errno(r, "Call %s: cannot restart ICE: %m", c->call_id);
                        sim_respond(conn->sim, conn, m, 500, c->local_tag, NULL, NULL, c->number);
                        return false;
                }
                restart = r > 0;
        }
        /* Mirror the offer's direction (hold: sendonly → recvonly) and make the media follow
         * (nothing is sent while the client holds); the WebRTC session itself is not
         * renegotiated, which is enough for hold/unhold. An offerless re-INVITE gets our SDP
         * as it is. */
        if (offer_dir) {
                dir = media_direction_mirror(offer_dir);
                sdp = media_sdp_with_direction(c->local_sdp, dir,
                                               restart || g_strcmp0(dir, c->direction) != 0);
                if (sdp && restart) {
                        g_autofree char *with_ice = media_sdp_with_ice_credentials(sdp, ir.local_ufrag,
                                                                                   ir.local_pwd, false);

                        g_free(sdp);
                        sdp = TAKE_PTR(with_ice);
                }
                if (!sdp && restart) {
                        /* libnice has the new credentials; an answer with the old ones would
                         * leave the client checking against credentials nobody uses. */
                        log_warning("Call %s: cannot write the ICE restart answer.", c->call_id);
                        sim_respond(conn->sim, conn, m, 500, c->local_tag, NULL, NULL, c->number);
                        return false;
                }
                if (sdp) {
                        g_free(c->local_sdp);
                        c->local_sdp = TAKE_PTR(sdp);
                        c->direction = dir;
                }
                c->remote_direction = offer_dir;
        }
        contact = call_contact_header(c, conn);
        sim_respond(conn->sim, conn, m, 200, c->local_tag, contact, c->local_sdp, c->number);
        if (restart) {
                c->n_ice_restarts++;
                log_info("Call %s: ICE restarted (client ufrag %s → %s, ours now %s).", c->call_id,
                         ir.old_remote_ufrag, ir.remote_ufrag, ir.local_ufrag);
                call_emit_ice_restart(c, &ir);
                if (c->media_block == MEDIA_BLOCK_UNTIL_ICE_RESTART)
                        (void) call_media_unblock(c, "ice-restart", NULL, NULL);
        }
        if (offer_dir)
                call_update_sending(c);
        return false;
}

static void sip_handle_info(Conn *conn, SipMsg *m, Call *c) {
        const char *ctype = sipmsg_header(m, "Content-Type");

        sim_respond(conn->sim, conn, m, 200, c->local_tag, NULL, NULL, c->number);
        if (ctype && g_ascii_strncasecmp(ctype, "application/dtmf-relay", 22) == 0 && m->body_len > 0) {
                g_auto(GStrv) lines = g_strsplit_set(m->body, "\r\n", -1);

                for (char **l = lines; *l; l++)
                        if (g_ascii_strncasecmp(*l, "Signal=", 7) == 0) {
                                g_autofree char *d = g_strstrip(g_strdup(*l + 7));
                                if (*d)
                                        call_emit_dtmf(c, d, "info");
                        }
        }
}

/* The user part of a SIP/tel URI in a header value ("<sip:+1555@host;x>", "sip:u@h", "tel:+1"),
 * or NULL. */
static char *uri_user(const char *value) {
        g_autofree char *uri = NULL;
        const char *lt = strchr(value, '<'), *u;
        size_t n;

        if (lt) {
                const char *gt = strchr(lt, '>');

                if (!gt)
                        return NULL;
                uri = g_strndup(lt + 1, gt - lt - 1);
        } else
                uri = g_strndup(value, strcspn(value, ";"));
        g_strstrip(uri);
        if (g_str_has_prefix(uri, "sip:"))
                u = uri + 4;
        else if (g_str_has_prefix(uri, "sips:"))
                u = uri + 5;
        else if (g_str_has_prefix(uri, "tel:"))
                u = uri + 4;
        else
                return NULL;
        n = g_str_has_prefix(uri, "tel:") ? strcspn(u, ";?") : strcspn(u, "@;?");
        if (n == 0 || (!g_str_has_prefix(uri, "tel:") && u[n] != '@'))
                return NULL;
        return g_strndup(u, n);
}

/* REFER from the client: a blind transfer of the far end. 202, then NOTIFYs with the outcome
 * the number plan gives the target (gateway-protocol.md §8). */
static void sip_handle_refer(Conn *conn, SipMsg *m, Call *c) {
        g_autofree char *contact = NULL, *user = NULL, *frag = NULL;
        const char *refer_to = sipmsg_header(m, "Refer-To");
        json_object *ev;
        int status;

        if (!refer_to)
                refer_to = sipmsg_header(m, "r");
        if (c->state != CALL_CONFIRMED || (c->transfer && !c->transfer->final_sent)) {
                sim_respond(conn->sim, conn, m, 491, c->local_tag, NULL, NULL, c->number);
                return;
        }
        if (!refer_to || !(user = uri_user(refer_to))) {
                sim_respond(conn->sim, conn, m, 400, c->local_tag, NULL, NULL, c->number);
                return;
        }
        contact = call_contact_header(c, conn);
        sim_respond(conn->sim, conn, m, 202, c->local_tag, contact, NULL, c->number);

        status = sim_number_outcome(user);
        frag = g_strdup_printf("SIP/2.0 %d %s", status, sip_reason_phrase(status));
        log_info("Call %s: REFER to %s → %s", c->call_id, user, frag);
        ev = event_new("transfer");
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "target", user);
        event_add_string(ev, "refer_to", refer_to);
        event_add_int(ev, "cseq", m->cseq);
        event_add_int(ev, "outcome", status);
        event_add_string(ev, "sipfrag", frag);
        event_emit(ev);

        uac_start_transfer_notify(c, m->cseq, status);
}

static void sip_handle_request(Conn *conn, SipMsg *m) {
        Sim *s = conn->sim;
        Call *c;

        /* The socket the client uses now for this host: in-dialog routing follows it. */
        conn_note_host(conn, m->via_host);
        conn_note_host(conn, m->contact_host);

        if (strcmp(m->method, "INVITE") == 0 && !m->to_tag) {
                sip_handle_initial_invite(conn, m);
                return;
        }

        c = g_hash_table_lookup(s->calls, m->call_id);
        event_emit(request_event(conn, m, c ? c->number : NULL));

        if (strcmp(m->method, "ACK") == 0) {
                /* 2xx ACK (new branch) or non-2xx ACK (the INVITE's branch): nothing to answer. */
                if (!c)
                        log_debug("ACK for unknown call %s ignored.", m->call_id);
        } else if (strcmp(m->method, "CANCEL") == 0)
                sip_handle_cancel(conn, m, c);
        else if (strcmp(m->method, "REGISTER") == 0)
                sim_respond(s, conn, m, 405, NULL, NULL, NULL, NULL);
        else if (!m->to_tag) {
                if (strcmp(m->method, "OPTIONS") == 0)
                        sim_respond(s, conn, m, 200, NULL, "Accept: application/sdp\r\n", NULL, NULL);
                else if (strcmp(m->method, "BYE") == 0 || strcmp(m->method, "INFO") == 0)
                        sim_respond(s, conn, m, 481, NULL, NULL, NULL, NULL);
                else
                        sim_respond(s, conn, m, 405, NULL, NULL, NULL, NULL);
        } else if (!c || g_strcmp0(c->local_tag, m->to_tag) != 0 || c->state == CALL_ENDED)
                sim_respond(s, conn, m, 481, NULL, NULL, NULL, c ? c->number : NULL);
        else if (strcmp(m->method, "BYE") == 0) {
                sim_respond(s, conn, m, 200, c->local_tag, NULL, NULL, c->number);
                if (!c->outbound && !c->final_sent)
                        call_respond_invite(c, 487, NULL);
                call_end(c, "bye-from-client");
        } else if (strcmp(m->method, "INVITE") == 0) {
                if (sip_handle_reinvite(conn, m, c))
                        return; /* kept: answered once the new media's answer is ready */
        }
        else if (strcmp(m->method, "INFO") == 0)
                sip_handle_info(conn, m, c);
        else if (strcmp(m->method, "REFER") == 0)
                sip_handle_refer(conn, m, c);
        else if (strcmp(m->method, "NOTIFY") == 0)
                /* The client reporting on a REFER we sent (sipfrag); the request event has it. */
                sim_respond(s, conn, m, 200, c->local_tag, NULL, NULL, c->number);
        else if (strcmp(m->method, "OPTIONS") == 0)
                sim_respond(s, conn, m, 200, c->local_tag, "Accept: application/sdp\r\n", NULL, c->number);
        else
                sim_respond(s, conn, m, 405, c->local_tag, NULL, NULL, c->number);
        sipmsg_free(m);
}

static void sip_bad_message(Conn *conn, const char *data, size_t len, SipMsg *m, const char *why) {
        json_object *ev;

        log_warning("conn %u: ignoring bad SIP message (%s): %.*s", conn->id, why,
                    (int) MIN(len, (size_t) 60), data);
        ev = event_new("bad-message");
        event_add_int(ev, "conn", conn->id);
        event_add_string(ev, "reason", why);
        event_add_int(ev, "length", (int64_t) len);
        event_emit(ev);

        /* A request we can address gets a 400; responses and ACKs never get answers. */
        if (m && sipmsg_can_respond(m) && !g_str_has_prefix(m->start_line, "SIP/") &&
            !g_str_has_prefix(m->start_line, "ACK "))
                sim_respond(conn->sim, conn, m, 400, NULL, NULL, NULL, NULL);
}

/* ---- frames from a socket ---- */

void sip_handle_frame(Conn *conn, const char *data, size_t len) {
        SipMsg *m = NULL;
        bool blank = true;

        for (size_t i = 0; i < len; i++)
                if (data[i] != '\r' && data[i] != '\n' && data[i] != ' ' && data[i] != '\t') {
                        blank = false;
                        break;
                }
        if (blank)
                return;

        if (sipmsg_parse(data, len, &m) < 0) {
                sip_bad_message(conn, data, len, NULL, "not a SIP message");
                return;
        }
        if (log_get_max_level() >= LOG_DEBUG) {
                g_autofree char *text = sipmsg_to_log_text(m);
                log_debug("conn %u <<<\n%s", conn->id, text);
        }
        if (!m->valid) {
                sip_bad_message(conn, data, len, m, "unparsable or missing mandatory headers");
                sipmsg_free(m);
                return;
        }
        if (m->is_request)
                sip_handle_request(conn, m);
        else {
                /* A response's Via is ours; its Contact (2xx, 18x) is the client's. */
                conn_note_host(conn, m->contact_host);
                uac_handle_response(conn, m);
        }
}

void sip_conn_closed(Conn *conn) {
        GHashTableIter it;
        gpointer v;

        if (!conn->sim->calls)
                return; /* shutting down */
        /* Dialogs survive the socket (gateway-protocol.md §1): a confirmed call keeps its media
         * and is reached on the client's next socket. Only a call still in its INVITE
         * transaction dies with the socket of that INVITE, as the SDK fails transactions in
         * flight ("Connection Error"). */
        g_hash_table_iter_init(&it, conn->sim->calls);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Call *call = v;

                if (call->conn != conn)
                        continue;
                call->conn = NULL;
                if (call->state < CALL_CONFIRMED)
                        call_end(call, "socket-closed");
        }
}

void sip_setup(Sim *s) {
        s->calls = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, call_free);
        ws_setup(s);
}

void sip_shutdown(Sim *s) {
        if (s->calls) {
                GHashTableIter it;
                gpointer v;

                g_hash_table_iter_init(&it, s->calls);
                while (g_hash_table_iter_next(&it, NULL, &v))
                        call_end(v, "shutdown");
                g_hash_table_unref(s->calls);
                s->calls = NULL;
        }
        ws_shutdown(s);
}
