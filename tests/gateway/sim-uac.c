/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "sim-sip.h"

/* Requests the gateway sends to the client: its own calls (INVITE, CANCEL, ACK), BYE, hold and
 * resume re-INVITEs, DTMF INFO, REFER, the NOTIFYs that report on the client's REFER, OPTIONS.
 * Requests follow the layout of the gateway BYE in gateway-protocol.md's checklist: R-URI = the
 * client's Contact, To = the client's identity with its tag, From = ours with our tag, our own
 * CSeq, "Via: SIP/2.0/WSS bwgw-sim.invalid;branch=z9hG4bK..." (WS on the plain port),
 * Max-Forwards 70. Reliable transport: nothing is retransmitted; a retransmitted final response
 * from the client is ACKed again. */

#define INVITE_TIMEOUT_S 32 /* Timer B: no response at all to our INVITE */
#define INFO_GAP_MS 250     /* between INFO digits, after their Duration, like the SDK */
#define NOTIFY_FALLBACK_MS 1000
/* Request-URI host for a client that has sent no request on its socket yet (JsSIP only checks
 * the user part). */
#define CLIENT_HOST_UNKNOWN "unknown.invalid"

Txn *txn_free(Txn *t) {
        if (!t)
                return NULL;
        g_free(t->method);
        g_free(t->branch);
        g_free(t->request_uri);
        g_free(t);
        return NULL;
}

static Txn *call_find_txn(Call *c, uint32_t cseq, const char *method) {
        for (guint i = c->txns->len; i > 0; i--) {
                Txn *t = g_ptr_array_index(c->txns, i - 1);

                if (t->cseq == cseq && g_strcmp0(t->method, method) == 0)
                        return t;
        }
        return NULL;
}

/* Builds, sends and reports one request. from is the complete From value (with tag). */
static void send_request(Conn *conn, const char *call_id, const char *number, const char *method,
                         const char *request_uri, const char *from, const char *to, uint32_t cseq,
                         const char *branch, const char *extra_headers, const char *content_type,
                         const char *body, const char *action) {
        g_autofree char *text = NULL, *ctype = NULL;
        _cleanup_(sipmsg_freep) SipMsg *parsed = NULL;
        size_t body_len = body ? strlen(body) : 0;
        json_object *ev;

        ctype = body_len > 0 && content_type ? g_strdup_printf("Content-Type: %s\r\n", content_type)
                                             : g_strdup("");
        text = g_strdup_printf("%s %s SIP/2.0\r\n"
                               "Via: SIP/2.0/%s " SIM_NAME ".invalid;branch=%s\r\n"
                               "Max-Forwards: 70\r\n"
                               "To: %s\r\n"
                               "From: %s\r\n"
                               "Call-ID: %s\r\n"
                               "CSeq: %u %s\r\n"
                               "%s"
                               "User-Agent: " SIM_NAME "/" BWCALL_VERSION "\r\n"
                               "%s"
                               "Content-Length: %zu\r\n"
                               "\r\n"
                               "%s",
                               method, request_uri, conn && conn->secure ? "WSS" : "WS", branch, to, from,
                               call_id, cseq, method, extra_headers ? extra_headers : "", ctype, body_len,
                               body_len > 0 ? body : "");
        conn_send(conn, text);

        ev = event_new("request-sent");
        event_add_call(ev, call_id, number);
        event_add_string(ev, "method", method);
        event_add_int(ev, "cseq", cseq);
        event_add_string(ev, "request_uri", request_uri);
        event_add_int(ev, "conn", conn ? conn->id : 0);
        event_add_string(ev, "action", action);
        /* Our own text through our own parser: the same header list as a "request" event. */
        if (sipmsg_parse(text, strlen(text), &parsed) >= 0)
                json_object_object_add(ev, "headers", sipmsg_headers_json(parsed));
        if (body_len > 0)
                event_add_string(ev, "body", body);
        event_emit(ev);
}

static char *new_branch(void) {
        g_autofree char *t = sip_random_token(12);

        return g_strconcat("z9hG4bK", t, NULL);
}

