/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "call.h"
#include "log.h"
#include "phone.h"
#include "sdp.h"

/* RFC 3261 Timer B with the 500 ms T1 JsSIP uses: no response at all to the INVITE. */
#define CALL_TIMER_B_MS (64 * 500)
/* How long a terminated dialog waits for stray responses (487 after CANCEL, 200 to BYE). */
#define CALL_SIP_CLEANUP_MS (32 * 1000)
/* The SDK's INFO DTMF timing: 250 ms tone + 250 ms gap per digit, ',' = 2 s. */
#define CALL_INFO_DTMF_DURATION_MS 250
#define CALL_INFO_DTMF_STEP_MS 500
#define CALL_DTMF_PAUSE_MS 2000
/* JsSIP retries a 491 on a re-INVITE once after this long. */
#define CALL_REINVITE_RETRY_MS 1000
#define CALL_NO_ACK_MS (64 * 500)
#define CALL_TAG_ALPHABET "0123456789abcdefghijklmnopqrstuv"
#define CALL_RTP_CHECK_MS 1000
/* Microphone checks (peers-and-user-needs: "I was talking on mute", "they cannot hear me"):
 * speech is above -40 dBFS; it must last 3 checks (750 ms) to count, and 8 quiet checks (2 s)
 * end it. A microphone that delivered only digital silence for 5 s on an answered call is
 * broken or muted in hardware. */
#define CALL_MIC_CHECK_MS 250
#define CALL_SPEECH_DBFS (-40.0)
#define CALL_SPEECH_CHECKS 3U
#define CALL_SPEECH_END_CHECKS 8U
#define CALL_MIC_SILENT_USEC (5 * USEC_PER_SEC)
/* No RTP this long (or a third of RtpTimeoutMSec, if less): restart ICE, again every
 * CALL_ICE_RESTART_INTERVAL_MS until RTP is back or RtpTimeoutMSec ends the call (Vonage's
 * client: up to 5 restarts 3 s apart within its 10 s media timeout). */
#define CALL_ICE_RESTART_AFTER_MS 3000
#define CALL_ICE_RESTART_INTERVAL_MS 3000
/* An ICE restart re-checks the old local candidates only; when one did not bring RTP back, the
 * next step builds new media (call_renew_media()): the address it used may be gone. */
#define CALL_ICE_RESTARTS_BEFORE_RENEW 1U

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
        g_clear_handle_id(&c->reinvite_retry, g_source_remove);
        g_clear_handle_id(&c->info_timer, g_source_remove);
        g_clear_handle_id(&c->no_answer_timer, g_source_remove);
        g_clear_handle_id(&c->no_ack_timer, g_source_remove);
        g_clear_handle_id(&c->rtp_watchdog, g_source_remove);
        g_clear_handle_id(&c->mic_check, g_source_remove);
        tone_free(c->tone);
        g_free(c->tone_target);
        g_clear_handle_id(&c->dtmf_feedback_timer, g_source_remove);
        tone_free(c->dtmf_feedback);
        if (c->info_digits)
                g_string_free(c->info_digits, TRUE);
        sip_message_free(c->invite);
        g_free(c->answer_sdp);
        g_free(c->remote_display);
        for (CallDevice d = 0; d < _CALL_DEVICE_MAX; d++)
                g_free(c->device[d].chosen);
        media_free(c->pending_media);
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

