/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define BWCALL_SERVICE "org.bwcall.Phone1"
#define BWCALL_PHONE_PATH "/org/bwcall/Phone1"
#define BWCALL_PHONE_IFACE "org.bwcall.Phone1"
#define BWCALL_CALL_IFACE "org.bwcall.Phone1.Call"
#define BWCALL_AUDIO_IFACE "org.bwcall.Phone1.Audio"
#define BWCALL_CALL_PATH_PREFIX "/org/bwcall/Phone1/Call/"

/* Errors that do not come from the daemon get names in the client's own namespace, so that
 * {"error": ...} always carries a name. */
#define BWCALL_CLIENT_ERROR(name) "bwcall.Error." name

/* Exit statuses. Verbs and the reporting helpers below return one of these (0 or positive);
 * lower layers (output.c) return negative errno and log nothing. */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,      /* the operation or the call failed */
        EXIT_USAGE = 2,       /* wrong command line */
        EXIT_UNREACHABLE = 3, /* no user bus, or bwcalld not on it */
};

/* Command line state shared by the verbs (systemd's arg_* convention). */
extern bool arg_json;
extern uint64_t arg_timeout_usec; /* 0: sd-bus default for replies, no limit for waits */
extern const char *arg_wait_state; /* dial: NULL = "active" */
extern bool arg_no_wait;
extern bool arg_follow;
extern bool arg_stats;
extern const char *arg_dtmf_method; /* dial: NULL = the daemon's default */
extern const char *arg_input;        /* dial: microphone node; NULL = the daemon's choice */
extern const char *arg_output;       /* dial: speaker node; NULL = the daemon's choice */
extern uint32_t arg_reject_code;    /* reject: 0 = the daemon's default (486) */

/* stderr "bwcall: <message>" and, with --json, {"error":name,"message":...} on stdout.
 * Returns status. */
int report_error(int status, const char *error_name, const char *format, ...) _printf_(3, 4);

/* Same for a failed bus operation: maps "not on the bus" and lost connections to
 * EXIT_UNREACHABLE with a fixed message, everything else to "<verb>: <message>" and
 * EXIT_FAILED. */
int report_bus_error(const char *verb, const sd_bus_error *error, int r);

/* A usage error: the message, then the short usage on stderr. Returns EXIT_USAGE. */
int report_usage(const char *format, ...) _printf_(1, 2);

/* Connects to the user bus; reports and returns EXIT_UNREACHABLE when there is none. */
int client_open_bus(sd_bus **ret);

/* Ends the event loop with EXIT_UNREACHABLE (after saying so) when the bus connection drops. */
int client_watch_disconnect(sd_bus *bus, sd_event *event);

/* sd_bus_call() with --timeout applied. */
int client_call(sd_bus *bus, sd_bus_message *m, sd_bus_error *error, sd_bus_message **ret_reply);

/* Builds and sends a method call with client_call(). */
int client_call_method(sd_bus *bus, const char *path, const char *interface, const char *member,
                       sd_bus_error *error, sd_bus_message **ret_reply, const char *types, ...);
int client_call_methodv(sd_bus *bus, const char *path, const char *interface, const char *member,
                        sd_bus_error *error, sd_bus_message **ret_reply, const char *types, va_list ap);

/* The call objects (GetManagedObjects) as [{"path":..., <Call properties>...}, ...], oldest first.
 * Reports failures and returns an exit status. */
int client_get_calls(sd_bus *bus, const char *verb, json_object **ret);

int verb_dial(int argc, char **argv);
int verb_monitor(int argc, char **argv);
int verb_wait_incoming(int argc, char **argv);
