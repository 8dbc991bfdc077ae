/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* json-c prints doubles with %.17g (0.0042 → 0.0041999999999999997); 15 digits are what was
 * meant. */
static json_object *json_new_double(double d) {
        char buf[64];

        snprintf(buf, sizeof buf, "%.15g", d);
        if (!strpbrk(buf, ".e"))
                strcat(buf, ".0");
        return json_object_new_double_s(d, buf);
}

static json_object *json_from_basic(char type, const void *p) {
        switch (type) {
        case SD_BUS_TYPE_STRING:
        case SD_BUS_TYPE_OBJECT_PATH:
        case SD_BUS_TYPE_SIGNATURE:
                return json_object_new_string(*(const char *const *) p);
        case SD_BUS_TYPE_BOOLEAN:
                return json_object_new_boolean(*(const int *) p);
        case SD_BUS_TYPE_BYTE:
                return json_object_new_int64(*(const uint8_t *) p);
        case SD_BUS_TYPE_INT16:
                return json_object_new_int64(*(const int16_t *) p);
        case SD_BUS_TYPE_UINT16:
                return json_object_new_int64(*(const uint16_t *) p);
        case SD_BUS_TYPE_INT32:
        case SD_BUS_TYPE_UNIX_FD:
                return json_object_new_int64(*(const int32_t *) p);
        case SD_BUS_TYPE_UINT32:
                return json_object_new_int64(*(const uint32_t *) p);
        case SD_BUS_TYPE_INT64:
                return json_object_new_int64(*(const int64_t *) p);
        case SD_BUS_TYPE_UINT64:
                return json_object_new_uint64(*(const uint64_t *) p);
        case SD_BUS_TYPE_DOUBLE:
                return json_new_double(*(const double *) p);
        default:
                return NULL;
        }
}

/* A dictionary key as an object key: strings as they are, numbers and booleans printed. */
static char *json_key_string(json_object *k) {
        if (json_object_is_type(k, json_type_string))
                return strdup(json_object_get_string(k));
        return strdup(json_object_to_json_string_ext(k, JSON_FLAGS));
}

static int read_dict(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *obj = NULL;
        int r;

        obj = json_object_new_object();
        if (!obj)
                return -ENOMEM;

        for (;;) {
                _cleanup_(json_object_putp) json_object *key = NULL, *value = NULL;
                _cleanup_free_ char *k = NULL;
                const char *contents;
                char type;

                r = sd_bus_message_peek_type(m, &type, &contents);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (type != SD_BUS_TYPE_DICT_ENTRY)
                        return -EBADMSG;

                r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, contents);
                if (r < 0)
                        return r;
                r = bus_message_read_json(m, &key);
                if (r < 0)
                        return r;
                r = bus_message_read_json(m, &value);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;

                k = json_key_string(key);
                if (!k)
                        return -ENOMEM;
                if (json_object_object_add(obj, k, TAKE_PTR(value)) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(obj);
        return 0;
}

static int read_list(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *arr = NULL;
        int r;

        arr = json_object_new_array();
        if (!arr)
                return -ENOMEM;

        for (;;) {
                _cleanup_(json_object_putp) json_object *v = NULL;

                r = bus_message_read_json(m, &v);
                if (r == -ENXIO)
                        break;
                if (r < 0)
                        return r;
                if (json_object_array_add(arr, v) < 0)
                        return -ENOMEM;
                TAKE_PTR(v);
        }

        *ret = TAKE_PTR(arr);
        return 0;
}

int bus_message_read_json(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *j = NULL;
        const char *contents;
        char type;
        int r;

        assert(m);
        assert(ret);

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;

        switch (type) {
        case SD_BUS_TYPE_VARIANT:
        case SD_BUS_TYPE_ARRAY:
        case SD_BUS_TYPE_STRUCT:
                r = sd_bus_message_enter_container(m, type, contents);
                if (r < 0)
                        return r;
                if (type == SD_BUS_TYPE_VARIANT)
                        r = bus_message_read_json(m, &j);
                else if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN)
                        r = read_dict(m, &j);
                else
                        r = read_list(m, &j);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                break;

        default: {
                union {
                        uint8_t u8;
                        int16_t s16;
                        uint16_t u16;
                        int32_t s32;
                        uint32_t u32;
                        int64_t s64;
                        uint64_t u64;
                        double d;
                        int b;
                        const char *s;
                } v;

                if (!strchr("sogbynqiuxtdh", type))
                        return -EOPNOTSUPP;
                r = sd_bus_message_read_basic(m, type, &v);
                if (r < 0)
                        return r;
                if (type == SD_BUS_TYPE_DOUBLE && !isfinite(v.d)) {
                        /* JSON has no NaN or infinity; json-c's null is the NULL object. */
                        *ret = NULL;
                        return 0;
                }
                j = json_from_basic(type, &v);
                if (!j)
                        return -ENOMEM;
                break;
        }
        }

        *ret = TAKE_PTR(j);
        return 0;
}