/* Completes a deferred operation once; the callback may not see the call again. */
static void call_pending_finish(Call *c, CallPending *p, int error, const char *message) {
        CallPending copy = *p;

        if (!copy.done)
                return;
        *p = (CallPending) {};
        copy.done(c, error, message, copy.userdata);
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

static void call_set_reconnecting(Call *c, bool reconnecting) {
        static const char *const props[] = { "Reconnecting", NULL };

        if (c->reconnecting == reconnecting)
                return;
        c->reconnecting = reconnecting;
        log_info("Call %u: %s", c->id, reconnecting ? "no media, reconnecting it." : "media is back.");
        phone_notify_call_changed(c->phone, c, props);
}

/* "The call looks up but is silent" (peers-and-user-needs B.5): no RTP on an answered call
 * that nobody holds → Reconnecting and ICE restarts; still none after RtpTimeoutMSec → end it
 * like the SDK does on ICE failure, with BYE Reason 408 "RTP Timeout". */
static gboolean on_rtp_check(gpointer userdata) {
        Call *c = userdata;
        uint64_t packets, silent, now = (uint64_t) g_get_monotonic_time();
        unsigned timeout_ms = c->phone ? c->phone->config->rtp_timeout_ms : 0;
        uint64_t restart_after = (uint64_t) MIN(CALL_ICE_RESTART_AFTER_MS, timeout_ms / 3) * USEC_PER_MSEC;

        if (!c->media || call_is_terminated(c) || timeout_ms == 0) {
                c->rtp_watchdog = 0;
                return G_SOURCE_REMOVE;
        }
        packets = media_get_rtp_received(c->media);
        if (packets != c->rtp_packets || c->local_hold || c->remote_hold) {
                c->rtp_packets = packets;
                c->rtp_last_change = now;
                c->failed_ice_restarts = 0;
                call_set_reconnecting(c, false);
                return G_SOURCE_CONTINUE;
        }
        silent = now - c->rtp_last_change;
        if (silent >= restart_after && silent < (uint64_t) timeout_ms * USEC_PER_MSEC) {
                /* "The call looks up but is silent": try to heal the path before giving up. */
                call_set_reconnecting(c, true);
                if (now - c->last_ice_restart >= (uint64_t) CALL_ICE_RESTART_INTERVAL_MS * USEC_PER_MSEC) {
                        if (c->failed_ice_restarts >= CALL_ICE_RESTARTS_BEFORE_RENEW &&
                            call_renew_media(c, "an ICE restart did not bring RTP back") == 0)
                                c->failed_ice_restarts = 0;
                        else if (call_ice_restart(c, "no RTP") == 0)
                                c->failed_ice_restarts++;
                }
        }
        if (silent < (uint64_t) timeout_ms * USEC_PER_MSEC)
                return G_SOURCE_CONTINUE;

        log_warning("Call %u: no RTP for %u ms.", c->id, timeout_ms);
        c->rtp_watchdog = 0;
        call_abort(c, "RTP Timeout", 408, "RTP Timeout");
        return G_SOURCE_REMOVE;
}

static void call_set_flag(Call *c, bool *field, bool value, const char *property) {
        const char *const props[] = { property, NULL };

        if (*field == value)
                return;
        *field = value;
        phone_notify_call_changed(c->phone, c, props);
}

static gboolean on_mic_check(gpointer userdata) {
        Call *c = userdata;
        uint64_t sound_usec, now;
        double dbfs;
        bool loud;

        if (!c->media || call_is_terminated(c)) {
                c->mic_check = 0;
                return G_SOURCE_REMOVE;
        }
        media_get_input_level(c->media, &dbfs, &sound_usec);
        now = (uint64_t) g_get_monotonic_time(); /* after: the data thread may have just stored one */
        loud = dbfs > CALL_SPEECH_DBFS;
        c->mic_loud_checks = loud ? c->mic_loud_checks + 1 : 0;
        c->mic_quiet_checks = loud ? 0 : c->mic_quiet_checks + 1;
        if (!c->muted)
                call_set_flag(c, &c->speaking_while_muted, false, "SpeakingWhileMuted");
        else if (c->mic_loud_checks >= CALL_SPEECH_CHECKS)
                call_set_flag(c, &c->speaking_while_muted, true, "SpeakingWhileMuted");
        else if (c->mic_quiet_checks >= CALL_SPEECH_END_CHECKS)
                call_set_flag(c, &c->speaking_while_muted, false, "SpeakingWhileMuted");

        /* Since the answer or the last sound, whichever is later. */
        if (sound_usec < c->mic_check_start)
                sound_usec = c->mic_check_start;
        if (now - sound_usec >= CALL_MIC_SILENT_USEC && !c->microphone_silent) {
                log_warning("Call %u: the microphone (%s) delivered only silence for %" PRIu64 " s.", c->id,
                            call_device_in_use(c, CALL_DEVICE_INPUT) ?: "the system default",
                            (now - sound_usec) / USEC_PER_SEC);
                call_set_flag(c, &c->microphone_silent, true, "MicrophoneSilent");
        } else if (now - sound_usec < CALL_MIC_SILENT_USEC)
                call_set_flag(c, &c->microphone_silent, false, "MicrophoneSilent");
        return G_SOURCE_CONTINUE;
}

static void call_start_mic_check(Call *c) {
        if (c->mic_check)
                return;
        c->mic_check_start = (uint64_t) g_get_monotonic_time();
        c->mic_check = g_timeout_add(CALL_MIC_CHECK_MS, on_mic_check, c);
}

static void call_start_rtp_watchdog(Call *c) {
        if (c->rtp_watchdog || !c->phone || c->phone->config->rtp_timeout_ms == 0)
                return;
        c->rtp_packets = 0;
        c->rtp_last_change = (uint64_t) g_get_monotonic_time();
        c->rtp_watchdog = g_timeout_add(CALL_RTP_CHECK_MS, on_rtp_check, c);
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
                call_start_rtp_watchdog(c);
                call_start_mic_check(c);
        }
        if (state == CALL_STATE_TERMINATED) {
                g_free(c->cause);
                c->cause = g_strdup(cause ? cause : "Terminated");
                c->sip_code = sip_code;
                c->end_usec = now_realtime();
                props = terminated_props;
                g_clear_handle_id(&c->timer_b, g_source_remove);
                g_clear_handle_id(&c->reinvite_retry, g_source_remove);
                g_clear_handle_id(&c->info_timer, g_source_remove);
                g_clear_handle_id(&c->no_answer_timer, g_source_remove);
                g_clear_handle_id(&c->no_ack_timer, g_source_remove);
                g_clear_handle_id(&c->rtp_watchdog, g_source_remove);
                g_clear_handle_id(&c->mic_check, g_source_remove);
                /* Audio stops the moment the call ends, whatever SIP still has to do. */
                c->media = media_free(c->media);
                c->pending_media = media_free(c->pending_media);
                c->reinvite_renew = c->renew_wanted = false;
                g_clear_handle_id(&c->dtmf_feedback_timer, g_source_remove);
                c->dtmf_feedback = tone_free(c->dtmf_feedback);
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

                call_pending_finish(c, &c->hold_pending, -ESTALE, "the call ended");
                call_pending_finish(c, &c->answer_pending, -ESTALE, "the call ended");
                call_pending_finish(c, &c->transfer_pending, -ESTALE, "the call ended");

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

static void call_respond_invite(Call *c, unsigned code, const char *contact_uri, const char *sdp);
static void call_media_config(const Call *c, MediaConfig *mc);
static const MediaCallbacks call_media_callbacks;

static gboolean on_timer_b(gpointer userdata) {
        Call *c = userdata;

        c->timer_b = 0;
        log_warning("Call %u: no response to the INVITE in %u s.", c->id, CALL_TIMER_B_MS / 1000);
        call_set_state(c, CALL_STATE_TERMINATED, "Request Timeout", 408);
        call_sip_finished(c);
        return G_SOURCE_REMOVE;
}

/* ---- media callbacks ---- */

static void call_send_invite(Call *c, const char *sdp);

static void call_renewal_offer_ready(Call *c, int error);

static void on_offer_ready(Media *m, const char *sdp, int error, void *userdata) {
        Call *c = userdata;

        if (call_is_terminated(c)) /* hung up while gathering: nothing goes on the wire (SDK) */
                return;
        if (m == c->pending_media) {
                call_renewal_offer_ready(c, error);
                return;
        }
        if (error < 0) {
                MediaConfig mc;

                /* webrtcbin 1.22 sometimes refuses its own offer (a caps race between the voice
                 * and telephone-event branches). Nothing is on the wire yet: one fresh pipeline
                 * hides that from the user. */
                if (!c->offer_retried && error != -ENODEV) {
                        c->offer_retried = true;
                        log_warning_errno(error, "Call %u: media offer failed (%m); retrying once.", c->id);
                        c->media = media_free(c->media);
                        call_media_config(c, &mc);
                        if (media_new_offer(&mc, &call_media_callbacks, c, &c->media) >= 0)
                                return;
                }
                log_error_errno(error, "Call %u: failed to create the media offer: %m", c->id);
                call_set_state(c, CALL_STATE_TERMINATED, "WebRTC Error", 0);
                call_sip_finished(c);
                return;
        }

        call_send_invite(c, sdp);
}

/* The initial INVITE, also its one retry with a fresh token after a 401/403. */
static void call_send_invite(Call *c, const char *sdp) {
        const char *token;
        char *invite;
        int r;

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

        if (m == c->pending_media) {
                log_warning("Call %u: the renewed media failed (%s); keeping the old one.", c->id, message);
                c->pending_media = media_free(c->pending_media);
                return;
        }
        if (c->pending_media || c->renew_wanted) {
                /* The old path is expected to die; the renewal (or the watchdog) decides. */
                log_warning("Call %u: media failed (%s) while being renewed.", c->id, message);
                return;
        }
        log_warning("Call %u: media failed: %s", c->id, message);
        if (call_is_confirmed(c))
                call_abort(c, "RTP Timeout", 408, "RTP Timeout");
        else
                call_abort(c, "WebRTC Error", 500, "WebRTC Error");
}

static void on_media_dtmf_received(Media *m, char digit, void *userdata) {
        Call *c = userdata;

        log_info("Call %u: received DTMF %c (RFC 4733).", c->id, digit);
        if (c->phone)
                phone_notify_dtmf(c->phone, c, digit);
}

static gboolean on_dtmf_feedback_done(gpointer userdata) {
        Call *c = userdata;

        c->dtmf_feedback_timer = 0;
        c->dtmf_feedback = tone_free(c->dtmf_feedback);
        return G_SOURCE_REMOVE;
}

/* The digit going out now, heard on our speaker for as long as it lasts (keypad feedback). */
static void call_dtmf_feedback(Call *c, char digit, unsigned duration_ms) {
        int r;

        if (!c->phone || !c->phone->config->tone_dtmf_feedback)
                return;
        g_clear_handle_id(&c->dtmf_feedback_timer, g_source_remove);
        c->dtmf_feedback = tone_free(c->dtmf_feedback);
        r = tone_new_dtmf(digit, duration_ms, call_device_in_use(c, CALL_DEVICE_OUTPUT), &c->dtmf_feedback);
        if (r < 0) {
                log_debug_errno(r, "Call %u: no DTMF feedback: %m", c->id);
                return;
        }
        /* Its stream stays until the tone has played (PipeWire's delay included). */
        c->dtmf_feedback_timer = g_timeout_add(duration_ms + 500, on_dtmf_feedback_done, c);
}

static void on_media_dtmf_sending(Media *m, char digit, unsigned duration_ms, void *userdata) {
        call_dtmf_feedback(userdata, digit, duration_ms);
}

static const MediaCallbacks call_media_callbacks = {
        .offer_ready = on_offer_ready,
        .first_audio = on_first_audio,
        .failed = on_media_failed,
        .dtmf_received = on_media_dtmf_received,
        .dtmf_sending = on_media_dtmf_sending,
};

static void call_media_config(const Call *c, MediaConfig *mc) {
        const Config *config = c->phone->config;

        *mc = (MediaConfig) {
                .ice_addresses = (const char *const *) config->ice_addresses,
                .upnp = config->upnp,
                .stun_servers = (const char *const *) config->stun_servers,
                .latency_ms = config->latency_ms,
                .input_target = call_device_in_use(c, CALL_DEVICE_INPUT),
                .output_target = call_device_in_use(c, CALL_DEVICE_OUTPUT),
                .echo_cancel = config->echo_cancel,
                .noise_suppression = config->noise_suppression,
                .gain_control = config->gain_control,
        };
}

static const char *const call_device_names[_CALL_DEVICE_MAX] = {
        [CALL_DEVICE_INPUT] = "input",
        [CALL_DEVICE_OUTPUT] = "output",
};

const char *call_device_to_string(CallDevice d) {
        return d < _CALL_DEVICE_MAX ? call_device_names[d] : NULL;
}

const char *call_device_in_use(const Call *c, CallDevice d) {
        return c->device[d].unplugged ? NULL : c->device[d].chosen;
}

static void call_devices_init(Call *c, const CallOptions *options) {
        const Config *config = c->phone->config;
        const char *input = options && options->input ? options->input : config->input;
        const char *output = options && options->output ? options->output : config->output;

        c->device[CALL_DEVICE_INPUT].chosen = input && *input ? g_strdup(input) : NULL;
        c->device[CALL_DEVICE_OUTPUT].chosen = output && *output ? g_strdup(output) : NULL;
}

/* Moves the live media's microphone or speaker to node (NULL = the system default). */
static int call_move_media(Call *c, CallDevice d, const char *node) {
        int r;

        if (!c->media)
                return 0;
        /* A renewal being negotiated takes over with the same devices. */
        if (c->pending_media)
                (void) (d == CALL_DEVICE_INPUT ? media_set_input(c->pending_media, node)
                                               : media_set_output(c->pending_media, node));
        r = d == CALL_DEVICE_INPUT ? media_set_input(c->media, node) : media_set_output(c->media, node);
        if (r < 0)
                log_warning_errno(r, "Call %u: cannot move the %s to %s: %m", c->id, call_device_to_string(d),
                                  node ?: "the system default");
        return r;
}

/* Tells the observers that the call's device in use changed (Input/Output, AudioDeviceChanged). */
static void call_notify_device(Call *c, CallDevice d, const char *reason) {
        static const char *const props[_CALL_DEVICE_MAX][2] = {
                [CALL_DEVICE_INPUT] = { "Input", NULL },
                [CALL_DEVICE_OUTPUT] = { "Output", NULL },
        };
        const char *node = call_device_in_use(c, d);

        log_info("Call %u: %s on %s (%s).", c->id, call_device_to_string(d), node ?: "the system default", reason);
        phone_notify_call_changed(c->phone, c, props[d]);
        phone_notify_audio_device(c->phone, c, call_device_to_string(d), node ?: "", reason);
}

void call_set_tone(Call *c, ToneKind kind, const char *target) {
        int r;

        if (target && !*target)
                target = NULL;
        if (c->tone && tone_get_kind(c->tone) == kind && g_strcmp0(c->tone_target, target) == 0)
                return;
        if (!c->tone && kind == _TONE_MAX)
                return;
        c->tone = tone_free(c->tone);
        g_free(c->tone_target);
        c->tone_target = NULL;
        if (kind == _TONE_MAX) {
                log_debug("Call %u: local tone stopped.", c->id);
                return;
        }
        r = tone_new(kind, target, &c->tone);
        if (r < 0) {
                log_warning_errno(r, "Call %u: cannot play the %s tone: %m", c->id, tone_kind_to_string(kind));
                return;
        }
        c->tone_target = g_strdup(target);
        log_debug("Call %u: playing the %s tone on %s.", c->id, tone_kind_to_string(kind),
                  target ?: "the system default");
}

int call_set_device(Call *c, CallDevice d, const char *node) {
        int r;

        assert(c);
        assert(d < _CALL_DEVICE_MAX);

        if (call_is_terminated(c))
                return -ESTALE;
        r = call_move_media(c, d, node && *node ? node : NULL);
        if (r < 0)
                return r; /* still on the device it was on */
        g_free(c->device[d].chosen);
        c->device[d].chosen = node && *node ? g_strdup(node) : NULL;
        c->device[d].unplugged = false;
        call_notify_device(c, d, "requested");
        return 0;
}

void call_devices_changed(Call *c, bool (*present)(CallDevice d, const char *node, void *userdata),
                          void *userdata) {
        if (call_is_terminated(c))
                return;
        for (CallDevice d = 0; d < _CALL_DEVICE_MAX; d++) {
                const char *chosen = c->device[d].chosen;
                bool there;

                if (!chosen)
                        continue; /* following the default: WirePlumber moves the stream itself */
                there = present(d, chosen, userdata);
                if (there == !c->device[d].unplugged)
                        continue;
                c->device[d].unplugged = !there;
                (void) call_move_media(c, d, call_device_in_use(c, d));
                call_notify_device(c, d, there ? "returned" : "unplugged");
        }
}

int call_new_outgoing(Phone *phone, const char *number, const CallOptions *options, Call **ret) {
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
        c->options = *options;
        c->options.input = c->options.output = NULL;
        call_devices_init(c, options);

        r = sip_dialog_new_outgoing(&phone->ua, number, &c->dialog);
        if (r < 0)
                return log_error_errno(r, "Failed to create a SIP dialog: %m");

        call_media_config(c, &mc);
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

        if (c->state == CALL_STATE_INCOMING && !c->answered_waiting_ack) {
                /* JsSIP's terminate() on a ringing incoming call: 480, cause "Rejected". */
                call_respond_invite(c, 480, NULL, NULL);
                call_set_state(c, CALL_STATE_TERMINATED, "Rejected", 480);
                call_sip_finished(c);
                return 0;
        }
        if (c->answered_waiting_ack) {
                /* Answered but not confirmed yet: end it with BYE like a confirmed call. */
                c->answered_waiting_ack = false;
                call_send_bye(c, NULL);
                call_set_state(c, CALL_STATE_TERMINATED, "Terminated", 0);
                return 0;
        }

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

/* final: a 2xx confirms the dialog, and its To tag wins over an early dialog's (a forked or
 * re-tagged 18x), so ACK and BYE reach the leg that answered. */
static void call_update_dialog(Call *c, const SipMessage *m, bool final) {
        const char *tag = sip_message_to_tag(m), *contact = sip_message_contact_uri(m);

        if (tag && (final || !c->dialog->remote_tag)) {
                g_free(c->dialog->remote_tag);
                c->dialog->remote_tag = g_strdup(tag);
        }
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
        call_update_dialog(c, m, false);

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
        call_update_dialog(c, m, true);
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

static void on_auth_retry_token(Token *t, int error, const char *message, void *userdata) {
        _cleanup_(call_unrefp) Call *c = userdata;
        const char *sdp;

        if (call_is_terminated(c))
                return; /* hung up while the new token was on its way */
        sdp = c->media ? media_get_local_sdp(c->media) : NULL;
        if (error < 0 || !sdp) {
                log_warning("Call %u: no new OAuth token after the gateway refused ours: %s", c->id,
                            message ? message : "no local SDP");
                call_set_state(c, CALL_STATE_TERMINATED, "Authentication Error", c->auth_retry_status);
                call_sip_finished(c);
                return;
        }
        /* The same request again with the new token, as for a digest challenge: same Call-ID and
         * From tag, next CSeq, new branch, no To tag. */
        c->dialog->local_cseq++;
        g_clear_pointer(&c->dialog->remote_tag, g_free);
        log_info("Call %u: retrying the INVITE with a new OAuth token.", c->id);
        call_send_invite(c, sdp);
}

/* A 401/403 to the INVITE means the gateway no longer takes our token (revoked, or the clock
 * says expired while we think not): fetch a new one and try once more, transparently. */
static bool call_retry_auth(Call *c, unsigned status) {
        if ((status != 401 && status != 403) || c->auth_retried || call_is_terminated(c) ||
            c->phone->config->token_mode == TOKEN_MODE_EXTERNAL)
                return false;
        c->auth_retried = true;
        c->auth_retry_status = status;
        /* Nothing is in flight until the new INVITE: a hang-up meanwhile needs no CANCEL. */
        c->invite_sent = c->got_provisional = c->cancel_pending = false;
        token_reject(c->phone->token, status == 401 ? "the gateway answered 401 Unauthorized"
                                                    : "the gateway answered 403 Forbidden");
        token_acquire(c->phone->token, on_auth_retry_token, call_ref(c));
        return true;
}

static void call_handle_invite_final_error(Call *c, const SipMessage *m, unsigned status) {
        g_clear_handle_id(&c->timer_b, g_source_remove);
        call_send(c, sip_build_ack_non2xx(&c->phone->ua, c->dialog, sip_message_to_tag(m)));
        if (call_retry_auth(c, status))
                return;
        /* Refused again with a fresh token: the account, not the token, is the problem (JsSIP
         * alone would call a 403 "SIP Failure Code"). */
        if (!call_is_terminated(c))
                call_set_state(c, CALL_STATE_TERMINATED,
                               c->auth_retried && (status == 401 || status == 403) ? "Authentication Error"
                                                                                   : sip_status_to_cause(status),
                               status);
        call_sip_finished(c);
}

/* ---- hold / resume ---- */

static void call_update_hold_state(Call *c) {
        bool held = c->local_hold || c->remote_hold;

        if (c->state == CALL_STATE_ACTIVE && held)
                call_set_state(c, CALL_STATE_HELD, NULL, 0);
        else if (c->state == CALL_STATE_HELD && !held)
                call_set_state(c, CALL_STATE_ACTIVE, NULL, 0);
}

/* Our SDP for a re-INVITE or a 200 to one: the WebRTC session stays as it is; only the
 * direction follows local and remote hold (gateway-protocol.md §6). */
static char *call_local_sdp(Call *c, SdpDirection remote_offer, bool answering) {
        /* A renewal's re-INVITE offers the new media's description. */
        Media *media = c->reinvite_renew && !answering ? c->pending_media : c->media;
        const char *base = media ? media_get_local_sdp(media) : NULL;
        SdpDirection d;

        if (!base)
                return NULL;
        if (answering)
                d = sdp_direction_answer(remote_offer);
        else
                d = SDP_DIRECTION_SENDRECV;
        if (c->local_hold)
                d = d == SDP_DIRECTION_SENDRECV ? SDP_DIRECTION_SENDONLY
                  : d == SDP_DIRECTION_RECVONLY ? SDP_DIRECTION_INACTIVE : d;
        else if (!answering && c->remote_hold)
                d = SDP_DIRECTION_RECVONLY;
        return sdp_with_direction(base, d);
}

static int call_send_reinvite(Call *c) {
        g_autofree char *sdp = NULL, *text = NULL;
        bool saved = c->local_hold;
        int r;

        /* Build the offer for the state we ask for. */
        c->local_hold = c->reinvite_hold;
        sdp = call_local_sdp(c, SDP_DIRECTION_SENDRECV, false);
        c->local_hold = saved;
        if (!sdp)
                return -ENODEV;
        text = sip_build_request(&c->phone->ua, c->dialog, "INVITE", NULL, "application/sdp", sdp, &c->reinvite_cseq);
        if (!text)
                return -EINVAL;
        r = phone_send_sip(c->phone, text);
        if (r < 0)
                c->reinvite_cseq = 0;
        return r;
}

static void call_renewal_abandon(Call *c, const char *why);

static gboolean on_reinvite_retry(gpointer userdata) {
        Call *c = userdata;
        int r;

        c->reinvite_retry = 0;
        r = call_send_reinvite(c);
        if (r < 0 && c->reinvite_renew)
                call_renewal_abandon(c, "could not send the re-INVITE again");
        else if (r < 0) {
                media_set_active(c->media, !c->local_hold);
                call_pending_finish(c, &c->hold_pending, r, "could not send the re-INVITE again");
        }
        return G_SOURCE_REMOVE;
}

int call_hold(Call *c, bool hold, CallDoneFunc done, void *userdata) {
        int r;

        if (!call_is_confirmed(c))
                return -ESTALE;
        if (c->reinvite_cseq || c->reinvite_retry || c->hold_pending.done)
                return -EBUSY;
        if (c->local_hold == hold) {
                done(c, 0, NULL, userdata);
                return 0;
        }

        c->reinvite_hold = hold;
        c->reinvite_attempts = 1;
        /* The far end stops hearing us at once, as the SDK disables its track before signalling. */
        if (hold && c->media)
                media_set_active(c->media, false);
        r = call_send_reinvite(c);
        if (r < 0) {
                if (hold && c->media)
                        media_set_active(c->media, true);
                return r;
        }
        c->hold_pending = (CallPending) { done, userdata };
        log_info("Call %u: %s requested.", c->id, hold ? "hold" : "resume");
        return 0;
}

/* The far end lost the dialog (gateway-protocol.md §5): nothing left to keep, and no BYE. */
static void call_dialog_lost(Call *c, unsigned status) {
        call_set_state(c, CALL_STATE_TERMINATED, "Dialog Error", status);
        call_sip_finished(c);
}

/* The answer to a renewal's re-INVITE (answer NULL: refused with status): the new media takes
 * over, with the call's mute and hold state, or is dropped and the old one stays. */
static void call_renewal_answered(Call *c, const char *answer, unsigned status) {
        Media *old;
        int r;

        c->reinvite_renew = false;
        if (!c->pending_media) {
                log_warning("Call %u: the renewed media is gone already; keeping the old one.", c->id);
                return;
        }
        if (!answer) {
                log_warning("Call %u: the gateway refused the media renewal (%u).", c->id, status);
                c->pending_media = media_free(c->pending_media);
                return;
        }
        if (!media_answer_is_new_association(c->media, answer)) {
                /* It answered with the session it has (same RFC 8842 tls-id): the new media would
                 * find nobody at the other end. The old one stays; the watchdog decides. */
                log_warning("Call %u: the gateway kept its old DTLS association in answer to the media renewal.",
                            c->id);
                c->pending_media = media_free(c->pending_media);
                return;
        }
        r = media_set_answer(c->pending_media, answer);
        if (r < 0) {
                log_warning_errno(r, "Call %u: unusable answer to the media renewal: %m", c->id);
                c->pending_media = media_free(c->pending_media);
                return;
        }
        old = c->media;
        c->media = TAKE_PTR(c->pending_media);
        media_set_muted(c->media, c->muted);
        media_set_active(c->media, !c->local_hold);
        media_free(old);
        /* The watchdog counts the new media's packets from zero; RtpTimeoutMSec still counts from
         * when the silence began (a far end that is gone for good ends the call in time). */
        c->rtp_packets = 0;
        c->failed_ice_restarts = 0;
        log_info("Call %u: media renewed: new local candidates and DTLS session.", c->id);
}

/* The answer to our re-INVITE: a hold/resume, an ICE restart (reinvite_ice), or a media
 * renewal (reinvite_renew). */
static void call_handle_reinvite_response(Call *c, const SipMessage *m, unsigned status) {
        static const char *const props[] = { "LocalHold", NULL };
        int r;

        if (status < 200)
                return;
        c->reinvite_cseq = 0;
        /* ACK for every final answer: for a non-2xx, ACK with the same branch is the transport's
         * business for INVITE; over a reliable socket JsSIP sends it as a new request with the
         * re-INVITE's CSeq. */
        call_send(c, sip_build_ack_for(&c->phone->ua, c->dialog, sip_message_cseq_number(m)));
        if (call_is_terminated(c)) {
                /* A 200 that crossed our BYE: acknowledged, nothing to apply. */
                c->reinvite_renew = c->reinvite_ice = false;
                return;
        }
        if (c->reinvite_renew && !(status == 491 && c->reinvite_attempts < 2)) {
                call_renewal_answered(c, status < 300 ? sip_message_body(m) : NULL, status);
                if (status == 408 || status == 481)
                        call_dialog_lost(c, status);
                return;
        }
        if (status < 300 && c->reinvite_ice) {
                c->reinvite_ice = false;
                r = media_ice_apply_remote(c->media, sip_message_body(m));
                if (r < 0)
                        log_warning_errno(r, "Call %u: unusable answer to the ICE restart: %m", c->id);
                return;
        }
        if (status < 300) {
                c->local_hold = c->reinvite_hold;
                if (c->media)
                        media_set_active(c->media, !c->local_hold);
                phone_notify_call_changed(c->phone, c, props);
                phone_notify_hold(c->phone, c, c->local_hold, false);
                call_update_hold_state(c);
                call_pending_finish(c, &c->hold_pending, 0, NULL);
                return;
        }
        if (status == 408 || status == 481) {
                call_pending_finish(c, &c->hold_pending, -EPROTO, "the gateway no longer knows the call");
                call_dialog_lost(c, status);
                return;
        }
        if (status == 491 && c->reinvite_attempts < 2) {
                c->reinvite_attempts++;
                log_info("Call %u: re-INVITE crossed another (491); retrying once.", c->id);
                c->reinvite_retry = g_timeout_add(CALL_REINVITE_RETRY_MS, on_reinvite_retry, c);
                return;
        }
        if (c->reinvite_ice) {
                /* Our side is restarted already; the watchdog tries again while RTP is missing. */
                c->reinvite_ice = false;
                log_warning("Call %u: the gateway refused the ICE restart (%u).", c->id, status);
                return;
        }
        /* Unlike the SDK (which tears the call down), a refused hold leaves the call as it was. */
        if (c->media)
                media_set_active(c->media, !c->local_hold);
        {
                g_autofree char *message = g_strdup_printf("the gateway refused the %s: %u %s",
                                                           c->reinvite_hold ? "hold" : "resume", status,
                                                           sip_message_reason_phrase(m) ?: "");
                log_warning("Call %u: %s; the call stays %s.", c->id, message, call_state_to_string(c->state));
                call_pending_finish(c, &c->hold_pending, -EPROTO, message);
        }
}

/* A re-INVITE or UPDATE from the far end: remote hold/resume (gateway-protocol.md §6). */
static void call_handle_remote_offer(Call *c, const SipMessage *m) {
        static const char *const props[] = { "RemoteHold", NULL };
        g_autofree char *answer = NULL, *contact = NULL, *text = NULL;
        SdpDirection offered = SDP_DIRECTION_SENDRECV;
        bool hold;

        /* Glare (RFC 3261 §14.2): our own re-INVITE (hold, ICE restart, renewal) is out. */
        if (!call_is_confirmed(c) || c->reinvite_cseq || c->pending_media) {
                call_send(c, sip_build_response(m, 491, "Request Pending", NULL, NULL, NULL, NULL));
                return;
        }
        if (is_sdp(m) && sdp_get_direction(sip_message_body(m), &offered) < 0) {
                call_send(c, sip_build_response(m, 488, "Not Acceptable Here", NULL, NULL, NULL, NULL));
                return;
        }
        /* A re-INVITE without SDP is not hold (the SDK fires (false, true)). */
        hold = is_sdp(m) && sdp_is_hold(offered);
        answer = call_local_sdp(c, offered, true);
        if (!answer) {
                call_send(c, sip_build_response(m, 500, NULL, NULL, NULL, NULL, NULL));
                return;
        }
        contact = g_strdup_printf("sip:%s@%s;transport=ws", c->phone->ua.user, c->phone->ua.contact_host);
        text = sip_build_response(m, 200, "OK", NULL, contact, "application/sdp", answer);
        call_send(c, g_steal_pointer(&text));

        if (hold != c->remote_hold) {
                c->remote_hold = hold;
                log_info("Call %u: the far end %s the call.", c->id, hold ? "holds" : "resumed");
                phone_notify_call_changed(c->phone, c, props);
                phone_notify_hold(c->phone, c, hold, true);
                call_update_hold_state(c);
        }
}

/* ---- DTMF ---- */

static bool dtmf_valid(const char *digits) {
        if (!digits || !*digits || strlen(digits) > 256)
                return false;
        for (const char *p = digits; *p; p++)
                if (!strchr("0123456789ABCDabcd*#,", *p))
                        return false;
        return true;
}

static gboolean on_info_dtmf(gpointer userdata) {
        Call *c = userdata;
        char digit;

        c->info_timer = 0;
        if (!c->info_digits || c->info_digits->len == 0 || !call_is_confirmed(c))
                return G_SOURCE_REMOVE;
        digit = c->info_digits->str[0];
        g_string_erase(c->info_digits, 0, 1);
        if (digit != ',') {
                g_autofree char *body = g_strdup_printf("Signal=%c\r\nDuration=%d", digit, CALL_INFO_DTMF_DURATION_MS);
                call_send(c, sip_build_request(&c->phone->ua, c->dialog, "INFO", NULL, "application/dtmf-relay",
                                               body, NULL));
                call_dtmf_feedback(c, digit, CALL_INFO_DTMF_DURATION_MS);
        }
        if (c->info_digits->len > 0)
                c->info_timer = g_timeout_add(digit == ',' ? CALL_DTMF_PAUSE_MS : CALL_INFO_DTMF_STEP_MS,
                                              on_info_dtmf, c);
        return G_SOURCE_REMOVE;
}

int call_send_dtmf(Call *c, const char *digits) {
        g_autofree char *upper = NULL;
        int r;

        if (!dtmf_valid(digits))
                return -EINVAL;
        if (!call_is_confirmed(c))
                return -ESTALE;
        upper = g_ascii_strup(digits, -1);

        if (c->options.dtmf_method == DTMF_METHOD_RFC4733 && c->media && media_has_telephone_event(c->media)) {
                r = media_send_dtmf(c->media, upper, CALL_INFO_DTMF_DURATION_MS, CALL_INFO_DTMF_STEP_MS -
                                                                                    CALL_INFO_DTMF_DURATION_MS);
                if (r >= 0) {
                        log_info("Call %u: sending DTMF %s as RFC 4733 events.", c->id, upper);
                        return 0;
                }
                log_warning_errno(r, "Call %u: RFC 4733 DTMF not possible (%m); using SIP INFO.", c->id);
        }
        /* SIP INFO, also the fallback when telephone-event was not negotiated (as the SDK does). */
        if (!c->info_digits)
                c->info_digits = g_string_new(NULL);
        g_string_append(c->info_digits, upper);
        log_info("Call %u: sending DTMF %s as SIP INFO.", c->id, upper);
        if (!c->info_timer)
                c->info_timer = g_idle_add(on_info_dtmf, c);
        return 0;
}

static void call_handle_info(Call *c, const SipMessage *m) {
        const char *ct = sip_message_content_type(m);

        call_send(c, sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL));
        if (g_strcmp0(ct, "application/dtmf-relay") == 0) {
                g_auto(GStrv) lines = g_strsplit(sip_message_body(m), "\n", 16);

                for (char **l = lines; *l; l++) {
                        g_strstrip(*l);
                        if (g_ascii_strncasecmp(*l, "Signal=", 7) == 0) {
                                const char *v = g_strstrip(*l + 7);
                                if (strlen(v) == 1 && strchr("0123456789ABCDabcd*#", v[0])) {
                                        log_info("Call %u: received DTMF %c (SIP INFO).", c->id, v[0]);
                                        phone_notify_dtmf(c->phone, c, g_ascii_toupper(v[0]));
                                } else
                                        log_warning("Call %u: ignoring INFO with an invalid DTMF signal.", c->id);
                        }
                }
        }
}

/* ---- incoming calls ---- */

/* The URI inside a name-addr ("Name" <sip:x@y>;tag=..) or an addr-spec (sip:x@y;tag=..). */
static char *uri_of(const char *value) {
        const char *lt, *gt;

        if (!value)
                return NULL;
        lt = strchr(value, '<');
        if (lt) {
                gt = strchr(lt, '>');
                return gt ? g_strndup(lt + 1, (gsize) (gt - lt - 1)) : NULL;
        }
        return g_strndup(value, strcspn(value, "; \t"));
}

/* "sip:+1555@host;..." → "+1555" */
static char *user_of(const char *uri) {
        const char *p, *at;

        if (!uri || (!g_str_has_prefix(uri, "sip:") && !g_str_has_prefix(uri, "sips:")))
                return NULL;
        p = strchr(uri, ':') + 1;
        at = strchr(p, '@');
        return at && at > p ? g_strndup(p, (gsize) (at - p)) : NULL;
}

static char *call_contact(const Call *c) {
        return g_strdup_printf("sip:%s@%s;transport=ws", c->phone->ua.user, c->phone->ua.contact_host);
}

/* A final or provisional answer to the gateway's INVITE. */
static void call_respond_invite(Call *c, unsigned code, const char *contact_uri, const char *sdp) {
        g_autofree char *contact = NULL;

        if (!c->invite)
                return;
        if (!contact_uri && code >= 101 && code < 300)
                contact_uri = contact = call_contact(c);
        call_send(c, sip_build_response(c->invite, code, NULL, code == 100 ? NULL : c->dialog->local_tag,
                                        contact_uri, sdp ? "application/sdp" : NULL, sdp));
}

static gboolean on_no_answer(gpointer userdata) {
        Call *c = userdata;

        c->no_answer_timer = 0;
        log_info("Call %u: not answered; 408.", c->id);
        call_respond_invite(c, 408, NULL, NULL);
        call_set_state(c, CALL_STATE_TERMINATED, "No Answer", 408);
        call_sip_finished(c);
        return G_SOURCE_REMOVE;
}

static gboolean on_no_ack(gpointer userdata) {
        Call *c = userdata;

        c->no_ack_timer = 0;
        log_warning("Call %u: no ACK for our 200; ending the call.", c->id);
        c->answered_waiting_ack = false;
        call_pending_finish(c, &c->answer_pending, -ETIMEDOUT, "the gateway never acknowledged the answer (no ACK)");
        /* JsSIP on Timer H: a plain BYE, cause "No ACK". */
        call_send_bye(c, NULL);
        call_set_state(c, CALL_STATE_TERMINATED, "No ACK", 0);
        return G_SOURCE_REMOVE;
}

static void call_send_answer(Call *c) {
        call_respond_invite(c, 200, NULL, c->answer_sdp);
        c->answered_waiting_ack = true;
        c->no_ack_timer = g_timeout_add(CALL_NO_ACK_MS, on_no_ack, c);
        g_clear_handle_id(&c->no_answer_timer, g_source_remove);
}

static void on_answer_ready(Media *m, const char *sdp, int error, void *userdata) {
        Call *c = userdata;

        if (call_is_terminated(c))
                return;
        if (error < 0) {
                log_warning_errno(error, "Call %u: cannot answer the offer: %m", c->id);
                call_respond_invite(c, 488, NULL, NULL);
                call_set_state(c, CALL_STATE_TERMINATED, "Incompatible SDP", 488);
                call_sip_finished(c);
                return;
        }
        c->answer_sdp = g_strdup(sdp);
        if (c->answer_requested)
                call_send_answer(c);
}

static const MediaCallbacks call_incoming_media_callbacks = {
        .offer_ready = on_answer_ready,
        .first_audio = on_first_audio,
        .failed = on_media_failed,
        .dtmf_received = on_media_dtmf_received,
        .dtmf_sending = on_media_dtmf_sending,
};

int call_new_incoming(Phone *phone, SipMessage *invite, Call **ret) {
        _cleanup_(call_unrefp) Call *c = g_new0(Call, 1);
        g_autofree char *from_uri = NULL, *to_uri = NULL;
        SipDialog *d;
        MediaConfig mc;
        char **rr;
        int r;

        c->n_ref = 1;
        c->phone = phone;
        c->id = ++phone->next_call_id;
        c->state = CALL_STATE_INCOMING;
        c->direction = CALL_DIRECTION_INCOMING;
        c->created_usec = now_realtime();
        c->options.dtmf_method = phone->config->dtmf_method;
        call_devices_init(c, NULL);
        c->invite = invite; /* ours now, even on failure */

        from_uri = uri_of(sip_message_header(invite, "From"));
        to_uri = uri_of(sip_message_header(invite, "To"));
        c->number = user_of(from_uri);
        if (!c->number || !to_uri || !sip_message_from_tag(invite) || !sip_message_contact_uri(invite))
                return -EBADMSG;

        /* The far end's dialog seen from our side (RFC 3261 12.1.1). */
        d = c->dialog = g_new0(SipDialog, 1);
        d->incoming = true;
        d->call_id = g_strdup(sip_message_call_id(invite));
        d->remote_tag = g_strdup(sip_message_from_tag(invite));
        d->local_tag = sip_random_token(10, CALL_TAG_ALPHABET);
        d->request_uri = g_steal_pointer(&from_uri);
        d->local_uri = g_steal_pointer(&to_uri);
        d->remote_target = g_strdup(sip_message_contact_uri(invite));
        d->invite_cseq = sip_message_cseq_number(invite);
        d->local_cseq = (uint32_t) g_random_int_range(0, 10000);
        rr = sip_message_record_routes(invite);
        d->route_set = rr; /* a UAS keeps Record-Route in order */

        if (!is_sdp(invite)) {
                /* Offer-less INVITEs (offer in the ACK) are not supported by webrtcbin's flow. */
                call_respond_invite(c, 488, NULL, NULL);
                return -EBADMSG;
        }

        call_respond_invite(c, 100, NULL, NULL);
        call_media_config(c, &mc);
        r = media_new_answer(&mc, sip_message_body(invite), &call_incoming_media_callbacks, c, &c->media);
        if (r < 0) {
                call_respond_invite(c, r == -EBADMSG ? 488 : 480, NULL, NULL);
                return log_warning_errno(r, "Cannot take an incoming call: %m");
        }
        call_respond_invite(c, 180, NULL, NULL);
        if (phone->config->incoming_timeout_ms > 0)
                c->no_answer_timer = g_timeout_add(phone->config->incoming_timeout_ms, on_no_answer, c);

        *ret = TAKE_PTR(c);
        return 0;
}

int call_answer(Call *c, CallDoneFunc done, void *userdata) {
        if (c->state != CALL_STATE_INCOMING || c->answer_requested)
                return -ESTALE;
        c->answer_requested = true;
        c->answer_pending = (CallPending) { done, userdata };
        log_info("Call %u: answering.", c->id);
        if (c->answer_sdp)
                call_send_answer(c);
        return 0;
}

int call_reject(Call *c, unsigned code) {
        if (c->state != CALL_STATE_INCOMING || c->answered_waiting_ack)
                return -ESTALE;
        if (code == 0)
                code = 486;
        if (code < 300 || code > 699)
                return -EINVAL;
        call_respond_invite(c, code, NULL, NULL);
        call_set_state(c, CALL_STATE_TERMINATED, "Rejected", code);
        call_sip_finished(c);
        return 0;
}

int call_redirect(Call *c, const char *target) {
        g_autofree char *number = NULL, *message = NULL, *contact = NULL;
        int r;

        if (c->state != CALL_STATE_INCOMING || c->answered_waiting_ack)
                return -ESTALE;
        r = phone_normalize_number(target, &number, &message);
        if (r < 0)
                return r;
        contact = g_strdup_printf("sip:%s@%s", number, c->phone->ua.domain);
        call_respond_invite(c, 302, contact, NULL);
        call_set_state(c, CALL_STATE_TERMINATED, "Redirected", 302);
        call_sip_finished(c);
        return 0;
}

/* ---- blind transfer ---- */

int call_transfer(Call *c, const char *target, CallDoneFunc done, void *userdata) {
        g_autofree char *number = NULL, *message = NULL, *refer_to = NULL, *referred_by = NULL, *text = NULL;
        const char *headers[3];
        int r;

        if (!call_is_confirmed(c))
                return -ESTALE;
        if (c->transfer_pending.done)
                return -EBUSY;
        r = phone_normalize_number(target, &number, &message);
        if (r < 0)
                return r;
        refer_to = g_strdup_printf("Refer-To: <sip:%s@%s>", number, c->phone->ua.domain);
        referred_by = g_strdup_printf("Referred-By: <sip:%s@%s>", c->phone->ua.user, c->phone->ua.domain);
        headers[0] = refer_to;
        headers[1] = referred_by;
        headers[2] = NULL;
        text = sip_build_request(&c->phone->ua, c->dialog, "REFER", headers, NULL, NULL, &c->refer_cseq);
        if (!text)
                return -EINVAL;
        r = phone_send_sip(c->phone, text);
        if (r < 0)
                return r;
        c->transfer_pending = (CallPending) { done, userdata };
        log_info("Call %u: transferring to %s.", c->id, number);
        return 0;
}

static void call_handle_refer_response(Call *c, const SipMessage *m, unsigned status) {
        if (status < 200)
                return;
        if (status >= 300) {
                g_autofree char *message = g_strdup_printf("the gateway refused the transfer: %u %s", status,
                                                           sip_message_reason_phrase(m) ?: "");
                c->refer_cseq = 0;
                call_pending_finish(c, &c->transfer_pending, -EPROTO, message);
        }
        /* 202: the outcome comes in NOTIFYs. */
}

/* NOTIFY (Event: refer) with a message/sipfrag body "SIP/2.0 <code> <reason>". */
static void call_handle_notify(Call *c, const SipMessage *m) {
        const char *event = sip_message_header(m, "Event");
        const char *body = sip_message_body(m);
        unsigned code = 0;

        call_send(c, sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL));
        if (!event || g_ascii_strncasecmp(event, "refer", 5) != 0 || !c->transfer_pending.done)
                return;
        if (g_str_has_prefix(body, "SIP/2.0 "))
                code = (unsigned) g_ascii_strtoull(body + 8, NULL, 10);
        if (code < 100 || code > 699) {
                log_warning("Call %u: NOTIFY with an unreadable sipfrag.", c->id);
                return;
        }
        if (code < 200)
                return;
        c->refer_cseq = 0;
        if (code < 300) {
                log_info("Call %u: transfer succeeded.", c->id);
                call_pending_finish(c, &c->transfer_pending, 0, NULL);
                call_send_bye(c, NULL);
                call_set_state(c, CALL_STATE_TERMINATED, "Transferred", 0);
        } else {
                g_autofree char *line = g_strndup(body + 8, strcspn(body + 8, "\r\n"));
                g_autofree char *message = g_strdup_printf("the transfer target answered %s", line);
                log_info("Call %u: transfer failed: %s; the call stays up.", c->id, line);
                call_pending_finish(c, &c->transfer_pending, -EPROTO, message);
        }
}

/* An incoming REFER: the SDK accepts (202) and, with no transfer handler, declines in the
 * NOTIFY (gateway-protocol.md §8). We do the same and tell D-Bus clients what was asked. */
static void call_handle_incoming_refer(Call *c, const SipMessage *m) {
        g_autofree char *target_uri = uri_of(sip_message_header(m, "Refer-To"));
        g_autofree char *target = user_of(target_uri);
        g_autofree char *event = NULL, *text = NULL;
        const char *headers[3];

        if (!target_uri) {
                call_send(c, sip_build_response(m, 400, "Bad Request", NULL, NULL, NULL, NULL));
                return;
        }
        call_send(c, sip_build_response(m, 202, "Accepted", NULL, NULL, NULL, NULL));
        phone_notify_transfer_requested(c->phone, c, target ? target : target_uri);

        event = g_strdup_printf("Event: refer;id=%u", sip_message_cseq_number(m));
        headers[0] = event;
        headers[1] = "Subscription-State: terminated;reason=noresource";
        headers[2] = NULL;
        call_send(c, sip_build_request(&c->phone->ua, c->dialog, "NOTIFY", headers, "message/sipfrag;version=2.0",
                                       "SIP/2.0 603 Decline", NULL));
}

/* Whether "iface/address" for this address is in the phone's list "iface/address ...". */
static bool address_listed(const char *local_addresses, const char *address) {
        g_autofree char *needle = g_strdup_printf("/%s", address);

        for (const char *p = strstr(local_addresses, needle); p; p = strstr(p + 1, needle)) {
                char end = p[strlen(needle)];
                if (end == ' ' || end == '\0')
                        return true;
        }
        return false;
}

bool call_media_addresses_gone(const Call *c, const char *local_addresses) {
        const char *sdp = c->media ? media_get_local_sdp(c->media) : NULL;
        g_autofree char *selected = NULL;
        g_auto(GStrv) lines = NULL;
        bool any = false;

        if (!sdp || !local_addresses)
                return false;
        /* The address the media flows from decides, whatever else is left (docker0, a VPN). */
        selected = media_selected_local_address(c->media);
        if (selected)
                return !address_listed(local_addresses, selected);
        lines = g_strsplit(sdp, "\n", -1);
        for (char **l = lines; *l; l++) {
                g_auto(GStrv) f = NULL;

                /* a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ host;
                 * UDP only: what the media flows on (an active TCP candidate binds nothing). */
                if (!g_str_has_prefix(*l, "a=candidate:") || !strstr(*l, " typ host"))
                        continue;
                f = g_strsplit(g_strstrip(*l), " ", 7);
                if (g_strv_length(f) < 6 || g_ascii_strcasecmp(f[2], "UDP") != 0)
                        continue;
                any = true;
                if (address_listed(local_addresses, f[4]))
                        return false; /* one of its addresses is still there */
        }
        return any;
}

/* Drops a renewal being gathered or negotiated; the old media stays. */
static void call_renewal_abandon(Call *c, const char *why) {
        if (!c->pending_media && !c->reinvite_renew)
                return;
        log_info("Call %u: media renewal dropped (%s).", c->id, why);
        c->reinvite_renew = false;
        c->pending_media = media_free(c->pending_media);
}

int call_renew_media(Call *c, const char *why) {
        MediaConfig mc;
        int r;

        if (call_is_terminated(c) || !call_is_confirmed(c) || !c->media)
                return -ESTALE;
        if (c->pending_media)
                return -EBUSY; /* one is on its way */
        if (c->reinvite_cseq || c->reinvite_retry) {
                c->renew_wanted = true; /* when that re-INVITE is answered */
                return 0;
        }
        if (!transport_is_connected(c->phone->transport)) {
                c->renew_wanted = true; /* after the reconnect (call_transport_restored()) */
                return 0;
        }
        c->renew_wanted = false;
        call_media_config(c, &mc);
        r = media_new_offer(&mc, &call_media_callbacks, c, &c->pending_media);
        if (r < 0)
                return log_warning_errno(r, "Call %u: cannot build new media: %m", c->id);
        c->last_ice_restart = (uint64_t) g_get_monotonic_time();
        log_info("Call %u: renewing the media (%s).", c->id, why);
        return 0;
}

/* The renewal's offer is gathered: it goes out in a re-INVITE, same direction as now. */
static void call_renewal_offer_ready(Call *c, int error) {
        int r;

        if (error >= 0 && (c->reinvite_cseq || c->reinvite_retry)) {
                /* A hold crossed it: renew once that re-INVITE is answered. */
                call_renewal_abandon(c, "another re-INVITE is out");
                c->renew_wanted = true;
                return;
        }
        if (error >= 0)
                error = media_continue_session(c->pending_media, c->media);
        if (error < 0) {
                log_warning_errno(error, "Call %u: no media renewal: %m", c->id);
                c->pending_media = media_free(c->pending_media);
                return;
        }
        c->reinvite_renew = true;
        c->reinvite_hold = c->local_hold;
        c->reinvite_attempts = 1;
        r = call_send_reinvite(c);
        if (r < 0) {
                log_warning_errno(r, "Call %u: cannot send the media renewal re-INVITE: %m", c->id);
                call_renewal_abandon(c, "not sent");
                c->renew_wanted = true; /* after the reconnect */
        }
}

int call_ice_restart(Call *c, const char *why) {
        int r;

        if (call_is_terminated(c) || !call_is_confirmed(c) || !c->media)
                return -ESTALE;
        if (c->reinvite_cseq || c->reinvite_retry || c->pending_media)
                return -EBUSY; /* the watchdog or the next network change will try again */
        c->last_ice_restart = (uint64_t) g_get_monotonic_time();
        if (!transport_is_connected(c->phone->transport)) {
                c->ice_restart_wanted = true;
                return 0;
        }
        r = media_ice_restart(c->media);
        if (r < 0)
                return log_warning_errno(r, "Call %u: ICE restart failed: %m", c->id);
        c->ice_restart_wanted = false;
        c->reinvite_ice = true;
        c->reinvite_hold = c->local_hold; /* same direction, new ICE credentials */
        c->reinvite_attempts = 1;
        r = call_send_reinvite(c);
        if (r < 0) {
                c->reinvite_ice = false;
                c->ice_restart_wanted = true;
                return log_warning_errno(r, "Call %u: cannot send the ICE restart re-INVITE: %m", c->id);
        }
        log_info("Call %u: ICE restart (%s).", c->id, why);
        return 0;
}

/* Nothing else from us may cross the new socket for a long time, and a gateway that routes by
 * flow (bwgw-sim: by Contact host, newest socket) cannot reach the call until something does:
 * an in-dialog OPTIONS carries our Via and Contact over the new socket. Its answer also tells
 * whether the gateway still knows the call (481: it does not). The SDK sends nothing here. */
void call_transport_restored(Call *c) {
        const char *const headers[] = { "Accept: application/sdp", NULL };
        char *text;

        if (call_is_terminated(c) || !call_is_confirmed(c) || c->options_cseq)
                return;
        /* A renewal or an ICE restart re-INVITE that is due anyway tells the gateway just as well. */
        if (c->renew_wanted && call_renew_media(c, "the call's addresses went away") == 0)
                return;
        if (c->ice_restart_wanted && call_ice_restart(c, "the network changed") == 0)
                return;
        text = sip_build_request(&c->phone->ua, c->dialog, "OPTIONS", headers, NULL, NULL, &c->options_cseq);
        if (text)
                call_send(c, text);
}

static void call_handle_options_response(Call *c, unsigned status) {
        if (status < 200)
                return;
        c->options_cseq = 0;
        if (status == 408 || status == 481) {
                log_warning("Call %u: the gateway no longer knows the call after the reconnect (%u).", c->id, status);
                call_dialog_lost(c, status);
        }
}

void call_handle_response(Call *c, const SipMessage *m) {
        const char *method = sip_message_cseq_method(m);
        unsigned status = sip_message_status(m);
        uint32_t cseq = sip_message_cseq_number(m);

        if (g_strcmp0(method, "INVITE") == 0) {
                if (c->reinvite_cseq && cseq == c->reinvite_cseq) {
                        call_handle_reinvite_response(c, m, status);
                        /* A renewal that had to wait for this re-INVITE goes now. */
                        if (status >= 200 && c->renew_wanted && !call_is_terminated(c) && !c->reinvite_cseq &&
                            !c->reinvite_retry && !c->pending_media)
                                (void) call_renew_media(c, "it waited for another re-INVITE");
                        return;
                }
                if (cseq != c->dialog->invite_cseq || c->dialog->incoming)
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
        } else if (g_strcmp0(method, "OPTIONS") == 0 && cseq == c->options_cseq) {
                call_handle_options_response(c, status);
        } else if (g_strcmp0(method, "REFER") == 0 && cseq == c->refer_cseq) {
                call_handle_refer_response(c, m, status);
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
                if (c->answered_waiting_ack && sip_message_cseq_number(m) == c->dialog->invite_cseq) {
                        c->answered_waiting_ack = false;
                        g_clear_handle_id(&c->no_ack_timer, g_source_remove);
                        call_set_state(c, CALL_STATE_ACTIVE, NULL, 0);
                        call_pending_finish(c, &c->answer_pending, 0, NULL);
                }
        } else if (g_strcmp0(method, "CANCEL") == 0) {
                call_send(c, sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL));
                if (c->state == CALL_STATE_INCOMING && !c->answered_waiting_ack) {
                        call_respond_invite(c, 487, NULL, NULL);
                        call_set_state(c, CALL_STATE_TERMINATED, "Canceled", 487);
                        call_sip_finished(c);
                }
        } else if (g_strcmp0(method, "INFO") == 0)
                call_handle_info(c, m);
        else if (g_strcmp0(method, "NOTIFY") == 0)
                call_handle_notify(c, m);
        else if (g_strcmp0(method, "REFER") == 0 && call_is_confirmed(c))
                call_handle_incoming_refer(c, m);
        else if (g_strcmp0(method, "INVITE") == 0 || g_strcmp0(method, "UPDATE") == 0)
                call_handle_remote_offer(c, m);
        else
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
                return;
        }
        /* A renewal in flight or gathering: its answer is lost; it goes again over the next socket. */
        if (c->reinvite_renew || c->pending_media) {
                call_renewal_abandon(c, "the connection to the gateway was lost");
                c->renew_wanted = true;
        }
        /* An ICE restart in flight: its answer is lost, so it goes again over the next socket. */
        if (c->reinvite_ice) {
                c->reinvite_ice = false;
                c->ice_restart_wanted = true;
        }
        /* A hold or transfer in flight: its answer is lost with the socket. The SDK ends the call
         * here; the media still works, so only the request fails and the call stays as it was. */
        if (c->reinvite_cseq || c->reinvite_retry) {
                c->reinvite_cseq = 0;
                g_clear_handle_id(&c->reinvite_retry, g_source_remove);
                if (c->media)
                        media_set_active(c->media, !c->local_hold);
                call_pending_finish(c, &c->hold_pending, -ENOTCONN,
                                    "the connection to the gateway was lost; try again");
        }
        c->options_cseq = 0;
        if (c->refer_cseq) {
                c->refer_cseq = 0;
                call_pending_finish(c, &c->transfer_pending, -ENOTCONN,
                                    "the connection to the gateway was lost before the transfer completed");
        }
}