Txn *call_send_request(Call *c, const char *method, const char *request_uri, uint32_t cseq, const char *to,
                       const char *branch, const char *extra_headers, const char *content_type,
                       const char *body, const char *action) {
        Conn *conn = call_route(c);
        g_autofree char *br = branch ? g_strdup(branch) : new_branch();
        g_autofree char *from = g_strdup_printf("%s;tag=%s", c->local_id, c->local_tag);
        Txn *t;

        if (!conn) {
                /* Timers (the +15550001004 hangup, NOTIFYs, INFO digits) and ACKs get here; control
                 * actions checked the route first (call_check_route). Not a transaction then. */
                call_emit_no_route(c, method, cseq, 0, action);
                return NULL;
        }
        send_request(conn, c->call_id, c->number, method, request_uri, from, to ? to : c->remote_id, cseq,
                     br, extra_headers, content_type, body, action);
        if (strcmp(method, "ACK") == 0)
                return NULL;
        t = g_new0(Txn, 1);
        t->cseq = cseq;
        t->method = g_strdup(method);
        t->branch = TAKE_PTR(br);
        t->request_uri = g_strdup(request_uri);
        t->action = action;
        g_ptr_array_add(c->txns, t);
        return t;
}

void uac_call_cleanup(Call *c) {
        if (c->info_timer)
                g_source_remove(c->info_timer);
        c->info_timer = 0;
        if (c->info_digits)
                g_string_free(c->info_digits, TRUE);
        c->info_digits = NULL;
        if (c->transfer) {
                if (c->transfer->timer)
                        g_source_remove(c->transfer->timer);
                g_free(c->transfer->sipfrag);
                g_free(c->transfer);
                c->transfer = NULL;
        }
}

/* Contact + Allow, for requests that establish or refresh something. */
static char *call_dialog_headers(Call *c) {
        g_autofree char *contact = call_contact_header(c, call_route(c));

        return g_strconcat(contact, "Allow: " SIM_ALLOW "\r\n", NULL);
}

/* ---- BYE ---- */

static void uac_send_bye_only(Call *c, const char *action) {
        if (!c->remote_target) {
                log_warning("Call %s: no Contact from the client, cannot send BYE.", c->call_id);
                return;
        }
        c->local_cseq++;
        (void) call_send_request(c, "BYE", c->remote_target, c->local_cseq, NULL, NULL, NULL, NULL, NULL,
                                 action);
}

void uac_send_bye(Call *c, const char *action) {
        uac_send_bye_only(c, action);
        call_end(c, "bye-from-gateway");
}

/* ---- the gateway's own calls ---- */

static gboolean call_on_invite_timeout(gpointer userdata) {
        Call *c = userdata;

        c->timer = 0;
        log_warning("Call %s: no response to our INVITE in %d s.", c->call_id, INVITE_TIMEOUT_S);
        call_end(c, c->cancelled ? "cancel" : "timeout");
        return G_SOURCE_REMOVE;
}

void uac_send_invite(Call *c) {
        g_autofree char *extra = NULL;
        Conn *conn = call_route(c);

        if (c->cancelled) {
                call_end(c, "cancel");
                return;
        }
        if (!conn) {
                /* Its socket went while the offer was being built. */
                call_end(c, "socket-closed");
                return;
        }
        extra = call_dialog_headers(c);
        c->invite_txn = call_send_request(c, "INVITE", c->remote_target, c->local_cseq, NULL, NULL, extra,
                                          "application/sdp", c->local_sdp, "call");
        log_info("Call %s: INVITE to %s on conn %u.", c->call_id, c->remote_target, conn->id);
        c->timer = g_timeout_add_seconds(INVITE_TIMEOUT_S, call_on_invite_timeout, c);
}

static void call_emit_media_failed(Call *c, const char *message) {
        json_object *ev = event_new("media-failed");

        log_warning("Call %s: %s", c->call_id, message);
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "message", message);
        event_emit(ev);
}

