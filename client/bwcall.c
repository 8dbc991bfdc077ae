/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwcall: the command line client of bwcalld. Every verb maps onto one method or property of
 * org.bwcall.Phone1 (dbus/org.bwcall.Phone1.xml); dial, monitor and wait-incoming, which follow
 * signals, live in their own files. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bwcall.h"
#include "log.h"
#include "output.h"

#define FIELD_WIDTH 14
#define TOKEN_MAX 16384

bool arg_json = false;
uint64_t arg_timeout_usec = 0;
const char *arg_wait_state = NULL;
bool arg_no_wait = false;
bool arg_follow = false;
bool arg_stats = false;
const char *arg_dtmf_method = NULL;
const char *arg_input = NULL;
const char *arg_output = NULL;
uint32_t arg_reject_code = 0;
static bool arg_reject_code_set = false;

static const char usage_text[] =
        "Usage: bwcall [OPTIONS...] VERB [ARGS...]\n"
        "Verbs: status | connect | disconnect | token [set TOKEN|- | refresh] | monitor |\n"
        "       wait-incoming |\n"
        "       dial NUMBER | answer [CALL] | reject [CALL] | redirect [CALL] TARGET |\n"
        "       hangup [CALL] | hangup-all | mute [CALL] | unmute [CALL] | hold [CALL] |\n"
        "       resume [CALL] | dtmf [CALL] DIGITS | transfer [CALL] TARGET | calls\n"
        "See 'bwcall --help'.\n";

static void help(void) {
        printf("bwcall [OPTIONS...] VERB [ARGS...]\n\n"
               "Control bwcalld, the Bandwidth In-App Calling daemon, over the user bus.\n\n"
               "Phone:\n"
               "  status                 Show the phone: state, gateway, caller ID, token state\n"
               "  connect                Open the connection to the gateway\n"
               "  disconnect             End every call and close the connection\n"
               "  token                  Show the token: mode, state, expiry, last error (never\n"
               "                         the token itself)\n"
               "  token set TOKEN|-      Hand the daemon an OAuth token ('-': read it from stdin,\n"
               "                         which keeps it out of ps)\n"
               "  token refresh          Fetch a new token now (client-credentials, token-url)\n"
               "  monitor                Print every signal of bwcalld as it happens\n"
               "  wait-incoming          Wait for an incoming call (or take one that is already\n"
               "                         ringing), print its object path and exit\n\n"
               "Calls (CALL: a call number N, its object path, or nothing for the only call up;\n"
               "for answer, reject and redirect: the only incoming call):\n"
               "  dial NUMBER            Call NUMBER and follow it until it is active\n"
               "  answer [CALL]          Answer an incoming call\n"
               "  reject [CALL]          Refuse an incoming call (SIP 486 Busy Here, or --code)\n"
               "  redirect [CALL] TARGET Send an incoming call on to TARGET (SIP 302)\n"
               "  hangup [CALL]          End a call\n"
               "  hangup-all             End every call\n"
               "  mute [CALL]            Stop sending microphone audio\n"
               "  unmute [CALL]          Resume sending microphone audio\n"
               "  hold [CALL]            Put a call on hold; returns when the far end accepted\n"
               "  resume [CALL]          Take a call off hold; returns when the far end accepted\n"
               "  dtmf [CALL] DIGITS     Send DTMF digits: 0-9 A-D * #, ',' pauses 2 s\n"
               "  transfer [CALL] TARGET Blind transfer to TARGET; returns when the far end\n"
               "                         reported the outcome\n"
               "  calls                  List the calls and their properties\n"
               "  input [CALL] NODE      Move a call's microphone to PipeWire node NODE\n"
               "                         ('default': the system default); no renegotiation\n"
               "  output [CALL] NODE     Move a call's speaker likewise\n\n"
               "Audio devices:\n"
               "  devices                List microphones and speakers (PipeWire nodes)\n"
               "  device input|output|ringer NODE\n"
               "                         The microphone/speaker for new calls, or the speaker\n"
               "                         incoming calls ring on ('default': the system default)\n\n"
               "Options:\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "     --json              Print JSON (one object per line); errors as\n"
               "                         {\"error\":NAME,\"message\":TEXT}\n"
               "     --timeout SEC       Give up on replies after SEC s (default 25; answer,\n"
               "                         hold, resume and transfer wait for the far end) and on\n"
               "                         dial waits; monitor: stop after SEC seconds;\n"
               "                         wait-incoming: fail after SEC s (default: no limit)\n"
               "     --wait STATE        dial: wait for ringing|early-media|active|terminated\n"
               "                         (default: active)\n"
               "     --no-wait           dial: print the call path and return\n"
               "     --follow            dial: print state changes until the call ends\n"
               "     --dtmf-method M     dial: send DTMF as rfc4733 (in the media) or info\n"
               "                         (SIP INFO) on this call\n"
               "     --input NODE        dial: the microphone for this call\n"
               "     --output NODE       dial: the speaker for this call\n"
               "     --code N            reject: the SIP status, 300-699 (default: 486)\n"
               "     --stats             calls: also show media statistics\n\n"
               "Exit status: 0 success, 1 operation or call failed (wait-incoming: timed out),\n"
               "2 usage error, 3 bwcalld or the user bus not reachable.\n");
}

