/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "call.h"
#include "log.h"
#include "phone.h"

/* RFC 3261 Timer B with the 500 ms T1 JsSIP uses: no response at all to the INVITE. */
#define CALL_TIMER_B_MS (64 * 500)
/* How long a terminated dialog waits for stray responses (487 after CANCEL, 200 to BYE). */
#define CALL_SIP_CLEANUP_MS (32 * 1000)

static const char *const call_state_names[_CALL_STATE_MAX] = {
        [CALL_STATE_DIALING] = "dialing",   [CALL_STATE_RINGING] = "ringing",
        [CALL_STATE_EARLY_MEDIA] = "early-media", [CALL_STATE_ACTIVE] = "active",
        [CALL_STATE_HELD] = "held",         [CALL_STATE_TERMINATED] = "terminated",
        [CALL_STATE_INCOMING] = "incoming",
};

const char *call_state_to_string(CallState s) {
        return s >= 0 && s < _CALL_STATE_MAX ? call_state_names[s] : "unknown";
}

const char *call_direction_to_string(CallDirection d) {
        return d == CALL_DIRECTION_INCOMING ? "incoming" : "outgoing";
}

static uint64_t now_realtime(void) {
        return (uint64_t) g_get_real_time();
}

Call *call_ref(Call *c) {
        if (c)
                c->n_ref++;
        return c;
}

Call *call_unref(Call *c) {
        if (!c)
                return NULL;
        if (--c->n_ref > 0)
                return NULL;
        g_clear_handle_id(&c->timer_b, g_source_remove);
        g_clear_handle_id(&c->linger_source, g_source_remove);
        g_clear_handle_id(&c->sip_cleanup_source, g_source_remove);
        media_free(c->media);
        sip_dialog_free(c->dialog);
        g_free(c->number);
        g_free(c->cause);
        g_free(c);
        return NULL;
}

static bool call_is_terminated(const Call *c) {
        return c->state == CALL_STATE_TERMINATED;
}

static bool call_is_confirmed(const Call *c) {
        return c->state == CALL_STATE_ACTIVE || c->state == CALL_STATE_HELD;
}

static gboolean on_sip_cleanup(gpointer userdata) {
        Call *c = userdata;

        c->sip_cleanup_source = 0;
        if (!c->sip_done)
                log_debug("Call %u: giving up waiting for the gateway to finish the dialog.", c->id);
        c->sip_done = true;
        if (c->phone)
                phone_release_call(c->phone, c);
        return G_SOURCE_REMOVE;
}

static gboolean on_linger_done(gpointer userdata) {
        Call *c = userdata;

        c->linger_source = 0;
        if (c->phone)
                phone_release_call(c->phone, c);
        return G_SOURCE_REMOVE;
}

/* No more SIP is expected for this dialog. */
static void call_sip_finished(Call *c) {
        c->sip_done = true;
        g_clear_handle_id(&c->sip_cleanup_source, g_source_remove);
        g_clear_handle_id(&c->timer_b, g_source_remove);
        if (c->phone && !c->linger_source)
                phone_release_call(c->phone, c);
}

void call_set_state(Call *c, CallState state, const char *cause, unsigned sip_code) {
        static const char *const terminated_props[] = { "State", "Cause", "SipCode", NULL };
        static const char *const answered_props[] = { "State", "StartTime", NULL };
        static const char *const state_props[] = { "State", NULL };
        CallState old = c->state;
        const char *const *props = state_props;

        if (old == state || old == CALL_STATE_TERMINATED)
                return;

        c->state = state;
        if (state == CALL_STATE_ACTIVE && c->start_usec == 0) {
                c->start_usec = now_realtime();
                props = answered_props;
        }
        if (state == CALL_STATE_TERMINATED) {
                g_free(c->cause);
                c->cause = g_strdup(cause ? cause : "Terminated");
                c->sip_code = sip_code;
                c->end_usec = now_realtime();
                props = terminated_props;
                g_clear_handle_id(&c->timer_b, g_source_remove);
                /* Audio stops the moment the call ends, whatever SIP still has to do. */
                c->media = media_free(c->media);
        }

        log_info("Call %u (%s): %s → %s%s%s", c->id, c->number, call_state_to_string(old),
                 call_state_to_string(state), state == CALL_STATE_TERMINATED ? ", cause " : "",
                 state == CALL_STATE_TERMINATED ? c->cause : "");

        if (c->phone) {
                phone_notify_call_changed(c->phone, c, props);
                phone_notify_call_state(c->phone, c, old, state);
        }

        if (state == CALL_STATE_TERMINATED) {
                unsigned linger = c->phone ? c->phone->config->call_linger_ms : 0;

                c->linger_source = g_timeout_add(linger, on_linger_done, c);
                if (!c->sip_done)
                        c->sip_cleanup_source = g_timeout_add(CALL_SIP_CLEANUP_MS, on_sip_cleanup, c);
        }
}