int bus_message_read_args_json(sd_bus_message *m, const char *const *names, json_object **ret) {
        _cleanup_(json_object_putp) json_object *obj = NULL;
        bool names_left = names;
        int r;

        obj = json_object_new_object();
        if (!obj)
                return -ENOMEM;

        for (unsigned i = 0;; i++) {
                _cleanup_(json_object_putp) json_object *v = NULL;
                char fallback[32];
                const char *name;

                r = bus_message_read_json(m, &v);
                if (r == -ENXIO)
                        break;
                if (r < 0)
                        return r;

                if (names_left && names[i])
                        name = names[i];
                else {
                        names_left = false;
                        snprintf(fallback, sizeof fallback, "arg%u", i);
                        name = fallback;
                }
                if (json_object_object_add(obj, name, TAKE_PTR(v)) < 0)
                        return -ENOMEM;
        }

        *ret = TAKE_PTR(obj);
        return 0;
}

static bool string_needs_quotes(const char *s, TextFlags flags) {
        if (flags & TEXT_QUOTE) {
                if (*s == '\0')
                        return true;
                if (strpbrk(s, " \t,={}[]\""))
                        return true;
        }
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return true;
        return false;
}

static void text_write(FILE *f, json_object *j, TextFlags flags, bool top) {
        switch (json_object_get_type(j)) {
        case json_type_null:
                fputs("n/a", f);
                break;
        case json_type_boolean:
                fputs(json_object_get_boolean(j) ? "yes" : "no", f);
                break;
        case json_type_string: {
                const char *s = json_object_get_string(j);

                if (string_needs_quotes(s, flags))
                        fputs(json_object_to_json_string_ext(j, JSON_FLAGS), f);
                else
                        fputs(s, f);
                break;
        }
        case json_type_array: {
                size_t n = json_object_array_length(j);

                if (!top)
                        fputc('[', f);
                for (size_t i = 0; i < n; i++) {
                        if (i > 0)
                                fputs(", ", f);
                        text_write(f, json_object_array_get_idx(j, i), flags | TEXT_QUOTE, false);
                }
                if (!top)
                        fputc(']', f);
                break;
        }
        case json_type_object: {
                bool first = true;

                if (!top)
                        fputc('{', f);
                json_object_object_foreach(j, key, value) {
                        if (!first)
                                fputs(", ", f);
                        first = false;
                        fprintf(f, "%s=", key);
                        text_write(f, value, flags | TEXT_QUOTE, false);
                }
                if (!top)
                        fputc('}', f);
                break;
        }
        default: /* numbers */
                fputs(json_object_to_json_string_ext(j, JSON_FLAGS), f);
                break;
        }
}