int report_usage(const char *format, ...) {
        va_list ap;
        char buf[1024];

        va_start(ap, format);
        (void) vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        (void) report_error(EXIT_USAGE, BWCALL_CLIENT_ERROR("Usage"), "%s", buf);
        fputs(usage_text, stderr);
        return EXIT_USAGE;
}

static int parse_uint64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "3" or "/org/bwcall/Phone1/Call/3" → the object path. */
static int call_path_from_arg(const char *arg, char **ret) {
        uint64_t n;
        char *p;

        if (arg[0] == '/') {
                if (!sd_bus_object_path_is_valid(arg))
                        return -EINVAL;
                p = strdup(arg);
        } else {
                if (parse_uint64(arg, &n) < 0)
                        return -EINVAL;
                p = strprintf(BWCALL_CALL_PATH_PREFIX "%" PRIu64, n);
        }
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static uint64_t call_number(const char *path) {
        uint64_t n;

        if (strncmp(path, BWCALL_CALL_PATH_PREFIX, strlen(BWCALL_CALL_PATH_PREFIX)) != 0 ||
            parse_uint64(path + strlen(BWCALL_CALL_PATH_PREFIX), &n) < 0)
                return UINT64_MAX;
        return n;
}

static int compare_calls(const void *a, const void *b) {
        json_object *const *x = a, *const *y = b;
        const char *px = json_object_get_string(json_object_object_get(*x, "path"));
        const char *py = json_object_get_string(json_object_object_get(*y, "path"));
        uint64_t nx = call_number(px), ny = call_number(py);

        if (nx != ny)
                return nx < ny ? -1 : 1;
        return strcmp(px, py);
}

int client_get_calls(sd_bus *bus, const char *verb, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *objects = NULL, *calls = NULL;
        int r;

        r = client_call_method(bus, BWCALL_PHONE_PATH, "org.freedesktop.DBus.ObjectManager",
                               "GetManagedObjects", &error, &reply, NULL);
        if (r < 0)
                return report_bus_error(verb, &error, r);

        r = bus_message_read_json(reply, &objects);
        if (r < 0 || !json_object_is_type(objects, json_type_object))
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("BadReply"),
                                    "%s: Unexpected GetManagedObjects reply: %s", verb,
                                    strerror(r < 0 ? -r : EBADMSG));

        calls = json_object_new_array();
        if (!calls)
                return log_oom(), EXIT_FAILED;

        json_object_object_foreach(objects, path, interfaces) {
                _cleanup_(json_object_putp) json_object *call = NULL;
                json_object *props = json_object_object_get(interfaces, BWCALL_CALL_IFACE);

                if (!props || !json_object_is_type(props, json_type_object))
                        continue;

                call = json_object_new_object();
                if (!call || json_object_object_add(call, "path", json_object_new_string(path)) < 0)
                        return log_oom(), EXIT_FAILED;
                json_object_object_foreach(props, name, value)
                        if (json_object_object_add(call, name, json_object_get(value)) < 0)
                                return log_oom(), EXIT_FAILED;
                if (json_object_array_add(calls, call) < 0)
                        return log_oom(), EXIT_FAILED;
                TAKE_PTR(call);
        }

        json_object_array_sort(calls, compare_calls);
        *ret = TAKE_PTR(calls);
        return EXIT_OK;
}

/* Which calls a verb can act on when none is named. */
typedef enum CallFilter {
        CALL_UP,       /* not terminated */
        CALL_INCOMING, /* state "incoming": answer, reject, redirect */
} CallFilter;

static bool call_matches(json_object *call, CallFilter filter) {
        json_object *v = json_object_object_get(call, "State");
        const char *state = v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;

        if (filter == CALL_INCOMING)
                return state && strcmp(state, "incoming") == 0;
        return !state || strcmp(state, "terminated") != 0;
}

/* The call a verb acts on: the one named on the command line, or the only call that fits filter.
 * rest is what follows CALL on the command line ("TARGET"), for the hint when several fit. */
