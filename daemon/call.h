/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "macro.h"
#include "media.h"
#include "sip-message.h"

/* The Call (the SDK's Session): one INVITE dialog and its media. Knows nothing of D-Bus; all
 * changes are reported to the Phone, whose observer (bus-call.c) turns them into signals.
 * call_set_state() is the only place that changes State. */

typedef struct Phone Phone;

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
        bool got_provisional; /* any 1xx arrived: a CANCEL may be sent (JsSIP rule) */
        bool cancel_pending;  /* hung up before any 1xx: CANCEL once one arrives */
        bool answer_applied;  /* an SDP answer (183 or 200) went into the media */
        bool sip_done;        /* no further SIP expected for this dialog */
        bool on_bus;          /* published; cleared when the object is removed */

        guint timer_b;        /* no response at all to the INVITE (32 s) */
        guint linger_source;  /* remove the terminated object from the bus */
        guint sip_cleanup_source; /* stop waiting for stray responses */
} Call;

const char *call_state_to_string(CallState s);
const char *call_direction_to_string(CallDirection d);

/* Creates an outgoing call to number (normalised E.164) and starts building the offer; the
 * INVITE leaves as soon as ICE gathering is complete. Returns 0 or negative errno. */
int call_new_outgoing(Phone *phone, const char *number, Call **ret);

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
uint32_t call_get_duration(const Call *c);

/* SIP routed to this call by the phone (matching Call-ID). */
void call_handle_response(Call *c, const SipMessage *m);
void call_handle_request(Call *c, const SipMessage *m);
/* The socket died: transactions in flight fail with "Connection Error". */
void call_transport_lost(Call *c);
