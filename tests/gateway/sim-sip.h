/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* bwgw-sim internals shared by sim-sip.c (sockets, requests from the client, the number plan),
 * sim-uac.c (requests the gateway sends: its own calls to the client, BYE, hold, DTMF, REFER,
 * NOTIFY, OPTIONS) and sim-control.c (the HTTP control endpoint). */

#include <stdbool.h>
#include <stdint.h>

#include "sim-media.h"
#include "sim-sipmsg.h"
#include "sim.h"

#define TAG_LEN 10
#define TONE_HZ 880.0
#define DTMF_DEFAULT_MS 250

struct Conn {
        Sim *sim;
        unsigned id;
        SoupWebsocketConnection *ws;
        GSocket *socket; /* the TCP socket under ws (and under TLS), for drop-socket; may be NULL */
        bool secure;     /* came in on the TLS port: our Via says WSS */
        guint local_port;
        char *peer;
        bool closed;  /* gone: libsoup reported the close, or we dropped it */
        bool closing; /* our close frame is out (drop-socket mode=close): nothing more is sent */
        bool dropped; /* drop-socket or outage ended it, in whichever mode */
        /* The Contact (else Via) host of the newest message from the client on this socket: its
         * "xxxx.invalid" host, the host part of gateway INVITEs to it. */
        char *client_host;
        /* Every Via/Contact host the client used on this socket (a set): in-dialog routing. */
        GHashTable *hosts;
};

/* How drop-socket and outage end a socket. */
typedef enum DropMode {
        DROP_FIN,   /* "drop": TCP FIN without a WebSocket close frame (the client sees 1006) */
        DROP_RESET, /* "reset": TCP RST */
        DROP_CLOSE, /* "close": a WebSocket close frame, code 1001 Going Away */
        _DROP_MAX,
} DropMode;

typedef enum CallState {
        CALL_PROCEEDING, /* INVITE received, 100 sent (or: our INVITE being prepared / sent) */
        CALL_EARLY,      /* 18x with To tag sent (or received) */
        CALL_CONFIRMED,  /* 200 sent (or received and ACKed) */
        CALL_ENDED,
} CallState;

typedef enum CallScript {
        SCRIPT_RING_ANSWER,   /* +15550001000: 180, 200 after ring_ms, 880 Hz */
        SCRIPT_ECHO,          /* +15550001001: 200 at once, echoes the caller */
        SCRIPT_RING_FOREVER,  /* +15550001002: 180, never answers */
        SCRIPT_EARLY_MEDIA,   /* +15550001003: 183 + SDP (880 Hz), 200 after answer_delay_ms */
        SCRIPT_ANSWER_HANGUP, /* +15550001004: 200 (880 Hz), gateway BYE after hangup_ms */
        SCRIPT_ANSWER_PCMU,   /* +15550001005: 200 choosing PCMU only (880 Hz) */
        SCRIPT_ANSWER_PCMA,   /* +15550001006: 200 choosing PCMA only (880 Hz) */
        SCRIPT_REINVITE_491,  /* +15550001007: 200 (880 Hz); 491 to the first re-INVITE */
        SCRIPT_REINVITE_488,  /* +15550001008: 200 (880 Hz); 488 to every re-INVITE */
        SCRIPT_SILENT,        /* +15550001009: 200, then no RTP at all */
        SCRIPT_REDIRECT,      /* +15550001010: 302 to +15550001000 */
        SCRIPT_NO_SDP,        /* +15550001011: 200 without SDP */
        SCRIPT_BAD_SDP,       /* +15550001012: 200 with an SDP that is not usable WebRTC */
        SCRIPT_REJECT,        /* +1555000XXXX, XXXX in 0400-0699, and everything unknown (404) */
        SCRIPT_OUTBOUND,      /* the gateway calls the client (POST /control/call) */
} CallScript;

/* /control/media-block: what lifts a call's block. */
typedef enum MediaBlock {
        MEDIA_BLOCK_OFF,
        MEDIA_BLOCK_UNTIL_ICE_RESTART, /* the next ICE-restart re-INVITE from the client, or off=1 */
        MEDIA_BLOCK_UNTIL_OFF,         /* off=1 only; a media renewal's new media is blocked too */
        MEDIA_BLOCK_UNTIL_RENEWAL,     /* the client's next media renewal (new DTLS session), or off=1 */
} MediaBlock;