static void call_send(Call *c, char *text) {
        int r;

        if (!text) {
                log_error("Call %u: failed to build a SIP message.", c->id);
                return;
        }
        r = c->phone ? phone_send_sip(c->phone, text) : -ENOTCONN;
        if (r < 0)
                log_warning_errno(r, "Call %u: failed to send SIP message: %m", c->id);
        g_free(text);
}

static void call_send_bye(Call *c, const char *reason) {
        call_send(c, sip_build_bye(&c->phone->ua, c->dialog, reason));
}

static void call_send_cancel(Call *c) {
        call_send(c, sip_build_cancel(&c->phone->ua, c->dialog));
}

static gboolean on_timer_b(gpointer userdata) {
        Call *c = userdata;

        c->timer_b = 0;
        log_warning("Call %u: no response to the INVITE in %u s.", c->id, CALL_TIMER_B_MS / 1000);
        call_set_state(c, CALL_STATE_TERMINATED, "Request Timeout", 408);
        call_sip_finished(c);
        return G_SOURCE_REMOVE;
}

/* ---- media callbacks ---- */

static void on_offer_ready(Media *m, const char *sdp, int error, void *userdata) {
        Call *c = userdata;
        const char *token;
        char *invite;
        int r;

        if (call_is_terminated(c)) /* hung up while gathering: nothing goes on the wire (SDK) */
                return;
        if (error < 0) {
                log_error_errno(error, "Call %u: failed to create the media offer: %m", c->id);
                call_set_state(c, CALL_STATE_TERMINATED, "WebRTC Error", 0);
                call_sip_finished(c);
                return;
        }

        token = token_peek(c->phone->token);
        if (!token) {
                /* The token expired between Dial() and now: do not send an INVITE doomed to fail. */
                log_warning("Call %u: no valid OAuth token any more.", c->id);
                call_set_state(c, CALL_STATE_TERMINATED, "Authentication Error", 0);
                call_sip_finished(c);
                return;
        }

        invite = sip_build_invite(&c->phone->ua, c->dialog, token, NULL, sdp);
        if (!invite) {
                call_set_state(c, CALL_STATE_TERMINATED, "Internal Error", 0);
                call_sip_finished(c);
                return;
        }
        r = phone_send_sip(c->phone, invite);
        explicit_bzero(invite, strlen(invite)); /* it carried the token */
        g_free(invite);
        if (r < 0) {
                log_warning_errno(r, "Call %u: failed to send the INVITE: %m", c->id);
                call_set_state(c, CALL_STATE_TERMINATED, "Connection Error", 0);
                call_sip_finished(c);
                return;
        }
        c->invite_sent = true;
        c->invite_sent_usec = now_realtime();
        c->timer_b = g_timeout_add(CALL_TIMER_B_MS, on_timer_b, c);
}

static void on_first_audio(Media *m, void *userdata) {
        Call *c = userdata;
        static const char *const props[] = { "Stats", NULL };

        log_info("Call %u: remote audio is playing.", c->id);
        if (c->phone)
                phone_notify_call_changed(c->phone, c, props);
}

static void on_media_failed(Media *m, int error, const char *message, void *userdata) {
        Call *c = userdata;

        log_warning("Call %u: media failed: %s", c->id, message);
        if (call_is_confirmed(c))
                call_abort(c, "RTP Timeout", 408, "RTP Timeout");
        else
                call_abort(c, "WebRTC Error", 500, "WebRTC Error");
}

static const MediaCallbacks call_media_callbacks = {
        .offer_ready = on_offer_ready,
        .first_audio = on_first_audio,
        .failed = on_media_failed,
};

int call_new_outgoing(Phone *phone, const char *number, Call **ret) {
        _cleanup_(call_unrefp) Call *c = g_new0(Call, 1);
        MediaConfig mc;
        int r;

        c->n_ref = 1;
        c->phone = phone;
        c->id = ++phone->next_call_id;
        c->state = CALL_STATE_DIALING;
        c->direction = CALL_DIRECTION_OUTGOING;
        c->number = g_strdup(number);
        c->created_usec = now_realtime();

        r = sip_dialog_new_outgoing(&phone->ua, number, &c->dialog);
        if (r < 0)
                return log_error_errno(r, "Failed to create a SIP dialog: %m");

        mc = (MediaConfig) {
                .ice_addresses = (const char *const *) phone->config->ice_addresses,
                .upnp = phone->config->upnp,
                .stun_servers = (const char *const *) phone->config->stun_servers,
                .latency_ms = phone->config->latency_ms,
                .input_target = phone->config->input,
                .output_target = phone->config->output,
        };
        r = media_new_offer(&mc, &call_media_callbacks, c, &c->media);
        if (r < 0)
                return log_error_errno(r, "Failed to set up call media: %m");

        *ret = TAKE_PTR(c);
        return 0;
}

