/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "config.h"
#include "macro.h"
#include "media.h"
#include "sip-message.h"
#include "tones.h"

/* The Call (the SDK's Session): one INVITE dialog and its media. Knows nothing of D-Bus; all
 * changes are reported to the Phone, whose observer (bus-call.c) turns them into signals.
 * call_set_state() is the only place that changes State. */

typedef struct Phone Phone;
typedef struct Call Call;

typedef enum CallState {
        CALL_STATE_DIALING,
        CALL_STATE_RINGING,
        CALL_STATE_EARLY_MEDIA,
        CALL_STATE_ACTIVE,
        CALL_STATE_HELD,
        CALL_STATE_TERMINATED,
        CALL_STATE_INCOMING,
        _CALL_STATE_MAX,
} CallState;

typedef enum CallDirection {
        CALL_DIRECTION_OUTGOING,
        CALL_DIRECTION_INCOMING,
} CallDirection;

/* Per-call choices (Dial options). Strings are borrowed; the call copies them. */
typedef struct CallOptions {
        DtmfMethod dtmf_method;
        const char *input;  /* microphone node.name; NULL = the phone's Input */
        const char *output; /* speaker node.name; NULL = the phone's Output */
} CallOptions;

typedef enum CallDevice {
        CALL_DEVICE_INPUT,
        CALL_DEVICE_OUTPUT,
        _CALL_DEVICE_MAX,
} CallDevice;

/* Outcome of an operation that needs the far end (Hold, Transfer, Answer): error 0 or negative
 * errno with a readable message. */
typedef void (*CallDoneFunc)(Call *c, int error, const char *message, void *userdata);

typedef struct CallPending {
        CallDoneFunc done;
        void *userdata;
} CallPending;

typedef struct Call {
        unsigned n_ref;
        Phone *phone; /* weak; NULL once the phone let go of the call */
        unsigned id;  /* /org/bwcall/Phone1/Call/<id>, never reused */

        CallState state;
        CallDirection direction;
        char *number;
        bool muted;
        bool local_hold;
        bool remote_hold;
        char *cause;       /* SDK cause string once terminated */
        unsigned sip_code; /* final status that ended it, 0 if none */
        uint64_t created_usec;  /* CLOCK_REALTIME µs */
        uint64_t invite_sent_usec;
        uint64_t start_usec;    /* answer time, 0 before */
        uint64_t end_usec;

        SipDialog *dialog;
        Media *media;

        bool invite_sent;     /* the INVITE is on the wire */
        bool offer_retried;   /* the media offer failed once and was rebuilt */
        bool auth_retried;    /* the gateway refused our token once; the INVITE went again */
        unsigned auth_retry_status; /* that 401/403 */
        bool got_provisional; /* any 1xx arrived: a CANCEL may be sent (JsSIP rule) */
        bool cancel_pending;  /* hung up before any 1xx: CANCEL once one arrives */
        bool answer_applied;  /* an SDP answer (183 or 200) went into the media */
        bool sip_done;        /* no further SIP expected for this dialog */
        bool on_bus;          /* published; cleared when the object is removed */

        CallOptions options; /* input/output are not kept here: see device[] */
        char *remote_display;

        /* The call's microphone and speaker: the chosen node (NULL = system default), and
         * whether it is unplugged so the call is on the system default until it is back. */
        struct {
                char *chosen;
                bool unplugged;
        } device[_CALL_DEVICE_MAX];  /* incoming: From display name/URI as received */

        /* re-INVITE (hold/resume) in flight */
        uint32_t reinvite_cseq;     /* 0 = none */
        bool reinvite_hold;         /* what the re-INVITE asks for */
        unsigned reinvite_attempts;
        guint reinvite_retry;
        CallPending hold_pending;

        /* DTMF over SIP INFO */
        GString *info_digits;       /* still to send */
        guint info_timer;

        /* incoming */
        SipMessage *invite;         /* the gateway's INVITE, kept to answer it */
        char *answer_sdp;           /* our SDP answer once gathered */
        bool answer_requested;      /* Answer() called, waiting for the SDP */
        bool answered_waiting_ack;
        CallPending answer_pending;
        guint no_answer_timer;
        guint no_ack_timer;

        /* blind transfer */
        uint32_t refer_cseq;
        uint32_t options_cseq;      /* in-dialog OPTIONS after a reconnect; 0 = none */

        /* media recovery */
        bool reinvite_ice;          /* the re-INVITE in flight is an ICE restart */
        bool reinvite_renew;        /* the re-INVITE in flight offers pending_media */
        Media *pending_media;       /* a media renewal: new webrtcbin, until its answer is in */
        bool renew_wanted;          /* renew once the gateway connection is back */
        unsigned failed_ice_restarts; /* in a row without RTP coming back */
        bool ice_restart_wanted;    /* restart once the gateway connection is back */
        bool reconnecting;          /* no RTP: restarting ICE (the Reconnecting property) */
        uint64_t last_ice_restart;  /* CLOCK_MONOTONIC µs */
        CallPending transfer_pending;

        guint rtp_watchdog;         /* checks that RTP keeps arriving */
        guint mic_check;            /* speaking while muted, a silent microphone */
        Tone *tone;                 /* the local tone playing for this call, if any */
        Tone *dtmf_feedback;        /* the digit we send, heard locally */
        guint dtmf_feedback_timer;  /* frees it */
        char *tone_target;          /* and the node it plays on (NULL = default) */
        uint64_t mic_check_start;   /* CLOCK_MONOTONIC µs */
        unsigned mic_loud_checks, mic_quiet_checks;
        bool speaking_while_muted;  /* SpeakingWhileMuted */
        bool microphone_silent;     /* MicrophoneSilent */
        uint64_t rtp_packets;       /* packets-received at the last check */
        uint64_t rtp_last_change;   /* CLOCK_MONOTONIC µs when it last grew */

        guint timer_b;        /* no response at all to the INVITE (32 s) */
        guint linger_source;  /* remove the terminated object from the bus */
        guint sip_cleanup_source; /* stop waiting for stray responses */
} Call;

