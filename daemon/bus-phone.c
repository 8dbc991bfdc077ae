/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "audio-devices.h"
#include "bus-errors.h"
#include "bus.h"
#include "log.h"

/* org.bwcall.Phone1 on /org/bwcall/Phone1: maps Phone onto the bus, nothing else. */

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", phone_state_to_string(ctx->phone->state));
}

static int property_get_initialized(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "b", (int) ctx->phone->initialized);
}

static int property_get_server(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", transport_get_url(ctx->phone->transport));
}

static int property_get_caller_id(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", ctx->phone->config->caller_id);
}

static int property_get_token_state(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", token_state_to_string(token_get_state(ctx->phone->token)));
}

static int property_get_token_expires_at(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "t", token_get_expires_at(ctx->phone->token));
}

static int property_get_token_error(sd_bus *bus, const char *path, const char *interface,
                                    const char *property, sd_bus_message *reply, void *userdata,
                                    sd_bus_error *error) {
        BusContext *ctx = userdata;
        const char *e = token_get_error(ctx->phone->token);
        return sd_bus_message_append(reply, "s", e ? e : "");
}

static int property_get_token_mode(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error) {
        BusContext *ctx = userdata;
        return sd_bus_message_append(reply, "s", token_get_mode(ctx->phone->token));
}

static int property_get_calls(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        g_autoptr(GPtrArray) calls = phone_get_published_calls(ctx->phone);
        int r;

        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (guint i = 0; i < calls->len; i++) {
                g_autofree char *p = bus_call_path(calls->pdata[i]);
                r = sd_bus_message_append(reply, "o", p);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", BWCALL_VERSION);
}

/* Deferred replies keep the method call until the outcome is known (style-anchors C.6 #9). */
static void on_connect_done(Phone *p, int error, const char *message, void *userdata) {
        sd_bus_message *m = userdata;

        if (error < 0)
                (void) bus_reply_errno(m, error, "Cannot connect to the gateway: %s", message);
        else
                (void) sd_bus_reply_method_return(m, NULL);
        sd_bus_message_unref(m);
}

static int method_connect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;

        phone_connect(ctx->phone, on_connect_done, sd_bus_message_ref(m));
        return 1;
}

static int method_disconnect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;

        phone_disconnect(ctx->phone);
        return sd_bus_reply_method_return(m, NULL);
}

static void on_dial_done(Phone *p, Call *c, int error, const char *message, void *userdata) {
        sd_bus_message *m = userdata;

        if (error < 0)
                (void) bus_reply_errno(m, error, "Cannot dial: %s", message);
        else {
                g_autofree char *path = bus_call_path(c);
                (void) sd_bus_reply_method_return(m, "o", path);
        }
        sd_bus_message_unref(m);
}

static int method_dial(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        g_autofree char *message = NULL;
        CallOptions options = { .dtmf_method = ctx->phone->config->dtmf_method };
        const char *number, *key;
        int r;

        r = sd_bus_message_read(m, "s", &number);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "dtmf-method") == 0) {
                        const char *v;
                        int method;

                        r = sd_bus_message_read(m, "v", "s", &v);
                        if (r < 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Dial option 'dtmf-method' must be a string.");
                        method = dtmf_method_from_string(v);
                        if (method < 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Dial option 'dtmf-method' is '%s'; expected rfc4733 or info.", v);
                        options.dtmf_method = (DtmfMethod) method;
                } else if (strcmp(key, "input") == 0 || strcmp(key, "output") == 0) {
                        const char *v;

                        r = sd_bus_message_read(m, "v", "s", &v);
                        if (r < 0)
                                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                         "Dial option '%s' must be a string (a PipeWire node name).",
                                                         key);
                        *(key[0] == 'i' ? &options.input : &options.output) = v;
                } else
                        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                                 "Unknown Dial option '%s' (known: dtmf-method, input, output).",
                                                 key);
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        r = phone_dial(ctx->phone, number, &options, on_dial_done, sd_bus_message_ref(m), &message);
        if (r == -ENODEV) {
                sd_bus_message_unref(m);
                return bus_error_set_errno(error, r, "%s", message);
        }
        if (r < 0) {
                sd_bus_message_unref(m);
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_NUMBER, "Invalid number \"%s\": %s.", number,
                                         message);
        }
        return 1;
}

static int method_set_oauth_token(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        g_autofree char *message = NULL;
        const char *token;
        int r;

        r = sd_bus_message_read(m, "s", &token);
        if (r < 0)
                return r;
        /* The message names what was wrong, never the token itself. */
        r = token_set_external(ctx->phone->token, token, &message);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Rejected OAuth token: %s.", message);
        return sd_bus_reply_method_return(m, NULL);
}

static void on_refresh_done(Token *t, int error, const char *message, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = userdata;

        if (error < 0)
                (void) bus_reply_errno(m, error, "Cannot refresh the OAuth token: %s", message);
        else
                (void) sd_bus_reply_method_return(m, "t", token_get_expires_at(t));
}

static int method_refresh_token(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        int r;

        r = token_refresh(ctx->phone->token, on_refresh_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_STATE,
                                         "Token mode is %s: bwcalld cannot fetch tokens; set one with "
                                         "SetOAuthToken.", token_get_mode(ctx->phone->token));
        }
        return 1;
}

static int method_check_available_devices(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autofree char *microphone = NULL, *speaker = NULL, *message = NULL;
        int r;

        r = audio_devices_check(ctx->phone->devices, ctx->phone->config->input, ctx->phone->config->output,
                                &microphone, &speaker, &message);
        if (r < 0)
                return bus_error_set_errno(error, r, "%s.", message);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "a{ss}", 2, "microphone", microphone, "speaker", speaker);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_hangup_all(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusContext *ctx = userdata;

        phone_hangup_all(ctx->phone);
        return sd_bus_reply_method_return(m, NULL);
}