/* The client's SDP answer (in a 18x or the 2xx) goes to webrtcbin once. */
static void uac_apply_answer(Call *c, const SipMsg *m) {
        const char *codec = NULL;
        g_autofree char *settled = NULL, *msg = NULL;
        int r;

        if (m->body_len == 0 || !c->media || c->answered_sdp)
                return;
        r = media_set_answer(c->media, m->body, &codec);
        if (r == -EALREADY)
                return;
        if (r < 0 && r != -EPROTONOSUPPORT) {
                call_emit_media_failed(c, "the client's answer is not usable SDP");
                return;
        }
        if (r == -EPROTONOSUPPORT) {
                msg = g_strdup_printf("the client's answer chose %s but this call sends %s (see codec=)",
                                      codec, media_codec_name(c->codec));
                call_emit_media_failed(c, msg);
        }
        c->answered_sdp = true;
        settled = media_sdp_settle_setup(c->local_sdp, m->body);
        if (settled) {
                g_free(c->local_sdp);
                c->local_sdp = TAKE_PTR(settled);
        }
        c->remote_direction = media_sdp_direction(m->body);
        call_update_sending(c);
}

static void uac_ack_2xx(Call *c, Txn *t) {
        if (c->no_ack && strcmp(t->action, "call") == 0) {
                /* A test of the client's "No ACK" handling: it must give up after 32 s. */
                log_info("Call %s: not ACKing the 200 (ack=0).", c->call_id);
                t->acked = true;
                return;
        }
        (void) call_send_request(c, "ACK", c->remote_target, t->cseq, NULL, NULL, NULL, NULL, NULL,
                                 t->action);
        t->acked = true;
}

/* Non-2xx final: ACK in the INVITE's transaction (its branch and Request-URI). */
static void uac_ack_error(Call *c, Txn *t, const char *to) {
        (void) call_send_request(c, "ACK", t->request_uri, t->cseq, to, t->branch, NULL, NULL, NULL,
                                 t->action);
        t->acked = true;
}

static void uac_invite_response(Call *c, Txn *t, const SipMsg *m) {
        const char *to = sipmsg_header(m, "To");
        json_object *ev;

        if (c->timer && t->status == 0) {
                /* Any response stops Timer B (a CANCEL re-arms it). */
                g_source_remove(c->timer);
                c->timer = 0;
        }
        if (m->status < 200) {
                if (m->status > 100 && m->to_tag && c->state == CALL_PROCEEDING) {
                        c->state = CALL_EARLY;
                        g_free(c->remote_id);
                        c->remote_id = g_strdup(to);
                        if (m->contact_uri) {
                                g_free(c->remote_target);
                                c->remote_target = g_strdup(m->contact_uri);
                        }
                }
                uac_apply_answer(c, m);
                return;
        }
        if (m->status < 300) {
                if (t->status >= 200 && t->status < 300) {
                        uac_ack_2xx(c, t); /* the client retransmits its 2xx until the ACK */
                        return;
                }
                t->status = m->status;
                g_free(c->remote_id);
                c->remote_id = g_strdup(to);
                if (m->contact_uri) {
                        g_free(c->remote_target);
                        c->remote_target = g_strdup(m->contact_uri);
                        g_free(c->contact_host);
                        c->contact_host = g_strdup(m->contact_host);
                }
                uac_ack_2xx(c, t);
                if (c->state == CALL_ENDED || c->cancelled) {
                        /* Answered while we cancelled (or gave up): ACK, then BYE, like the SDK. */
                        uac_send_bye_only(c, "cancel");
                        call_end(c, "cancel");
                        return;
                }
                c->state = CALL_CONFIRMED;
                c->answered = true;
                if (m->body_len == 0 && !c->answered_sdp)
                        call_emit_media_failed(c, "the client's 2xx carries no SDP answer");
                uac_apply_answer(c, m);
                log_info("Call %s: the client answered.", c->call_id);
                ev = event_new("answered");
                event_add_call(ev, c->call_id, c->number);
                event_emit(ev);
                return;
        }
        if (t->status >= 300) {
                uac_ack_error(c, t, to);
                return;
        }
        t->status = m->status;
        uac_ack_error(c, t, to);
        if (c->state != CALL_ENDED) {
                g_autofree char *cause = g_strdup_printf("rejected-%d", m->status);

                call_end(c, c->cancelled && m->status == 487 ? "cancel" : cause);
        }
}