static int resolve_call(sd_bus *bus, const char *verb, const char *arg, CallFilter filter, const char *rest,
                        char **ret) {
        _cleanup_(json_object_putp) json_object *calls = NULL;
        const char *what = filter == CALL_INCOMING ? "incoming" : "up";
        json_object *found = NULL;
        size_t n = 0;
        char *p;
        int r;

        if (arg) {
                r = call_path_from_arg(arg, ret);
                if (r == -ENOMEM)
                        return log_oom(), EXIT_FAILED;
                assert(r >= 0); /* checked in check_call_arg() */
                return EXIT_OK;
        }

        r = client_get_calls(bus, verb, &calls);
        if (r != EXIT_OK)
                return r;

        for (size_t i = 0; i < json_object_array_length(calls); i++) {
                json_object *call = json_object_array_get_idx(calls, i);

                if (!call_matches(call, filter))
                        continue;
                if (!found)
                        found = call;
                n++;
        }

        if (n == 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("NoCall"), "%s: %s", verb,
                                    filter == CALL_INCOMING ? "No incoming call." : "No call is up.");
        if (n > 1) {
                const char *path = json_object_get_string(json_object_object_get(found, "path"));
                uint64_t number = call_number(path);

                if (number == UINT64_MAX)
                        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("AmbiguousCall"),
                                            "%zu calls are %s; say which: bwcall %s %s%s%s", n, what, verb, path,
                                            rest ? " " : "", rest ?: "");
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("AmbiguousCall"),
                                    "%zu calls are %s; say which: bwcall %s %" PRIu64 "%s%s", n, what, verb,
                                    number, rest ? " " : "", rest ?: "");
        }

        p = strdup(json_object_get_string(json_object_object_get(found, "path")));
        if (!p)
                return log_oom(), EXIT_FAILED;
        *ret = p;
        return EXIT_OK;
}

/* NameHasOwner: > 0 when bwcalld is on the bus, 0 when not, < 0 when we cannot tell. */
static int daemon_is_running(sd_bus *bus) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int has, r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &error, &reply, "s", BWCALL_SERVICE);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "b", &has);
        if (r < 0)
                return r;
        return has;
}

/* Maps "no such object" on a call path to a readable message. For methods whose reply waits for
 * the far end (waits_far_end), running out of time is the far end being slow, not bwcalld being
 * unreachable, as long as bwcalld is still there. */
static int report_call_error(sd_bus *bus, const char *verb, const char *path, bool waits_far_end,
                             const sd_bus_error *error, int r) {
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE))
                return report_error(EXIT_FAILED, error->name, "%s: No such call: %s", verb, path);

        if (waits_far_end && sd_bus_error_has_names(error, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT)) {
                uint64_t usec = arg_timeout_usec;
                int running = daemon_is_running(bus);

                if (running == 0)
                        return report_error(EXIT_UNREACHABLE, error->name, "%s: bwcalld went away before replying",
                                            verb);
                if (running < 0)
                        return report_bus_error(verb, error, r);

                if (usec == 0 && sd_bus_get_method_call_timeout(bus, &usec) < 0)
                        usec = 25 * USEC_PER_SEC;
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Timeout"),
                                    "%s: No outcome from the far end within %g s on %s; it may still complete "
                                    "(see 'bwcall monitor', or wait longer with --timeout)",
                                    verb, (double) usec / (double) USEC_PER_SEC, path);
        }

        return report_bus_error(verb, error, r);
}

/* --json: {"ok":true[,"call":PATH][,key:value]}; takes value. Nothing in the human form. */
static int print_ok(const char *call, const char *key, json_object *value) {
        _cleanup_(json_object_putp) json_object *j = NULL, *v = value;

        if (!arg_json)
                return EXIT_OK;

        j = json_object_new_object();
        if (!j || json_object_object_add(j, "ok", json_object_new_boolean(true)) < 0)
                return log_oom(), EXIT_FAILED;
        if (call && json_object_object_add(j, "call", json_object_new_string(call)) < 0)
                return log_oom(), EXIT_FAILED;
        if (key) {
                if (!v || json_object_object_add(j, key, v) < 0)
                        return log_oom(), EXIT_FAILED;
                TAKE_PTR(v);
        }
        print_json(j);
        return EXIT_OK;
}

static int phone_simple_method(const char *verb, const char *member) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = client_call_method(bus, BWCALL_PHONE_PATH, BWCALL_PHONE_IFACE, member, &error, NULL, NULL);
        if (r < 0)
                return report_bus_error(verb, &error, r);

        return print_ok(NULL, NULL, NULL);
}

static int verb_connect(int argc, char **argv) {
        return phone_simple_method(argv[0], "Connect");
}

static int verb_disconnect(int argc, char **argv) {
        return phone_simple_method(argv[0], "Disconnect");
}

static int verb_hangup_all(int argc, char **argv) {
        return phone_simple_method(argv[0], "HangupAll");
}

static void print_token_expiry(uint64_t usec) {
        _cleanup_free_ char *iso = NULL, *line = NULL;
        uint64_t now = now_realtime_usec();
        uint64_t min;

        if (usec == 0) {
                print_field(FIELD_WIDTH, "TokenExpiresAt", "n/a");
                return;
        }

        iso = format_timestamp_iso(usec);
        if (usec > now) {
                min = (usec - now) / (60 * USEC_PER_SEC);
                line = strprintf("%s (in %" PRIu64 " min)", iso ?: "?", min);
        } else {
                min = (now - usec) / (60 * USEC_PER_SEC);
                line = strprintf("%s (expired %" PRIu64 " min ago)", iso ?: "?", min);
        }
        print_field(FIELD_WIDTH, "TokenExpiresAt", line ?: iso ?: "?");
}

