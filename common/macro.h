/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdlib.h>

/* Cleanup helpers in the style of systemd's macro.h: libsystemd only exports the sd-* unref
 * helpers, so a consumer defines its own _cleanup_/freep/TAKE_PTR. */
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Returns the pointer and leaves NULL behind, for handing ownership out of a scope. */
#define TAKE_PTR(ptr)                          \
        ({                                     \
                __typeof__(ptr) _ptr_ = (ptr); \
                (ptr) = NULL;                  \
                _ptr_;                         \
        })

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func) \
        static inline void func##p(type *p) {   \
                if (*p)                         \
                        func(*p);               \
        }

#define USEC_PER_SEC ((uint64_t) 1000000ULL)
#define USEC_PER_MSEC ((uint64_t) 1000ULL)