static void uac_reinvite_response(Call *c, Txn *t, const SipMsg *m) {
        if (m->status < 200)
                return;
        if (m->status < 300) {
                if (t->acked) {
                        uac_ack_2xx(c, t);
                        return;
                }
                t->status = m->status;
                uac_ack_2xx(c, t);
                if (c->reinvite_txn == t)
                        c->reinvite_txn = NULL;
                if (m->body_len > 0) {
                        const char *dir = media_sdp_direction(m->body);

                        if (dir)
                                c->remote_direction = dir;
                }
                call_update_sending(c);
                return;
        }
        uac_ack_error(c, t, c->remote_id);
        if (t->status >= 300)
                return;
        t->status = m->status;
        if (c->reinvite_txn == t) {
                /* The session stays as it was; the o= version keeps counting. */
                g_autofree char *sdp = media_sdp_with_direction(c->local_sdp, t->prev_direction, false);

                if (sdp) {
                        g_free(c->local_sdp);
                        c->local_sdp = TAKE_PTR(sdp);
                        c->direction = t->prev_direction;
                }
                c->reinvite_txn = NULL;
        }
}

/* ---- NOTIFYs for the client's REFER ---- */

static void uac_send_notify(Call *c, bool final) {
        Transfer *tr = c->transfer;
        g_autofree char *extra = NULL, *dialog = call_dialog_headers(c);
        Txn *t;

        if (!tr || c->state != CALL_CONFIRMED || !c->remote_target)
                return;
        extra = g_strdup_printf("Event: refer;id=%u\r\nSubscription-State: %s\r\n%s", tr->refer_cseq,
                                final ? "terminated;reason=noresource" : "active;expires=60", dialog);
        c->local_cseq++;
        t = call_send_request(c, "NOTIFY", c->remote_target, c->local_cseq, NULL, NULL, extra,
                              "message/sipfrag;version=2.0", final ? tr->sipfrag : "SIP/2.0 100 Trying",
                              final ? "transfer-final" : "transfer");
        if (t)
                t->final_notify = final;
        if (final) {
                tr->final_sent = true;
                if (tr->timer)
                        g_source_remove(tr->timer);
                tr->timer = 0;
        }
}

static gboolean call_on_transfer_timer(gpointer userdata) {
        Call *c = userdata;

        c->transfer->timer = 0;
        uac_send_notify(c, true);
        return G_SOURCE_REMOVE;
}

void uac_start_transfer_notify(Call *c, uint32_t refer_cseq, int status) {
        Transfer *tr;

        if (c->transfer) {
                if (c->transfer->timer)
                        g_source_remove(c->transfer->timer);
                g_free(c->transfer->sipfrag);
                g_free(c->transfer);
        }
        tr = c->transfer = g_new0(Transfer, 1);
        tr->refer_cseq = refer_cseq;
        tr->status = status;
        tr->sipfrag = g_strdup_printf("SIP/2.0 %d %s", status, sip_reason_phrase(status));
        uac_send_notify(c, false);
        /* The outcome follows the client's answer to the first NOTIFY, or this. */
        tr->timer = g_timeout_add(NOTIFY_FALLBACK_MS, call_on_transfer_timer, c);
}

/* ---- responses from the client ---- */