static void print_property(const char *name, json_object *value) {
        _cleanup_free_ char *text = property_to_text(name, value, 0);

        print_field(FIELD_WIDTH, name, text ?: "?");
}

/* All properties of the Phone as a JSON object; an exit status on failure. */
static int phone_get_properties(const char *verb, const char *interface, json_object **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *props = NULL;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = client_call_method(bus, BWCALL_PHONE_PATH, "org.freedesktop.DBus.Properties", "GetAll", &error,
                               &reply, "s", interface);
        if (r < 0)
                return report_bus_error(verb, &error, r);

        r = bus_message_read_json(reply, &props);
        if (r < 0 || !json_object_is_type(props, json_type_object))
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("BadReply"),
                                    "%s: Unexpected GetAll reply: %s", verb, strerror(r < 0 ? -r : EBADMSG));
        *ret = TAKE_PTR(props);
        return EXIT_OK;
}

static int verb_status(int argc, char **argv) {
        static const char *const order[] = { "State", "Initialized", "Server", "CallerId", "TokenMode",
                                             "TokenState", "TokenExpiresAt", "TokenError", "Version", "Calls",
                                             NULL };
        _cleanup_(json_object_putp) json_object *props = NULL;
        json_object *v;
        int r;

        r = phone_get_properties(argv[0], BWCALL_PHONE_IFACE, &props);
        if (r != EXIT_OK)
                return r;

        if (arg_json) {
                print_json(props);
                return EXIT_OK;
        }

        for (size_t i = 0; order[i]; i++) {
                v = json_object_object_get(props, order[i]);
                if (!v)
                        continue;
                if (strcmp(order[i], "TokenExpiresAt") == 0)
                        print_token_expiry(json_object_get_uint64(v));
                else if (strcmp(order[i], "Calls") == 0) {
                        char n[32];

                        snprintf(n, sizeof n, "%zu", json_object_array_length(v));
                        print_field(FIELD_WIDTH, "Calls", n);
                } else
                        print_property(order[i], v);
        }

        /* Properties added to the API later still show up. */
        json_object_object_foreach(props, name, value) {
                bool known = false;

                for (size_t i = 0; order[i]; i++)
                        known = known || strcmp(order[i], name) == 0;
                if (!known)
                        print_property(name, value);
        }

        return EXIT_OK;
}

static void print_stats(json_object *stats) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&line, &size);
        if (!f)
                return;
        json_object_object_foreach(stats, key, value) {
                _cleanup_free_ char *text = property_to_text(key, value, TEXT_QUOTE);

                fprintf(f, "%s%s=%s", ftell(f) > 0 ? ", " : "", key, text ?: "?");
        }
        if (fclose(f) != 0)
                return;
        print_field(FIELD_WIDTH, "Stats", size > 0 ? line : "n/a");
}

static int verb_calls(int argc, char **argv) {
        static const char *const order[] = { "State",   "Direction", "Number",    "Muted",
                                             "LocalHold", "RemoteHold", "Cause",   "SipCode",
                                             "StartTime", "Duration",  NULL };
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(json_object_putp) json_object *calls = NULL;
        size_t n;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = client_get_calls(bus, argv[0], &calls);
        if (r != EXIT_OK)
                return r;

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j || json_object_object_add(j, "calls", json_object_get(calls)) < 0)
                        return log_oom(), EXIT_FAILED;
                print_json(j);
                return EXIT_OK;
        }

        n = json_object_array_length(calls);
        if (n == 0) {
                puts("No calls.");
                return EXIT_OK;
        }

        for (size_t i = 0; i < n; i++) {
                json_object *call = json_object_array_get_idx(calls, i), *v;

                if (i > 0)
                        putchar('\n');
                printf("%s\n", json_object_get_string(json_object_object_get(call, "path")));

                for (size_t k = 0; order[k]; k++) {
                        v = json_object_object_get(call, order[k]);
                        if (v)
                                print_property(order[k], v);
                }
                json_object_object_foreach(call, name, value) {
                        bool known = strcmp(name, "path") == 0 || strcmp(name, "Stats") == 0;

                        for (size_t k = 0; order[k]; k++)
                                known = known || strcmp(order[k], name) == 0;
                        if (!known)
                                print_property(name, value);
                }
                if (arg_stats) {
                        v = json_object_object_get(call, "Stats");
                        if (v && json_object_is_type(v, json_type_object))
                                print_stats(v);
                }
        }

        return EXIT_OK;
}

static int check_call_arg(const char *verb, const char *arg) {
        _cleanup_free_ char *p = NULL;

        if (!arg)
                return EXIT_OK;
        if (call_path_from_arg(arg, &p) == -EINVAL)
                return report_usage("%s: Invalid call \"%s\": expected a call number or an object path "
                                    "such as " BWCALL_CALL_PATH_PREFIX "1",
                                    verb, arg);
        return EXIT_OK;
}

