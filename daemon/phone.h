/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <gio/gio.h>
#include <glib.h>

#include "audio-devices.h"
#include "call.h"
#include "config.h"
#include "macro.h"
#include "sip-message.h"
#include "token.h"
#include "transport.h"

/* The Phone (the SDK's UA): owns the configuration, the token, the gateway transport and the
 * calls, and routes SIP between them. Knows nothing of D-Bus: bus-phone.c/bus-call.c install
 * a PhoneObserver and translate its callbacks into signals and PropertiesChanged. */

typedef enum PhoneState {
        PHONE_STATE_IDLE,
        PHONE_STATE_CONNECTING,
        PHONE_STATE_CONNECTED,
        PHONE_STATE_RECONNECTING,
        PHONE_STATE_DISCONNECTED,
        _PHONE_STATE_MAX,
} PhoneState;

typedef struct PhoneObserver {
        /* A Phone property changed; name as in the D-Bus contract ("State", "TokenState", ...). */
        void (*phone_changed)(Phone *p, const char *const *properties, void *userdata);
        void (*login_state_changed)(Phone *p, bool is_login, const char *cause, void *userdata);
        void (*call_added)(Phone *p, Call *c, void *userdata);
        void (*call_removed)(Phone *p, Call *c, void *userdata);
        void (*call_state_changed)(Phone *p, Call *c, CallState old, CallState new, void *userdata);
        void (*call_changed)(Phone *p, Call *c, const char *const *properties, void *userdata);
        void (*hold_state_changed)(Phone *p, Call *c, bool is_hold, bool is_remote, void *userdata);
        void (*dtmf_received)(Phone *p, Call *c, char digit, void *userdata);
        void (*incoming_call)(Phone *p, Call *c, const char *from, void *userdata);
        /* The far end asked us to transfer the call (incoming REFER). */
        void (*transfer_requested)(Phone *p, Call *c, const char *target, void *userdata);
        /* A new token was installed (fetched, refreshed or set); expires_at in µs, 0 if unknown. */
        void (*token_refreshed)(Phone *p, uint64_t expires_at, void *userdata);
        /* PipeWire's devices changed (Inputs/Outputs). */
        void (*devices_changed)(Phone *p, void *userdata);
        /* A call's microphone/speaker moved: kind "input"/"output", node "" = system default,
         * reason "requested" | "unplugged" | "returned". */
        void (*audio_device_changed)(Phone *p, Call *c, const char *kind, const char *node, const char *reason,
                                     void *userdata);
} PhoneObserver;

struct Phone {
        Config *config;
        Token *token;
        AudioDevices *devices;
        Transport *transport;

        PhoneState state;
        bool initialized;   /* between Connect() and Disconnect() */
        char *contact_host; /* new for every Connect(), like the SDK's init() */
        SipUa ua;

        GList *calls;       /* Call*, oldest first; includes terminated calls still lingering */
        unsigned next_call_id;

        GArray *connect_waiters;
        guint connect_timeout;
        guint reconnect_source;
        GNetworkMonitor *network_monitor;
        gulong network_changed_handler;
        guint network_settle;   /* coalesces bursts of network-changed */
        char *local_addresses;  /* as last seen: a change of these is what counts */
        bool reconnect_now;     /* a network change is being checked: no back-off if it broke us */
        unsigned reconnect_attempt; /* k in the SDK's floor(random·2^k)+1 back-off */
        GList *dial_requests;       /* DialRequest*, waiting for a token or a connection */

        const PhoneObserver *observer;
        void *observer_data;
};

typedef void (*PhoneDoneFunc)(Phone *p, int error, const char *message, void *userdata);
typedef void (*PhoneDialFunc)(Phone *p, Call *c, int error, const char *message, void *userdata);

Phone *phone_new(Config *config); /* takes ownership of config */
Phone *phone_free(Phone *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Phone *, phone_free);

void phone_set_observer(Phone *p, const PhoneObserver *observer, void *userdata);

const char *phone_state_to_string(PhoneState s);

/* Connect(): opens the socket (SDK init()). done is called from the main loop once connected
 * (error 0) or when it failed or timed out (-ENOTCONN + message). */
void phone_connect(Phone *p, PhoneDoneFunc done, void *userdata);
/* Disconnect(): ends every call and closes the socket. */
void phone_disconnect(Phone *p);

/* Dial(): validates the number synchronously (returns -EINVAL with *ret_message), then gets a
 * token and a connection and creates the call; done reports the call or -ENOKEY/-ENOTCONN/
 * -ENODEV with a message. */
int phone_dial(Phone *p, const char *number, const CallOptions *options, PhoneDialFunc done, void *userdata,
               char **ret_message);

/* E.164 normalisation as the SDK's makeCall: strips whitespace and - . ( ), adds a leading
 * '+', requires 2–15 digits. -EINVAL with a readable *ret_message otherwise. */
int phone_normalize_number(const char *number, char **ret, char **ret_message);

void phone_hangup_all(Phone *p);

Call *phone_find_call(Phone *p, unsigned id);
/* Calls that are published (on the bus), oldest first. */
GPtrArray *phone_get_published_calls(Phone *p);

/* Used by call.c. */
int phone_send_sip(Phone *p, const char *text);
void phone_notify_call_state(Phone *p, Call *c, CallState old, CallState new);
void phone_notify_call_changed(Phone *p, Call *c, const char *const *properties);
void phone_release_call(Phone *p, Call *c);
void phone_notify_hold(Phone *p, Call *c, bool is_hold, bool is_remote);
/* The network changed or the machine resumed: reconnect now if waiting to, else check that the
 * gateway connection survived. */
void phone_network_changed(Phone *p, const char *why);
/* SetInput()/SetOutput(): the microphone/speaker (PipeWire node name) for calls from now on;
 * NULL or "" follows the system default. -ENODEV if no such device is there. */
int phone_set_input(Phone *p, const char *node);
int phone_set_output(Phone *p, const char *node);
/* SetRinger(): the speaker incoming calls ring on; NULL or "" = the system default. */
int phone_set_ringer(Phone *p, const char *node);
void phone_update_tones(Phone *p);
/* Whether a node of the device kind is there now ("" and NULL, the system default, always are). */
bool phone_has_device(Phone *p, CallDevice d, const char *node);
/* The one message for a device name that is not there: "No microphone named 'x' (see the
 * Inputs property)." */
char *phone_device_missing_message(CallDevice d, const char *node);
void phone_notify_audio_device(Phone *p, Call *c, const char *kind, const char *node, const char *reason);
void phone_notify_dtmf(Phone *p, Call *c, char digit);
void phone_notify_transfer_requested(Phone *p, Call *c, const char *target);