void call_abort(Call *c, const char *cause, unsigned reason_code, const char *reason_text) {
        if (call_is_terminated(c))
                return;
        if (call_is_confirmed(c)) {
                g_autofree char *reason = g_strdup_printf("SIP ;cause=%u; text=\"%s\"", reason_code, reason_text);
                call_send_bye(c, reason);
        } else if (c->invite_sent) {
                if (c->got_provisional)
                        call_send_cancel(c);
                else
                        c->cancel_pending = true;
        } else
                c->sip_done = true;
        call_set_state(c, CALL_STATE_TERMINATED, cause, 0);
        if (c->sip_done)
                call_sip_finished(c);
}

int call_hangup(Call *c) {
        if (call_is_terminated(c))
                return -ESTALE;

        if (call_is_confirmed(c)) {
                call_send_bye(c, NULL);
                call_set_state(c, CALL_STATE_TERMINATED, "Terminated", 0);
                return 0; /* sip_done when the 200 to the BYE arrives */
        }
        if (!c->invite_sent) {
                c->sip_done = true;
                call_set_state(c, CALL_STATE_TERMINATED, "Canceled", 0);
                call_sip_finished(c);
                return 0;
        }
        /* JsSIP only sends CANCEL once a provisional response arrived. */
        if (c->got_provisional)
                call_send_cancel(c);
        else
                c->cancel_pending = true;
        call_set_state(c, CALL_STATE_TERMINATED, "Canceled", 0);
        return 0;
}

int call_set_muted(Call *c, bool muted) {
        static const char *const props[] = { "Muted", NULL };

        if (call_is_terminated(c))
                return -ESTALE;
        if (c->muted == muted)
                return 0;
        c->muted = muted;
        if (c->media)
                media_set_muted(c->media, muted);
        log_info("Call %u: %s.", c->id, muted ? "muted" : "unmuted");
        if (c->phone)
                phone_notify_call_changed(c->phone, c, props);
        return 0;
}

uint32_t call_get_duration(const Call *c) {
        uint64_t end;

        if (c->start_usec == 0)
                return 0;
        end = c->end_usec ? c->end_usec : now_realtime();
        return end > c->start_usec ? (uint32_t) ((end - c->start_usec) / USEC_PER_SEC) : 0;
}

static bool is_sdp(const SipMessage *m) {
        return sip_message_body_length(m) > 0 && g_strcmp0(sip_message_content_type(m), "application/sdp") == 0;
}

static void call_update_dialog(Call *c, const SipMessage *m) {
        const char *tag = sip_message_to_tag(m), *contact = sip_message_contact_uri(m);

        if (tag && !c->dialog->remote_tag)
                c->dialog->remote_tag = g_strdup(tag);
        if (contact) {
                g_free(c->dialog->remote_target);
                c->dialog->remote_target = g_strdup(contact);
        }
}

static void call_handle_provisional(Call *c, const SipMessage *m, unsigned status) {
        g_clear_handle_id(&c->timer_b, g_source_remove);
        c->got_provisional = true;

        if (c->cancel_pending) {
                c->cancel_pending = false;
                call_send_cancel(c);
                return;
        }
        if (call_is_terminated(c) || status == 100)
                return;
        if (!sip_message_to_tag(m))
                return; /* JsSIP ignores 1xx without a To tag */
        call_update_dialog(c, m);

        if (is_sdp(m) && !c->answer_applied && c->media) {
                int r = media_set_answer(c->media, sip_message_body(m));
                if (r < 0)
                        log_warning_errno(r, "Call %u: ignoring unusable early-media SDP in %u: %m", c->id, status);
                else {
                        c->answer_applied = true;
                        call_set_state(c, CALL_STATE_EARLY_MEDIA, NULL, 0);
                        return;
                }
        }
        if (c->state == CALL_STATE_DIALING)
                call_set_state(c, CALL_STATE_RINGING, NULL, 0);
}

