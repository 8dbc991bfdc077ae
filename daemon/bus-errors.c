/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "bus-errors.h"
#include "log.h"

static const char *bus_error_name(int r) {
        switch (-r) {
        case ENOTCONN:
                return BUS_ERROR_NOT_CONNECTED;
        case ENOKEY:
                return BUS_ERROR_TOKEN_UNAVAILABLE;
        case ENODEV:
                return BUS_ERROR_NO_DEVICE;
        case ESTALE:
        case EBUSY:
                return BUS_ERROR_INVALID_STATE;
        case EPERM:
        case EACCES:
                return BUS_ERROR_NOT_AUTHORIZED;
        default:
                return BUS_ERROR_FAILED;
        }
}

static int bus_error_vset(sd_bus_error *error, int r, const char *format, va_list ap) {
        char message[1024];

        vsnprintf(message, sizeof message, format, ap);
        return sd_bus_error_set(error, bus_error_name(r), message);
}

int bus_error_set_errno(sd_bus_error *error, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        bus_error_vset(error, r, format, ap);
        va_end(ap);
        return r < 0 ? r : -EIO;
}

int bus_reply_errno(sd_bus_message *m, int r, const char *format, ...) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int q;

        va_start(ap, format);
        bus_error_vset(&error, r, format, ap);
        va_end(ap);
        q = sd_bus_reply_method_error(m, &error);
        sd_bus_error_free(&error);
        if (q < 0)
                log_warning_errno(q, "Failed to send an error reply: %m");
        return q;
}