char *json_to_text(json_object *j, TextFlags flags) {
        _cleanup_(fclosep) FILE *f = NULL;
        char *buf = NULL;
        size_t size = 0;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        /* Embedded in a "key=value" line, containers keep their brackets ("Calls=[]"). */
        text_write(f, j, flags, !(flags & TEXT_QUOTE));
        if (fflush(f) != 0 || ferror(f)) {
                fclose(TAKE_PTR(f));
                free(buf);
                return NULL;
        }
        fclose(TAKE_PTR(f));
        return buf;
}

int bus_message_read_text(sd_bus_message *m, TextFlags flags, char **ret) {
        _cleanup_(json_object_putp) json_object *j = NULL;
        char *s;
        int r;

        r = bus_message_read_json(m, &j);
        if (r < 0)
                return r;
        s = json_to_text(j, flags);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

char *strprintf(const char *format, ...) {
        va_list ap;
        char *s;
        int n;

        va_start(ap, format);
        n = vsnprintf(NULL, 0, format, ap);
        va_end(ap);
        if (n < 0)
                return NULL;
        s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        va_start(ap, format);
        (void) vsnprintf(s, (size_t) n + 1, format, ap);
        va_end(ap);
        return s;
}

uint64_t now_realtime_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

json_object *json_object_new_realtime(uint64_t usec) {
        char buf[48];

        snprintf(buf, sizeof buf, "%" PRIu64 ".%06" PRIu64, usec / USEC_PER_SEC, usec % USEC_PER_SEC);
        return json_object_new_double_s((double) usec / (double) USEC_PER_SEC, buf);
}

const char *format_clock(uint64_t usec, char buf[static 16]) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (!localtime_r(&t, &tm)) {
                strcpy(buf, "??:??:??.???");
                return buf;
        }
        snprintf(buf, 16, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (unsigned) (usec % USEC_PER_SEC / USEC_PER_MSEC));
        return buf;
}

char *format_timestamp_iso(uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        char date[32];
        struct tm tm;
        long off;

        if (!localtime_r(&t, &tm))
                return strdup("n/a");
        if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return strdup("n/a");

        /* ISO 8601 wants the offset as "+01:00"; strftime's %z gives "+0100". */
        off = tm.tm_gmtoff / 60;
        return strprintf("%s%c%02ld:%02ld", date, off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

static char *format_duration(uint64_t sec) {
        if (sec >= 3600)
                return strprintf("%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, sec / 3600, sec / 60 % 60, sec % 60);
        return strprintf("%" PRIu64 ":%02" PRIu64, sec / 60, sec % 60);
}

static bool streq_any(const char *s, const char *const *list) {
        for (; *list; list++)
                if (strcmp(s, *list) == 0)
                        return true;
        return false;
}

char *property_to_text(const char *name, json_object *j, TextFlags flags) {
        static const char *const timestamps[] = { "TokenExpiresAt", "StartTime", "first-audio-usec", NULL };
        static const char *const codes[] = { "SipCode", NULL };
        static const char *const seconds[] = { "jitter", "round-trip-time", NULL };
        json_type type = json_object_get_type(j);

        assert(name);

        if (type == json_type_int) {
                uint64_t v = json_object_get_uint64(j);

                if (streq_any(name, timestamps))
                        return v == 0 ? strdup("n/a") : format_timestamp_iso(v);
                if (streq_any(name, codes) && v == 0)
                        return strdup("n/a");
                if (strcmp(name, "Duration") == 0)
                        return format_duration(v);
        }
        if ((type == json_type_double || type == json_type_int) && streq_any(name, seconds))
                return strprintf("%.1f ms", json_object_get_double(j) * 1000.0);
        if (type == json_type_string && json_object_get_string_len(j) == 0 && !(flags & TEXT_QUOTE))
                return strdup("n/a");

        return json_to_text(j, flags);
}

void print_json(json_object *j) {
        puts(json_object_to_json_string_ext(j, JSON_FLAGS));
        fflush(stdout);
}

void print_field(int width, const char *label, const char *value) {
        printf("%*s: %s\n", width, label, value);
}
