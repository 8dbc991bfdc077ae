/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* The one converter from D-Bus values to output. Every verb reads what the daemon sends with
 * bus_message_read_json() and renders it either as JSON (print_json) or as text
 * (json_to_text / property_to_text), so --json and the human form never disagree. */

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

typedef enum TextFlags {
        /* Quote strings that would be ambiguous in a "key=value, ..." line (empty, spaces,
         * separators). Strings with control characters are always quoted and escaped: values such
         * as the remote number come from the network and must not drive the terminal. */
        TEXT_QUOTE = 1 << 0,
} TextFlags;

/* Reads one complete value of any type (s o g b y n q i u x t d h v a{..} a r) at the current
 * position of m. Dictionaries become JSON objects (non-string keys are stringified), other
 * arrays and structs become JSON arrays, variants are unwrapped. A NaN or infinite double becomes
 * JSON null, which json-c represents as *ret == NULL. Returns -ENXIO at the end of the enclosing
 * container. */
int bus_message_read_json(sd_bus_message *m, json_object **ret);

/* Reads every remaining argument of m into an object, naming them from names[] (NULL-terminated,
 * may be NULL or shorter than the arguments: the rest become "argN"). */
int bus_message_read_args_json(sd_bus_message *m, const char *const *names, json_object **ret);

/* Same as bus_message_read_json(), rendered as text. */
int bus_message_read_text(sd_bus_message *m, TextFlags flags, char **ret);

/* Text form of a JSON value: booleans "yes"/"no", arrays "[a, b]", objects "{k=v, ...}".
 * At the top level, arrays and objects drop their brackets unless TEXT_QUOTE is given. Returns
 * NULL on OOM. */
char *json_to_text(json_object *j, TextFlags flags);

/* Like json_to_text(), but knows the units of the API's properties: µs timestamps
 * (TokenExpiresAt, StartTime, first-audio-usec) as local ISO 8601 time, Duration as [H:]M:SS,
 * jitter/round-trip-time in ms, and "n/a" for empty strings and unset (0) codes and times. */
char *property_to_text(const char *name, json_object *j, TextFlags flags);

/* printf into a new string; NULL on OOM. */
char *strprintf(const char *format, ...) _printf_(1, 2);

/* "2024-11-24T13:05:00+01:00" in local time; NULL on OOM. */
char *format_timestamp_iso(uint64_t usec);

/* The current CLOCK_REALTIME in µs. */
uint64_t now_realtime_usec(void);

/* A JSON number with microsecond precision for realtime seconds, e.g. 1732449600.123456. */
json_object *json_object_new_realtime(uint64_t usec);

/* "HH:MM:SS.mmm" in local time, into buf. */
const char *format_clock(uint64_t usec, char buf[static 16]);

/* One JSON value on one line of stdout, flushed (tests read it through a pipe). */
void print_json(json_object *j);

/* "   Label: value" with the label right-aligned to width. */
void print_field(int width, const char *label, const char *value);