/* Opens the bus, picks the call (call_arg, or the only one that fits filter) and calls member on
 * it with the arguments in types/.... On success, --json prints {"ok":true,"call":PATH} plus
 * key:value (taken, also on failure) when key is set. */
static int call_method(const char *verb, const char *call_arg, CallFilter filter, const char *rest,
                       bool waits_far_end, const char *key, json_object *value, const char *member,
                       const char *types, ...) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *v = value;
        _cleanup_free_ char *path = NULL;
        va_list ap;
        int r;

        r = check_call_arg(verb, call_arg);
        if (r != EXIT_OK)
                return r;
        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;
        r = resolve_call(bus, verb, call_arg, filter, rest, &path);
        if (r != EXIT_OK)
                return r;

        va_start(ap, types);
        r = client_call_methodv(bus, path, BWCALL_CALL_IFACE, member, &error, NULL, types, ap);
        va_end(ap);
        if (r < 0)
                return report_call_error(bus, verb, path, waits_far_end, &error, r);

        return print_ok(path, key, TAKE_PTR(v));
}

/* VERB [CALL] ARG: with two arguments the first one is the call. */
static void split_call_arg(int argc, char **argv, const char **ret_call, const char **ret_arg) {
        assert(argc == 2 || argc == 3);
        *ret_call = argc == 3 ? argv[1] : NULL;
        *ret_arg = argv[argc - 1];
}

static int verb_hangup(int argc, char **argv) {
        return call_method(argv[0], argc > 1 ? argv[1] : NULL, CALL_UP, NULL, false, NULL, NULL, "Hangup", NULL);
}

static int verb_mute(int argc, char **argv) {
        bool mute = strcmp(argv[0], "mute") == 0;

        return call_method(argv[0], argc > 1 ? argv[1] : NULL, CALL_UP, NULL, false, "muted",
                           json_object_new_boolean(mute), "Mute", "b", (int) mute);
}

static int verb_hold(int argc, char **argv) {
        bool hold = strcmp(argv[0], "hold") == 0;

        /* The reply comes once the far end accepted the re-INVITE. */
        return call_method(argv[0], argc > 1 ? argv[1] : NULL, CALL_UP, NULL, true, "hold",
                           json_object_new_boolean(hold), "Hold", "b", (int) hold);
}

static int verb_answer(int argc, char **argv) {
        /* The reply comes once the gateway's ACK arrived. */
        return call_method(argv[0], argc > 1 ? argv[1] : NULL, CALL_INCOMING, NULL, true, NULL, NULL, "Answer",
                           NULL);
}

static int verb_reject(int argc, char **argv) {
        /* Reject(0) means 486 Busy Here (the contract); show what goes on the wire. */
        return call_method(argv[0], argc > 1 ? argv[1] : NULL, CALL_INCOMING, NULL, false, "sip_code",
                           json_object_new_int64(arg_reject_code ?: 486), "Reject", "u", arg_reject_code);
}

static int verb_redirect(int argc, char **argv) {
        const char *call, *target;

        split_call_arg(argc, argv, &call, &target);
        return call_method(argv[0], call, CALL_INCOMING, "TARGET", false, "target", json_object_new_string(target),
                           "Redirect", "s", target);
}

static int verb_dtmf(int argc, char **argv) {
        const char *call, *digits;

        split_call_arg(argc, argv, &call, &digits);
        return call_method(argv[0], call, CALL_UP, "DIGITS", false, "digits", json_object_new_string(digits),
                           "SendDtmf", "s", digits);
}

static int verb_transfer(int argc, char **argv) {
        const char *call, *target;

        split_call_arg(argc, argv, &call, &target);
        /* The reply comes once the far end's NOTIFY reported how the transfer went. */
        return call_method(argv[0], call, CALL_UP, "TARGET", true, "target", json_object_new_string(target),
                           "Transfer", "s", target);
}

static void erase_and_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}
static inline void erase_and_freep(char **s) {
        erase_and_free(*s);
}

