/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "macro.h"

/* The one error catalog of the D-Bus API (dbus/org.bwcall.Phone1.xml). */
#define BUS_ERROR_NOT_CONNECTED "org.bwcall.Phone1.Error.NotConnected"
#define BUS_ERROR_INVALID_NUMBER "org.bwcall.Phone1.Error.InvalidNumber"
#define BUS_ERROR_INVALID_DTMF "org.bwcall.Phone1.Error.InvalidDtmf"
#define BUS_ERROR_INVALID_STATE "org.bwcall.Phone1.Error.InvalidState"
#define BUS_ERROR_NOT_AUTHORIZED "org.bwcall.Phone1.Error.NotAuthorized"
#define BUS_ERROR_TOKEN_UNAVAILABLE "org.bwcall.Phone1.Error.TokenUnavailable"
#define BUS_ERROR_NO_DEVICE "org.bwcall.Phone1.Error.NoDevice"
#define BUS_ERROR_FAILED "org.bwcall.Phone1.Error.Failed"

/* Maps a negative errno from the core to the catalog: -ENOTCONN NotConnected, -ENOKEY
 * TokenUnavailable, -ENODEV NoDevice, -ESTALE/-EBUSY InvalidState, -EPERM/-EACCES
 * NotAuthorized, anything else Failed. Returns the (negative) error for "return" chains. */
int bus_error_set_errno(sd_bus_error *error, int r, const char *format, ...) _printf_(3, 4);

/* Sends a deferred error reply for a kept method call. */
int bus_reply_errno(sd_bus_message *m, int r, const char *format, ...) _printf_(3, 4);