void uac_handle_response(Conn *conn, SipMsg *m) {
        Call *c = sim_find_call(conn->sim, m->call_id);
        Txn *t = c ? call_find_txn(c, m->cseq, m->cseq_method) : NULL;
        json_object *ev = event_new("response-received");

        event_add_call(ev, m->call_id, c ? c->number : NULL);
        event_add_int(ev, "status", m->status);
        event_add_string(ev, "reason", m->reason);
        event_add_string(ev, "method", m->cseq_method);
        event_add_int(ev, "cseq", m->cseq);
        event_add_int(ev, "conn", conn->id);
        if (t)
                event_add_string(ev, "action", t->action);
        if (m->contact_uri)
                event_add_string(ev, "contact", m->contact_uri);
        json_object_object_add(ev, "headers", sipmsg_headers_json(m));
        if (m->body_len > 0) {
                const char *dir = media_sdp_direction(m->body);

                event_add_string(ev, "body", m->body);
                if (dir)
                        event_add_string(ev, "direction", dir);
        }
        event_emit(ev);

        if (!t) {
                log_debug("Response %d to %s %u matches no request of ours.", m->status, m->cseq_method,
                          m->cseq);
                sipmsg_free(m);
                return;
        }
        if (strcmp(t->method, "INVITE") == 0) {
                if (t == c->invite_txn)
                        uac_invite_response(c, t, m);
                else
                        uac_reinvite_response(c, t, m);
        } else if (m->status >= 200) {
                t->status = m->status;
                if (strcmp(t->method, "NOTIFY") == 0 && !t->final_notify && c->transfer &&
                    !c->transfer->final_sent)
                        uac_send_notify(c, true);
        }
        sipmsg_free(m);
}

/* ---- control actions ---- */

int uac_call(Sim *s, const UacCallParams *p, Call **ret, const char **ret_error) {
        g_autofree char *call_id = NULL, *token = NULL;
        const char *host;
        Conn *conn;
        Call *c;
        int r;

        conn = p->conn_id ? sim_find_conn(s, p->conn_id) : sim_newest_conn(s);
        if (!conn) {
                *ret_error = p->conn_id ? "no open WebSocket with that conn id" : "no open WebSocket";
                return p->conn_id ? -ENOENT : -ENOTCONN;
        }
        /* The client's ".invalid" Contact host, learned from its requests on that socket; a
         * client that has sent nothing yet is only known by its socket. */
        host = p->host ? p->host : conn->client_host ? conn->client_host : CLIENT_HOST_UNKNOWN;

        token = sip_random_token(20);
        call_id = g_strconcat(token, "@" SIM_NAME, NULL);
        c = call_new(s, call_id, p->to, conn);
        c->outbound = true;
        c->script = SCRIPT_OUTBOUND;
        c->mode = p->mode;
        c->codec = p->codec;
        c->no_ack = p->no_ack;
        c->local_id = g_strdup_printf("<sip:%s@%s>", p->from, s->domain);
        c->remote_id = g_strdup_printf("<sip:%s@%s>", p->to, s->domain);
        c->remote_target = g_strdup_printf("sip:%s@%s;transport=ws", p->to, host);
        log_info("Call %s: calling %s on conn %u (%s).", c->call_id, c->remote_target, conn->id,
                 media_codec_name(c->codec));

        r = call_start_media(c, true);
        if (r < 0) {
                log_warning_errno(r, "Call %s: cannot start media: %m", c->call_id);
                call_end(c, "media-failed");
                *ret_error = "cannot start the media pipeline";
                return -EIO;
        }
        *ret = c;
        return 0;
}

static int uac_check_dialog(Call *c, const char **ret_error) {
        if (c->state == CALL_ENDED) {
                *ret_error = "the call has ended";
                return -ESTALE;
        }
        if (c->state != CALL_CONFIRMED || !c->remote_target) {
                *ret_error = "the call is not answered yet";
                return -EBUSY;
        }
        return 0;
}