/* The token from stdin: everything up to EOF, without surrounding whitespace. */
static int read_token_stdin(char **ret) {
        _cleanup_(erase_and_freep) char *buf = NULL;
        size_t n = 0, start = 0;
        ssize_t k;

        if (isatty(STDIN_FILENO))
                fputs("Paste the token, then press Ctrl-D.\n", stderr);

        buf = malloc(TOKEN_MAX + 1);
        if (!buf)
                return -ENOMEM;
        buf[0] = '\0';

        while (n < TOKEN_MAX) {
                k = read(STDIN_FILENO, buf + n, TOKEN_MAX - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = '\0';
        if (n == TOKEN_MAX) {
                char c;

                if (read(STDIN_FILENO, &c, 1) > 0)
                        return -E2BIG;
        }

        while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
                buf[--n] = '\0';
        while (buf[start] && strchr(" \t\r\n", buf[start]))
                start++;
        if (start > 0)
                memmove(buf, buf + start, n - start + 1);

        *ret = TAKE_PTR(buf);
        return 0;
}

/* "bwcall token": what a user needs to know about the token, never the token. */
static int verb_token_show(void) {
        static const char *const fields[] = { "TokenMode", "TokenState", "TokenExpiresAt", "TokenError", NULL };
        _cleanup_(json_object_putp) json_object *props = NULL, *out = NULL;
        json_object *v;
        int r;

        r = phone_get_properties("token", BWCALL_PHONE_IFACE, &props);
        if (r != EXIT_OK)
                return r;
        out = json_object_new_object();
        if (!out)
                return log_oom(), EXIT_FAILED;
        for (size_t i = 0; fields[i]; i++) {
                v = json_object_object_get(props, fields[i]);
                if (!v)
                        continue;
                if (arg_json)
                        json_object_object_add(out, fields[i], json_object_get(v));
                else if (strcmp(fields[i], "TokenExpiresAt") == 0)
                        print_token_expiry(json_object_get_uint64(v));
                else if (strcmp(fields[i], "TokenError") != 0 || *json_object_get_string(v))
                        print_property(fields[i], v);
        }
        if (arg_json)
                print_json(out);
        return EXIT_OK;
}

static int verb_token_refresh(void) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        uint64_t expires_at = 0;
        int r;

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;
        r = client_call_method(bus, BWCALL_PHONE_PATH, BWCALL_PHONE_IFACE, "RefreshToken", &error, &reply, "");
        if (r < 0)
                return report_bus_error("token refresh", &error, r);
        r = sd_bus_message_read(reply, "t", &expires_at);
        if (r < 0)
                return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("BadReply"),
                                    "token refresh: Unexpected reply: %s", strerror(-r));
        if (!arg_json) {
                print_token_expiry(expires_at);
                return EXIT_OK;
        }
        return print_ok(NULL, "TokenExpiresAt", json_object_new_uint64(expires_at));
}

static int verb_token(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(erase_and_freep) char *token = NULL;
        int r;

        if (argc == 1)
                return verb_token_show();
        if (strcmp(argv[1], "refresh") == 0) {
                if (argc != 2)
                        return report_usage("token refresh: Takes no arguments");
                return verb_token_refresh();
        }
        if (strcmp(argv[1], "set") != 0)
                return report_usage("token: Unknown operation \"%s\" (expected set or refresh)", argv[1]);
        if (argc != 3)
                return report_usage("token set: Expected the token or '-' (read it from stdin)");

        if (strcmp(argv[2], "-") == 0) {
                r = read_token_stdin(&token);
                if (r == -E2BIG)
                        return report_error(EXIT_USAGE, BWCALL_CLIENT_ERROR("Usage"),
                                            "token set: The token on standard input is longer than %d bytes",
                                            TOKEN_MAX);
                if (r < 0)
                        return report_error(EXIT_FAILED, BWCALL_CLIENT_ERROR("Failed"),
                                            "token set: Cannot read the token from standard input: %s",
                                            strerror(-r));
        } else {
                token = strdup(argv[2]);
                if (!token)
                        return log_oom(), EXIT_FAILED;
                /* Keep it out of /proc/PID/cmdline from now on; prefer "-". */
                explicit_bzero(argv[2], strlen(argv[2]));
        }
        if (token[0] == '\0')
                return report_error(EXIT_USAGE, BWCALL_CLIENT_ERROR("Usage"), "token set: The token is empty");

        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;

        r = client_call_method(bus, BWCALL_PHONE_PATH, BWCALL_PHONE_IFACE, "SetOAuthToken", &error, NULL, "s",
                               token);
        if (r < 0)
                return report_bus_error("token set", &error, r);

        return print_ok(NULL, NULL, NULL);
}

/* "default" (or "") follows the system default. */
static const char *device_arg(const char *arg) {
        return strcmp(arg, "default") == 0 ? "" : arg;
}

static int verb_call_device(int argc, char **argv) {
        bool input = strcmp(argv[0], "input") == 0;
        const char *call, *node;

        split_call_arg(argc, argv, &call, &node);
        node = device_arg(node);
        return call_method(argv[0], call, CALL_UP, "NODE", false, argv[0], json_object_new_string(node),
                           input ? "SetInput" : "SetOutput", "s", node);
}

/* The device lists: [(node, description, is_default)] as JSON arrays. */
static void print_device_list(const char *title, json_object *list, json_object *chosen, json_object *ringer) {
        const char *ring = ringer ? json_object_get_string(ringer) : NULL;

        const char *c = chosen ? json_object_get_string(chosen) : "";

        printf("%s:\n", title);
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
                json_object *d = json_object_array_get_idx(list, i);
                const char *node = json_object_get_string(json_object_array_get_idx(d, 0));
                const char *description = json_object_get_string(json_object_array_get_idx(d, 1));
                bool is_default = json_object_get_boolean(json_object_array_get_idx(d, 2));

                printf("  %s %-24s %s%s\n", c && strcmp(c, node) == 0 ? "*" : " ", node, description,
                       is_default ? " (system default)" : "");
        }
        printf("  for new calls: %s\n", c && *c ? c : "the system default");
        if (ringer)
                printf("  ringing on:    %s\n", ring && *ring ? ring : "the system default");
}