/* A request the gateway sent in a call (a client transaction, reduced to what matching the
 * client's responses needs). */
typedef struct Txn {
        uint32_t cseq;
        char *method;
        char *branch;
        char *request_uri;
        const char *action;    /* static: "call", "hold", "resume", "bye", "hangup", "dtmf", ... */
        const char *direction; /* re-INVITE: the direction we offered */
        const char *prev_direction;
        int status;            /* last final status, 0 while none */
        bool acked;
        bool final_notify;     /* NOTIFY: the terminating one */
} Txn;

/* A REFER from the client being reported with NOTIFYs. */
typedef struct Transfer {
        uint32_t refer_cseq;
        int status;
        char *sipfrag; /* "SIP/2.0 200 OK" */
        bool final_sent;
        guint timer;
} Transfer;

struct Call {
        Sim *sim;
        char *call_id;
        char *number;  /* client's calls: the Request-URI user; gateway calls: the callee (to=) */
        bool outbound; /* the gateway called the client */
        bool no_ack;   /* gateway calls: never ACK the client's 200 (control call ack=0) */
        CallState state;
        CallScript script;
        /* The socket of the INVITE (NULL once it closed) and its id (kept). Only a fallback for
         * where requests go: see call_route(). */
        Conn *conn;
        unsigned origin_conn;
        SipMsg *invite; /* client's calls: its initial INVITE, for our responses */
        char *local_tag;
        char *local_id;  /* our identity (From of our requests) without tag */
        char *remote_id; /* theirs (To of our requests), with their tag once known */
        char *remote_target; /* the client's Contact URI: R-URI of our in-dialog requests */
        char *contact_host;
        uint32_t local_cseq;
        bool final_sent; /* client's calls: the INVITE has its final response */
        int final_status; /* ... and which (0 while none) */

        bool may_answer; /* the script's wait before 200 is over */
        bool early_sent;
        MediaMode mode;
        MediaCodec codec;
        char *local_sdp;              /* the SDP we last sent */
        const char *direction;        /* its media direction */
        const char *remote_direction; /* of the client's last SDP (NULL: none yet) */
        unsigned n_reinvites;         /* re-INVITEs from the client */
        Media *media;
        MediaBlock media_block;       /* RTP/RTCP dropped both ways (media_set_blocked) */
        /* A media renewal from the client: the new answerer until its answer is ready, and the
         * re-INVITE it answers (owned) with the id of its socket. */
        Media *pending_media;
        SipMsg *renewal_reinvite;
        unsigned renewal_conn;
        unsigned n_renewals;
        unsigned n_ice_restarts;      /* ICE restarts the client's re-INVITEs made */
        guint timer;
        guint reap_timer;

        /* Requests the gateway sent. */
        GPtrArray *txns;   /* Txn, owned */
        Txn *invite_txn;   /* gateway calls: the initial INVITE (NULL until the offer is ready) */
        Txn *reinvite_txn; /* our re-INVITE without final response */
        bool cancelled;    /* gateway calls: CANCEL requested */
        bool answered;
        bool answered_sdp; /* gateway calls: the client's SDP answer went to webrtcbin */
        GString *info_digits; /* DTMF by INFO still to send */
        guint info_timer;
        unsigned info_duration_ms;
        Transfer *transfer;
};

/* sim-ws.c: the sockets. */
void ws_setup(Sim *s);
void ws_shutdown(Sim *s);
/* Open, not closing, not dropped: something may be sent on it. */
bool conn_usable(const Conn *conn);
/* Sends one text frame; a socket that is not usable drops it (with a warning). */
void conn_send(Conn *conn, const char *text);
void conn_note_host(Conn *conn, const char *host);
/* The newest usable socket, any socket by id (usable), the newest usable one whose client used
 * this Via/Contact host. NULL when there is none. */
Conn *sim_newest_conn(Sim *s);
Conn *sim_find_conn(Sim *s, unsigned id);
Conn *sim_conn_for_host(Sim *s, const char *host);
const char *drop_mode_to_string(DropMode m);
int drop_mode_from_string(const char *s, DropMode *ret);
/* Ends one socket (conn_id > 0: -ENOENT when it is not open) or every client socket; the ids go
 * into the JSON array dropped. cause is "control" or "outage" (for the events). */