int uac_cancel(Call *c, const char **ret_error) {
        g_autofree char *to = NULL;

        if (!c->outbound) {
                *ret_error = "only calls the gateway placed (call action) can be cancelled";
                return -EPERM;
        }
        if (c->state == CALL_ENDED) {
                *ret_error = "the call has ended";
                return -ESTALE;
        }
        if (c->cancelled) {
                *ret_error = "already cancelled";
                return -EALREADY;
        }
        if (c->invite_txn && c->invite_txn->status >= 200) {
                *ret_error = "the INVITE has its final response; use bye";
                return -EALREADY;
        }
        if (c->invite_txn && call_check_route(c, "CANCEL", "cancel", ret_error) < 0)
                return -ENOTCONN;
        c->cancelled = true;
        if (!c->invite_txn) {
                /* The offer is still being prepared: nothing went out yet. */
                call_end(c, "cancel");
                return 0;
        }
        /* CANCEL repeats the INVITE's Request-URI, branch, CSeq number and To (without tag). */
        to = g_strdup_printf("<sip:%s@%s>", c->number, c->sim->domain);
        (void) call_send_request(c, "CANCEL", c->invite_txn->request_uri, c->invite_txn->cseq, to,
                                 c->invite_txn->branch, NULL, NULL, NULL, "cancel");
        if (c->timer)
                g_source_remove(c->timer);
        c->timer = g_timeout_add_seconds(INVITE_TIMEOUT_S, call_on_invite_timeout, c);
        return 0;
}

int uac_bye(Call *c, const char **ret_error) {
        int r = uac_check_dialog(c, ret_error);

        if (r < 0)
                return r;
        /* Not reachable: the call stays up, so the test can try again once the client is back. */
        r = call_check_route(c, "BYE", "bye", ret_error);
        if (r < 0)
                return r;
        uac_send_bye(c, "bye");
        return 0;
}

int uac_hold(Call *c, bool hold, const char **ret_error) {
        const char *dir = hold ? "sendonly" : "sendrecv";
        g_autofree char *sdp = NULL, *extra = NULL, *prev_sdp = NULL;
        const char *prev;
        Txn *t;
        int r;

        r = uac_check_dialog(c, ret_error);
        if (r < 0)
                return r;
        if (c->reinvite_txn) {
                *ret_error = "a re-INVITE of ours is still waiting for its final response";
                return -EINPROGRESS;
        }
        r = call_check_route(c, "INVITE", hold ? "hold" : "resume", ret_error);
        if (r < 0)
                return r;
        sdp = c->local_sdp ? media_sdp_with_direction(c->local_sdp, dir, true) : NULL;
        if (!sdp) {
                *ret_error = "no local SDP to re-offer";
                return -EBUSY;
        }
        prev = c->direction;
        prev_sdp = TAKE_PTR(c->local_sdp);
        c->local_sdp = TAKE_PTR(sdp);
        c->direction = dir;
        extra = call_dialog_headers(c);
        c->local_cseq++;
        t = call_send_request(c, "INVITE", c->remote_target, c->local_cseq, NULL, NULL, extra,
                              "application/sdp", c->local_sdp, hold ? "hold" : "resume");
        if (!t) {
                /* Not after the check above, but the session must stay as it was all the same. */
                g_free(c->local_sdp);
                c->local_sdp = TAKE_PTR(prev_sdp);
                c->direction = prev;
                *ret_error = "no open WebSocket for the client";
                return -ENOTCONN;
        }
        t->direction = dir;
        t->prev_direction = prev;
        c->reinvite_txn = t;
        return 0;
}

static gboolean call_on_info_timer(gpointer userdata) {
        Call *c = userdata;
        g_autofree char *body = NULL;
        char digit[2] = {};
        json_object *ev;

        c->info_timer = 0;
        if (c->state != CALL_CONFIRMED || !c->info_digits || c->info_digits->len == 0)
                return G_SOURCE_REMOVE;
        digit[0] = c->info_digits->str[0];
        g_string_erase(c->info_digits, 0, 1);
        /* The SDK's body: "Signal=1" CRLF "Duration=250", no trailing CRLF (§7). */
        body = g_strdup_printf("Signal=%s\r\nDuration=%u", digit, c->info_duration_ms);
        c->local_cseq++;
        (void) call_send_request(c, "INFO", c->remote_target, c->local_cseq, NULL, NULL, NULL,
                                 "application/dtmf-relay", body, "dtmf");
        ev = event_new("dtmf-sent");
        event_add_call(ev, c->call_id, c->number);
        event_add_string(ev, "digit", digit);
        event_add_string(ev, "method", "info");
        event_emit(ev);
        if (c->info_digits->len > 0)
                c->info_timer = g_timeout_add(c->info_duration_ms + INFO_GAP_MS, call_on_info_timer, c);
        return G_SOURCE_REMOVE;
}