const char *call_state_to_string(CallState s);
const char *call_direction_to_string(CallDirection d);

/* Creates an outgoing call to number (normalised E.164) and starts building the offer; the
 * INVITE leaves as soon as ICE gathering is complete. Returns 0 or negative errno. */
int call_new_outgoing(Phone *phone, const char *number, const CallOptions *options, Call **ret);

/* A gateway INVITE toward us (no To tag): sends 100 and 180, builds the media answer, and
 * starts the no-answer timer. The caller checked the Request-URI user. Takes ownership of
 * invite, also on failure (then the right error response has been sent when possible). */
int call_new_incoming(Phone *phone, SipMessage *invite, Call **ret); /* takes the INVITE */

const char *call_device_to_string(CallDevice d); /* "input", "output" */
/* The node the call's microphone/speaker uses now; NULL = the system default. */
const char *call_device_in_use(const Call *c, CallDevice d);
/* SetInput()/SetOutput() on the call (node checked by the caller; NULL/"" = system default):
 * moves the live media, no SIP. */
int call_set_device(Call *c, CallDevice d, const char *node);
/* The devices PipeWire has changed: an unplugged chosen device → the system default at once;
 * a chosen device that is back → used again. `present(node)` says whether a node is there. */
void call_devices_changed(Call *c, bool (*present)(CallDevice d, const char *node, void *userdata),
                          void *userdata);

/* Media renewal: a new webrtcbin (new local candidates, new DTLS session) offered in a
 * re-INVITE, for when the addresses the call's media used went away: an ICE restart only
 * re-checks the old candidates (libnice 0.1.21 does not gather again). The old media plays
 * until the answer is applied. -EBUSY while another re-INVITE is in flight. */
int call_renew_media(Call *c, const char *why);
/* Whether none of the addresses the call's media gathered on is among local_addresses (the
 * phone's "iface/address ..." list) any more: an ICE restart cannot help then. */
bool call_media_addresses_gone(const Call *c, const char *local_addresses);

/* Plays kind (or nothing: _TONE_MAX) for this call on target; the phone decides which. */
void call_set_tone(Call *c, ToneKind kind, const char *target);

Call *call_ref(Call *c);
Call *call_unref(Call *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Call *, call_unref);

/* The single place that changes a call's state; emits StateChanged and the property changes.
 * Moving to TERMINATED records cause/sip_code, stops media and schedules the bus removal. */
void call_set_state(Call *c, CallState state, const char *cause, unsigned sip_code);

/* Hangup(): CANCEL before the answer, BYE after. -ESTALE when already terminated. */
int call_hangup(Call *c);
/* Ends the call because something local failed: BYE with a Reason header when confirmed,
 * CANCEL before that. */
void call_abort(Call *c, const char *cause, unsigned reason_code, const char *reason_text);

int call_set_muted(Call *c, bool muted);

/* Hold(): re-INVITE with a=sendonly / a=sendrecv. -ESTALE (InvalidState) unless active/held,
 * -EBUSY while another re-INVITE is pending; done reports the far end's verdict. A 491 is
 * retried once after 1 s; any other failure leaves the call up as it was. */
int call_hold(Call *c, bool hold, CallDoneFunc done, void *userdata);

/* SendDtmf(): validates "0-9 A-D * # ," (-EINVAL), needs an answered call (-ESTALE). */
int call_send_dtmf(Call *c, const char *digits);

/* Incoming calls: Answer() (-ESTALE unless incoming), Reject(code 300–699, 0 = 486),
 * Redirect(E.164 target) with 302. */
int call_answer(Call *c, CallDoneFunc done, void *userdata);
int call_reject(Call *c, unsigned code);
int call_redirect(Call *c, const char *target);

/* Blind transfer: REFER; done when the NOTIFY sipfrag says how it went. On success the call
 * ends with cause "Transferred". */
int call_transfer(Call *c, const char *target, CallDoneFunc done, void *userdata);
uint32_t call_get_duration(const Call *c);

/* SIP routed to this call by the phone (matching Call-ID). */
void call_handle_response(Call *c, const SipMessage *m);
void call_handle_request(Call *c, const SipMessage *m);
/* The socket died: transactions in flight fail with "Connection Error". */
void call_transport_lost(Call *c);
/* The phone reconnected: tell the gateway where this call lives now. */
void call_transport_restored(Call *c);
/* Re-checks the media path with an ICE restart re-INVITE (network change, no RTP); without a
 * gateway connection, once it is back. -ESTALE if the call is not up, -EBUSY while another
 * re-INVITE is in flight. */
int call_ice_restart(Call *c, const char *why);