int sim_drop_sockets(Sim *s, unsigned conn_id, DropMode mode, const char *cause, json_object *dropped);
/* Drops every socket and refuses WebSocket upgrades with 503 for ms (0: end an outage now). */
void sim_outage(Sim *s, unsigned ms, DropMode mode, json_object *dropped);
/* Milliseconds the current outage still lasts; 0 when there is none. */
unsigned sim_outage_remaining_ms(Sim *s);

/* sim-sip.c */
/* A text/binary frame that is not a keep-alive: one SIP message. */
void sip_handle_frame(Conn *conn, const char *data, size_t len);
/* conn went away: calls still in their INVITE transaction on it end (cause socket-closed). */
void sip_conn_closed(Conn *conn);
Call *sim_find_call(Sim *s, const char *call_id);
/* Where the call's requests and late responses go now: the newest usable socket whose client
 * used the call's Contact host; else its own socket while usable (a gateway call before the
 * client's 2xx named its Contact); else NULL (nothing can reach the client). */
Conn *call_route(Call *c);
/* Reports that something for c could not be sent ("no-route" event); status 0 for requests,
 * cseq 0 when nothing was numbered yet (a control action refused beforehand). */
void call_emit_no_route(Call *c, const char *method, uint32_t cseq, int status, const char *action);
/* For control actions: 0 when call_route(c) finds a socket; else -ENOTCONN with *ret_error, and
 * a "no-route" event for the method/action that could not go out. */
int call_check_route(Call *c, const char *method, const char *action, const char **ret_error);
Call *call_new(Sim *s, const char *call_id, const char *number, Conn *conn);
void call_end(Call *c, const char *cause);
void call_update_sending(Call *c);
/* "ice-restart", "none" (until off=1) or NULL (not blocked). */
const char *media_block_to_string(MediaBlock b);
/* Starts (or changes what lifts) the call's media block: media-blocked event. -EBUSY without
 * media, -ENOTCONN before webrtcbin has its ICE transport; *ret_error says which. */
int call_media_block(Call *c, MediaBlock until, const char **ret_error);
/* Lifts it, if any (media-unblocked event with reason, "control" or "ice-restart"); returns
 * whether there was one. The dropped packet counts go to the ret_ pointers (either may be NULL). */
bool call_media_unblock(Call *c, const char *reason, unsigned *ret_sent, unsigned *ret_received);
int call_start_media(Call *c, bool offer);
char *call_contact_header(const Call *c, const Conn *conn);
/* The number plan: what a transfer to this user would end with ("200 OK" for numbers that
 * answer), as a status code. */
int sim_number_outcome(const char *user);

/* sim-uac.c */
Txn *txn_free(Txn *t);
/* Sends a request in c's dialog (or the dialog being set up). to = the To value (NULL: the
 * dialog's remote identity); branch NULL = a new one; extra_headers complete lines. Returns the
 * transaction (owned by c; NULL for ACK). */
Txn *call_send_request(Call *c, const char *method, const char *request_uri, uint32_t cseq, const char *to,
                       const char *branch, const char *extra_headers, const char *content_type,
                       const char *body, const char *action);
void uac_handle_response(Conn *conn, SipMsg *m);
void uac_send_invite(Call *c); /* gateway calls: once the offer is ready */
void uac_send_bye(Call *c, const char *action);
void uac_start_transfer_notify(Call *c, uint32_t refer_cseq, int status);
void uac_call_cleanup(Call *c);

/* Control actions (sim-control.c maps them to HTTP). Return 0, or a negative errno with
 * *ret_error: -EINVAL bad parameter (400), -ENOENT unknown call (404), anything else a state
 * conflict (409). */
typedef struct UacCallParams {
        const char *to, *from, *host;
        unsigned conn_id; /* 0: newest */
        MediaCodec codec;
        MediaMode mode;
        bool no_ack;
} UacCallParams;
int uac_call(Sim *s, const UacCallParams *p, Call **ret, const char **ret_error);
int uac_cancel(Call *c, const char **ret_error);
int uac_bye(Call *c, const char **ret_error);
int uac_hold(Call *c, bool hold, const char **ret_error);
int uac_dtmf(Call *c, const char *digits, bool info, unsigned duration_ms, const char **ret_error);
int uac_refer(Call *c, const char *target, const char **ret_error);
/* In the call's dialog, or (c NULL) out of dialog to user "to" on a socket (0: newest). */
int uac_options(Sim *s, Call *c, const char *to, unsigned conn_id, char **ret_call_id,
                const char **ret_error);