static const sd_bus_vtable phone_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Initialized", "b", property_get_initialized, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Server", "s", property_get_server, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("CallerId", "s", property_get_caller_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TokenState", "s", property_get_token_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TokenExpiresAt", "t", property_get_token_expires_at, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TokenError", "s", property_get_token_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TokenMode", "s", property_get_token_mode, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Calls", "ao", property_get_calls, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD("Connect", NULL, NULL, method_connect, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Disconnect", NULL, NULL, method_disconnect, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Dial", SD_BUS_ARGS("s", number, "a{sv}", options), SD_BUS_RESULT("o", call),
                                method_dial, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetOAuthToken", SD_BUS_ARGS("s", token), SD_BUS_NO_RESULT,
                                method_set_oauth_token, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("RefreshToken", SD_BUS_NO_ARGS, SD_BUS_RESULT("t", expires_at),
                                method_refresh_token, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CheckAvailableDevices", SD_BUS_NO_ARGS, SD_BUS_RESULT("a{ss}", devices),
                                method_check_available_devices, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("HangupAll", NULL, NULL, method_hangup_all, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("LoginStateChanged", SD_BUS_ARGS("b", is_login, "s", cause), 0),
        SD_BUS_SIGNAL_WITH_ARGS("CallAdded", SD_BUS_ARGS("o", call), 0),
        SD_BUS_SIGNAL_WITH_ARGS("CallRemoved", SD_BUS_ARGS("o", call), 0),
        SD_BUS_SIGNAL_WITH_ARGS("IncomingCall", SD_BUS_ARGS("o", call, "s", from), 0),
        SD_BUS_SIGNAL_WITH_ARGS("TokenRefreshed", SD_BUS_ARGS("t", expires_at), 0),
        SD_BUS_VTABLE_END,
};

/* ---- PhoneObserver: core events → signals ---- */

static void on_phone_changed(Phone *p, const char *const *properties, void *userdata) {
        BusContext *ctx = userdata;
        int r;

        r = sd_bus_emit_properties_changed_strv(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE,
                                                (char **) properties);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged: %m");
}

static void on_login_state_changed(Phone *p, bool is_login, const char *cause, void *userdata) {
        BusContext *ctx = userdata;
        int r;

        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, "LoginStateChanged", "bs",
                               (int) is_login, cause);
        if (r < 0)
                log_warning_errno(r, "Failed to emit LoginStateChanged: %m");
}

static void on_call_added(Phone *p, Call *c, void *userdata) {
        bus_call_emit_added(userdata, c);
}

static void on_call_removed(Phone *p, Call *c, void *userdata) {
        bus_call_emit_removed(userdata, c);
}

static void on_call_state_changed(Phone *p, Call *c, CallState old, CallState new, void *userdata) {
        bus_call_emit_state_changed(userdata, c, old, new);
}

static void on_call_changed(Phone *p, Call *c, const char *const *properties, void *userdata) {
        bus_call_emit_changed(userdata, c, properties);
}

static void on_hold_state_changed(Phone *p, Call *c, bool is_hold, bool is_remote, void *userdata) {
        bus_call_emit_hold_state_changed(userdata, c, is_hold, is_remote);
}

static void on_dtmf_received(Phone *p, Call *c, char digit, void *userdata) {
        bus_call_emit_dtmf_received(userdata, c, digit);
}

static void on_transfer_requested(Phone *p, Call *c, const char *target, void *userdata) {
        bus_call_emit_transfer_requested(userdata, c, target);
}

static void on_audio_device_changed(Phone *p, Call *c, const char *kind, const char *node, const char *reason,
                                    void *userdata) {
        bus_call_emit_audio_device_changed(userdata, c, kind, node, reason);
}

static void on_devices_changed(Phone *p, void *userdata) {
        bus_audio_emit_devices_changed(userdata);
}

static void on_incoming_call(Phone *p, Call *c, const char *from, void *userdata) {
        BusContext *ctx = userdata;
        g_autofree char *path = bus_call_path(c);
        int r;

        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, "IncomingCall", "os", path, from);
        if (r < 0)
                log_warning_errno(r, "Failed to emit IncomingCall: %m");
}

static void on_token_refreshed(Phone *p, uint64_t expires_at, void *userdata) {
        BusContext *ctx = userdata;
        int r;

        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, "TokenRefreshed", "t", expires_at);
        if (r < 0)
                log_warning_errno(r, "Failed to emit TokenRefreshed: %m");
}

static const PhoneObserver bus_phone_observer = {
        .phone_changed = on_phone_changed,
        .login_state_changed = on_login_state_changed,
        .call_added = on_call_added,
        .call_removed = on_call_removed,
        .call_state_changed = on_call_state_changed,
        .call_changed = on_call_changed,
        .hold_state_changed = on_hold_state_changed,
        .dtmf_received = on_dtmf_received,
        .incoming_call = on_incoming_call,
        .transfer_requested = on_transfer_requested,
        .token_refreshed = on_token_refreshed,
        .devices_changed = on_devices_changed,
        .audio_device_changed = on_audio_device_changed,
};

int bus_phone_register(BusContext *ctx) {
        int r;

        r = sd_bus_add_object_vtable(ctx->bus, NULL, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, phone_vtable, ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Phone object: %m");
        r = sd_bus_add_object_manager(ctx->bus, NULL, BUS_PHONE_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");
        phone_set_observer(ctx->phone, &bus_phone_observer, ctx);
        return 0;
}