static void call_handle_invite_2xx(Call *c, const SipMessage *m) {
        int r;

        g_clear_handle_id(&c->timer_b, g_source_remove);
        if (call_is_confirmed(c)) {
                /* A retransmitted 2xx: ACK it again. */
                call_send(c, sip_build_ack_2xx(&c->phone->ua, c->dialog));
                return;
        }
        if (!sip_message_contact_uri(m)) {
                /* JsSIP: no Contact, no ACK, cause "Internal Error". */
                log_warning("Call %u: 2xx without Contact.", c->id);
                call_set_state(c, CALL_STATE_TERMINATED, "Internal Error", sip_message_status(m));
                call_sip_finished(c);
                return;
        }
        call_update_dialog(c, m);
        if (!c->dialog->route_set) {
                char **rr = sip_message_record_routes(m);
                if (rr) {
                        /* The route set is the Record-Route list reversed (RFC 3261 12.1.2). */
                        size_t n = g_strv_length(rr);
                        c->dialog->route_set = g_new0(char *, n + 1);
                        for (size_t i = 0; i < n; i++)
                                c->dialog->route_set[i] = g_strdup(rr[n - 1 - i]);
                        sip_strv_free(rr);
                }
        }
        call_send(c, sip_build_ack_2xx(&c->phone->ua, c->dialog));

        if (call_is_terminated(c)) {
                /* Answered after we hung up: ACK then BYE, as JsSIP does. */
                call_send_bye(c, NULL);
                return;
        }
        if (!c->answer_applied) {
                if (!is_sdp(m)) {
                        call_send_bye(c, "SIP ;cause=400; text=\"Missing SDP\"");
                        call_set_state(c, CALL_STATE_TERMINATED, "Bad Media Description", 0);
                        return;
                }
                r = c->media ? media_set_answer(c->media, sip_message_body(m)) : -ENODEV;
                if (r < 0) {
                        log_warning_errno(r, "Call %u: unusable SDP answer: %m", c->id);
                        call_send_bye(c, "SIP ;cause=488; text=\"Not Acceptable Here\"");
                        call_set_state(c, CALL_STATE_TERMINATED, "Bad Media Description", 0);
                        return;
                }
                c->answer_applied = true;
        } else if (is_sdp(m) && c->media)
                (void) media_set_answer(c->media, sip_message_body(m)); /* same answer again: no-op */

        call_set_state(c, CALL_STATE_ACTIVE, NULL, 0);
}

static void call_handle_invite_final_error(Call *c, const SipMessage *m, unsigned status) {
        g_clear_handle_id(&c->timer_b, g_source_remove);
        call_send(c, sip_build_ack_non2xx(&c->phone->ua, c->dialog, sip_message_to_tag(m)));
        if (!call_is_terminated(c))
                call_set_state(c, CALL_STATE_TERMINATED, sip_status_to_cause(status), status);
        call_sip_finished(c);
}

void call_handle_response(Call *c, const SipMessage *m) {
        const char *method = sip_message_cseq_method(m);
        unsigned status = sip_message_status(m);

        if (g_strcmp0(method, "INVITE") == 0) {
                if (sip_message_cseq_number(m) != c->dialog->invite_cseq)
                        return; /* not our initial INVITE */
                if (status < 200)
                        call_handle_provisional(c, m, status);
                else if (status < 300)
                        call_handle_invite_2xx(c, m);
                else
                        call_handle_invite_final_error(c, m, status);
        } else if (g_strcmp0(method, "BYE") == 0) {
                if (status >= 200)
                        call_sip_finished(c);
        } else if (g_strcmp0(method, "CANCEL") == 0) {
                /* 200 (CANCEL): the 487 to the INVITE follows and finishes the dialog. */
                if (status >= 300)
                        log_warning("Call %u: CANCEL answered with %u.", c->id, status);
        }
}

void call_handle_request(Call *c, const SipMessage *m) {
        const char *method = sip_message_method(m);

        if (g_strcmp0(method, "BYE") == 0) {
                call_send(c, sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL));
                if (!call_is_terminated(c))
                        call_set_state(c, CALL_STATE_TERMINATED, "Terminated", 0);
                call_sip_finished(c);
        } else if (g_strcmp0(method, "ACK") == 0) {
                /* nothing: we never send 2xx ourselves yet */
        } else if (g_strcmp0(method, "INFO") == 0 || g_strcmp0(method, "NOTIFY") == 0)
                call_send(c, sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL));
        else if (g_strcmp0(method, "INVITE") == 0 || g_strcmp0(method, "UPDATE") == 0) {
                /* Re-INVITE/UPDATE handling (hold from the far end) is not built yet: refuse
                 * without touching the call, the far end keeps its previous session. */
                log_warning("Call %u: refusing a %s from the gateway (not supported yet).", c->id, method);
                call_send(c, sip_build_response(m, 488, "Not Acceptable Here", NULL, NULL, NULL, NULL));
        } else
                call_send(c, sip_build_response(m, 405, "Method Not Allowed", NULL, NULL, NULL, NULL));
}

void call_transport_lost(Call *c) {
        if (call_is_terminated(c)) {
                call_sip_finished(c);
                return;
        }
        /* Only transactions in flight fail (gateway-protocol.md §1); a confirmed call keeps its
         * media and its next request goes over the next socket. */
        if (!call_is_confirmed(c) && c->invite_sent) {
                call_set_state(c, CALL_STATE_TERMINATED, "Connection Error", 0);
                call_sip_finished(c);
        }
}