int uac_dtmf(Call *c, const char *digits, bool info, unsigned duration_ms, const char **ret_error) {
        int r = uac_check_dialog(c, ret_error);

        if (r < 0)
                return r;
        if (info) {
                r = call_check_route(c, "INFO", "dtmf", ret_error);
                if (r < 0)
                        return r;
                if (!c->info_digits)
                        c->info_digits = g_string_new(NULL);
                g_string_append(c->info_digits, digits);
                c->info_duration_ms = duration_ms;
                if (!c->info_timer)
                        c->info_timer = g_idle_add(call_on_info_timer, c);
                return 0;
        }
        if (!c->media) {
                *ret_error = "this call has no media";
                return -ENOTCONN;
        }
        r = media_send_dtmf(c->media, digits, duration_ms);
        if (r == -ENOTCONN)
                *ret_error = "the media is not connected yet";
        else if (r == -ENOTSUP)
                *ret_error = "telephone-event was not negotiated at the codec's clock rate";
        else if (r < 0)
                *ret_error = "bad digits";
        return r;
}

int uac_refer(Call *c, const char *target, const char **ret_error) {
        g_autofree char *extra = NULL, *dialog = NULL;
        int r = uac_check_dialog(c, ret_error);

        if (r < 0)
                return r;
        r = call_check_route(c, "REFER", "refer", ret_error);
        if (r < 0)
                return r;
        dialog = call_dialog_headers(c);
        extra = g_strdup_printf("Refer-To: <sip:%s@%s>\r\nReferred-By: %s\r\n%s", target, c->sim->domain,
                                c->local_id, dialog);
        c->local_cseq++;
        (void) call_send_request(c, "REFER", c->remote_target, c->local_cseq, NULL, NULL, extra, NULL, NULL,
                                 "refer");
        return 0;
}

int uac_options(Sim *s, Call *c, const char *to, unsigned conn_id, char **ret_call_id,
                const char **ret_error) {
        g_autofree char *call_id = NULL, *token = NULL, *tag = NULL, *from = NULL, *ruri = NULL,
                        *to_hdr = NULL, *branch = NULL;
        Conn *conn;
        int r;

        if (c) {
                r = uac_check_dialog(c, ret_error);
                if (r < 0)
                        return r;
                r = call_check_route(c, "OPTIONS", "options", ret_error);
                if (r < 0)
                        return r;
                c->local_cseq++;
                (void) call_send_request(c, "OPTIONS", c->remote_target, c->local_cseq, NULL, NULL,
                                         "Accept: application/sdp\r\n", NULL, NULL, "options");
                *ret_call_id = g_strdup(c->call_id);
                return 0;
        }
        conn = conn_id ? sim_find_conn(s, conn_id) : sim_newest_conn(s);
        if (!conn) {
                *ret_error = conn_id ? "no open WebSocket with that conn id" : "no open WebSocket";
                return conn_id ? -ENOENT : -ENOTCONN;
        }
        /* Out of dialog: the client only answers when the Request-URI user is its account. */
        token = sip_random_token(20);
        call_id = g_strconcat(token, "@" SIM_NAME, NULL);
        tag = sip_random_token(TAG_LEN);
        from = g_strdup_printf("<sip:" SIM_NAME "@%s>;tag=%s", s->domain, tag);
        ruri = g_strdup_printf("sip:%s@%s;transport=ws", to,
                               conn->client_host ? conn->client_host : CLIENT_HOST_UNKNOWN);
        to_hdr = g_strdup_printf("<sip:%s@%s>", to, s->domain);
        branch = new_branch();
        send_request(conn, call_id, NULL, "OPTIONS", ruri, from, to_hdr, 1, branch,
                     "Accept: application/sdp\r\n", NULL, NULL, "options");
        *ret_call_id = TAKE_PTR(call_id);
        return 0;
}