static json_object *device_list_json(json_object *list) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; a && list && i < json_object_array_length(list); i++) {
                json_object *d = json_object_array_get_idx(list, i), *o = json_object_new_object();

                if (!o)
                        break;
                json_object_object_add(o, "node", json_object_get(json_object_array_get_idx(d, 0)));
                json_object_object_add(o, "description", json_object_get(json_object_array_get_idx(d, 1)));
                json_object_object_add(o, "default", json_object_get(json_object_array_get_idx(d, 2)));
                json_object_array_add(a, o);
        }
        return a;
}

static int verb_devices(int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *props = NULL;
        int r;

        r = phone_get_properties(argv[0], BWCALL_AUDIO_IFACE, &props);
        if (r != EXIT_OK)
                return r;
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                if (!j)
                        return log_oom(), EXIT_FAILED;
                json_object_object_add(j, "inputs", device_list_json(json_object_object_get(props, "Inputs")));
                json_object_object_add(j, "outputs", device_list_json(json_object_object_get(props, "Outputs")));
                json_object_object_add(j, "input", json_object_get(json_object_object_get(props, "Input")));
                json_object_object_add(j, "output", json_object_get(json_object_object_get(props, "Output")));
                json_object_object_add(j, "ringer", json_object_get(json_object_object_get(props, "Ringer")));
                print_json(j);
                return EXIT_OK;
        }
        print_device_list("Microphones", json_object_object_get(props, "Inputs"), json_object_object_get(props, "Input"),
                          NULL);
        print_device_list("Speakers", json_object_object_get(props, "Outputs"), json_object_object_get(props, "Output"),
                          json_object_object_get(props, "Ringer"));
        return EXIT_OK;
}

/* device input|output|ringer NODE: the device for new calls (the ringer: incoming calls). */
static int verb_device(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        static const char *const kinds[][2] = {
                { "input", "SetInput" }, { "output", "SetOutput" }, { "ringer", "SetRinger" },
        };
        const char *kind = argv[1], *node = device_arg(argv[2]), *method = NULL;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (strcmp(kind, kinds[i][0]) == 0)
                        method = kinds[i][1];
        if (!method)
                return report_usage("device: Unknown device kind \"%s\" (expected input, output or ringer)", kind);
        r = client_open_bus(&bus);
        if (r != EXIT_OK)
                return r;
        r = client_call_method(bus, BWCALL_PHONE_PATH, BWCALL_AUDIO_IFACE, method, &error, NULL, "s", node);
        if (r < 0)
                return report_bus_error("device", &error, r);
        return print_ok(NULL, kind, json_object_new_string(node));
}

typedef struct Verb {
        const char *name;
        int min_args, max_args; /* not counting the verb */
        int (*run)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "status", 0, 0, verb_status },         { "connect", 0, 0, verb_connect },
        { "disconnect", 0, 0, verb_disconnect }, { "dial", 1, 1, verb_dial },
        { "hangup", 0, 1, verb_hangup },         { "hangup-all", 0, 0, verb_hangup_all },
        { "mute", 0, 1, verb_mute },             { "unmute", 0, 1, verb_mute },
        { "calls", 0, 0, verb_calls },           { "monitor", 0, 0, verb_monitor },
        { "token", 0, 2, verb_token },           { "answer", 0, 1, verb_answer },
        { "reject", 0, 1, verb_reject },         { "redirect", 1, 2, verb_redirect },
        { "hold", 0, 1, verb_hold },             { "resume", 0, 1, verb_hold },
        { "dtmf", 1, 2, verb_dtmf },             { "transfer", 1, 2, verb_transfer },
        { "wait-incoming", 0, 0, verb_wait_incoming },
        { "devices", 0, 0, verb_devices },       { "device", 2, 2, verb_device },
        { "input", 1, 2, verb_call_device },     { "output", 1, 2, verb_call_device },
};

static const char *const wait_states[] = { "ringing", "early-media", "active", "terminated", NULL };
static const char *const dtmf_methods[] = { "rfc4733", "info", NULL };

/* Returns 1 to go on, 0 to exit successfully (--help, --version), or an exit status < 0. */
static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_TIMEOUT,
                ARG_WAIT,
                ARG_NO_WAIT,
                ARG_FOLLOW,
                ARG_STATS,
                ARG_DTMF_METHOD,
                ARG_CODE,
                ARG_INPUT,
                ARG_OUTPUT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "wait", required_argument, NULL, ARG_WAIT },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                { "follow", no_argument, NULL, ARG_FOLLOW },
                { "stats", no_argument, NULL, ARG_STATS },
                { "dtmf-method", required_argument, NULL, ARG_DTMF_METHOD },
                { "code", required_argument, NULL, ARG_CODE },
                { "input", required_argument, NULL, ARG_INPUT },
                { "output", required_argument, NULL, ARG_OUTPUT },
                {}
        };
        bool version = false;
        int c;

        /* Know about --json before any usage error, wherever it stands. */
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
                if (strcmp(argv[i], "--json") == 0)
                        arg_json = true;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        version = true;
                        break;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_TIMEOUT: {
                        char *end;
                        double d;

                        errno = 0;
                        d = strtod(optarg, &end);
                        if (errno != 0 || end == optarg || *end != '\0' || !isfinite(d) || d <= 0 || d > 1e9)
                                return -report_usage("Invalid --timeout \"%s\": expected seconds > 0", optarg);
                        arg_timeout_usec = (uint64_t) (d * (double) USEC_PER_SEC);
                        if (arg_timeout_usec == 0)
                                arg_timeout_usec = 1;
                        break;
                }
                case ARG_WAIT: {
                        bool ok = false;

                        for (size_t i = 0; wait_states[i]; i++)
                                ok = ok || strcmp(optarg, wait_states[i]) == 0;
                        if (!ok)
                                return -report_usage(
                                        "Invalid --wait \"%s\": expected ringing, early-media, active or terminated",
                                        optarg);
                        arg_wait_state = optarg;
                        break;
                }
                case ARG_NO_WAIT:
                        arg_no_wait = true;
                        break;
                case ARG_FOLLOW:
                        arg_follow = true;
                        break;
                case ARG_STATS:
                        arg_stats = true;
                        break;
                case ARG_DTMF_METHOD: {
                        bool ok = false;

                        for (size_t i = 0; dtmf_methods[i]; i++)
                                ok = ok || strcmp(optarg, dtmf_methods[i]) == 0;
                        if (!ok)
                                return -report_usage("Invalid --dtmf-method \"%s\": expected rfc4733 or info", optarg);
                        arg_dtmf_method = optarg;
                        break;
                }
                case ARG_CODE: {
                        uint64_t code;

                        /* 0 is the contract's "default" (486); the daemon checks the range too. */
                        if (parse_uint64(optarg, &code) < 0 || (code != 0 && (code < 300 || code > 699)))
                                return -report_usage("Invalid --code \"%s\": expected a SIP status 300-699", optarg);
                        arg_reject_code = (uint32_t) code;
                        arg_reject_code_set = true;
                        break;
                }
                case ARG_INPUT:
                        arg_input = device_arg(optarg);
                        break;
                case ARG_OUTPUT:
                        arg_output = device_arg(optarg);
                        break;
                case ':':
                        return -report_usage("Option %s needs an argument", argv[optind - 1]);
                case '?':
                        if (optopt > 0 && optopt < 0x100)
                                return -report_usage("Unknown option -%c", optopt);
                        return -report_usage("Unknown option %s", argv[optind - 1]);
                default:
                        assert(false);
                }

        if (version) {
                if (arg_json) {
                        _cleanup_(json_object_putp) json_object *j = json_object_new_object();

                        if (j && json_object_object_add(j, "version", json_object_new_string(BWCALL_VERSION)) == 0)
                                print_json(j);
                } else
                        puts("bwcall " BWCALL_VERSION);
                return 0;
        }

        if (arg_no_wait + arg_follow + (arg_wait_state != NULL) > 1)
                return -report_usage("--wait, --no-wait and --follow exclude each other");

        return 1;
}

static int dispatch(int argc, char **argv) {
        const Verb *verb = NULL;

        if (argc < 1)
                return report_usage("Missing verb");

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strcmp(verbs[i].name, argv[0]) == 0)
                        verb = &verbs[i];
        if (!verb)
                return report_usage("Unknown verb \"%s\"", argv[0]);

        if (argc - 1 < verb->min_args)
                return report_usage("%s: Missing argument", verb->name);
        if (argc - 1 > verb->max_args)
                return report_usage("%s: Too many arguments", verb->name);

        if ((arg_wait_state || arg_no_wait || arg_follow) && verb->run != verb_dial)
                return report_usage("--wait, --no-wait and --follow only apply to dial");
        if (arg_stats && verb->run != verb_calls)
                return report_usage("--stats only applies to calls");
        if (arg_dtmf_method && verb->run != verb_dial)
                return report_usage("--dtmf-method only applies to dial");
        if ((arg_input || arg_output) && verb->run != verb_dial)
                return report_usage("--input and --output only apply to dial (see also: bwcall input/output)");
        if (arg_reject_code_set && verb->run != verb_reject)
                return report_usage("--code only applies to reject");

        return verb->run(argc, argv);
}

int main(int argc, char *argv[]) {
        int r;

        log_setup("bwcall");

        r = parse_argv(argc, argv);
        if (r <= 0)
                return -r;

        return dispatch(argc - optind, argv + optind);
}
