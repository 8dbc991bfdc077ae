/* SPDX-License-Identifier: LGPL-2.1-or-later */
#define _GNU_SOURCE 1
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "bus-errors.h"
#include "bus.h"
#include "log.h"

/* org.bwcall.Phone1.Call on /org/bwcall/Phone1/Call/<n>: a fallback vtable with a find callback
 * and a node enumerator, as systemd's logind does for sessions. */

char *bus_call_path(const Call *c) {
        return g_strdup_printf(BUS_CALL_PREFIX "/%u", c->id);
}

static Call *call_from_path(BusContext *ctx, const char *path) {
        const char *suffix;
        char *end;
        unsigned long id;

        if (!g_str_has_prefix(path, BUS_CALL_PREFIX "/"))
                return NULL;
        suffix = path + strlen(BUS_CALL_PREFIX "/");
        if (!g_ascii_isdigit(*suffix))
                return NULL;
        errno = 0;
        id = strtoul(suffix, &end, 10);
        if (errno != 0 || *end || id == 0 || id > UINT32_MAX)
                return NULL;
        return phone_find_call(ctx->phone, (unsigned) id);
}

static int call_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                            void **ret_found, sd_bus_error *error) {
        Call *c = call_from_path(userdata, path);

        if (!c)
                return 0;
        *ret_found = c;
        return 1;
}

static int call_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***ret_nodes,
                                sd_bus_error *error) {
        BusContext *ctx = userdata;
        g_autoptr(GPtrArray) calls = phone_get_published_calls(ctx->phone);
        char **nodes = calloc(calls->len + 1, sizeof(char *));

        if (!nodes)
                return -ENOMEM;
        /* sd-bus frees the result with free(): allocate with malloc, not GLib. */
        for (guint i = 0; i < calls->len; i++) {
                Call *c = calls->pdata[i];
                if (asprintf(&nodes[i], BUS_CALL_PREFIX "/%u", c->id) < 0) {
                        for (guint j = 0; j < i; j++)
                                free(nodes[j]);
                        free(nodes);
                        return -ENOMEM;
                }
        }
        *ret_nodes = nodes;
        return 0;
}

/* sd-bus hands the getter userdata + offset; "b" needs an int on the wire, our fields are bool. */
static int property_get_bool_field(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(bool *) userdata);
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        return sd_bus_message_append(reply, "s", call_state_to_string(c->state));
}

static int property_get_direction(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        return sd_bus_message_append(reply, "s", call_direction_to_string(c->direction));
}

static int property_get_cause(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        return sd_bus_message_append(reply, "s", c->cause ? c->cause : "");
}

static int property_get_duration(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        return sd_bus_message_append(reply, "u", call_get_duration(c));
}

static int property_get_stats(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        g_autoptr(GVariant) stats = NULL;
        GVariantIter iter;
        const char *key;
        GVariant *value;
        int r;

        stats = c->media ? g_variant_ref_sink(media_get_stats(c->media)) : NULL;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        if (stats) {
                g_variant_iter_init(&iter, stats);
                while (g_variant_iter_loop(&iter, "{&sv}", &key, &value)) {
                        /* Only the simple types the contract documents. */
                        if (g_variant_is_of_type(value, G_VARIANT_TYPE_STRING))
                                r = sd_bus_message_append(reply, "{sv}", key, "s", g_variant_get_string(value, NULL));
                        else if (g_variant_is_of_type(value, G_VARIANT_TYPE_UINT64))
                                r = sd_bus_message_append(reply, "{sv}", key, "t", g_variant_get_uint64(value));
                        else if (g_variant_is_of_type(value, G_VARIANT_TYPE_INT64))
                                r = sd_bus_message_append(reply, "{sv}", key, "x", g_variant_get_int64(value));
                        else if (g_variant_is_of_type(value, G_VARIANT_TYPE_DOUBLE))
                                r = sd_bus_message_append(reply, "{sv}", key, "d", g_variant_get_double(value));
                        else if (g_variant_is_of_type(value, G_VARIANT_TYPE_UINT32))
                                r = sd_bus_message_append(reply, "{sv}", key, "u", g_variant_get_uint32(value));
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(reply);
}

static int method_hangup(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        int r;

        r = call_hangup(c);
        if (r < 0)
                return bus_error_set_errno(error, r, "Call %u is already %s.", c->id, call_state_to_string(c->state));
        return sd_bus_reply_method_return(m, NULL);
}

static int method_mute(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        int mute, r;

        r = sd_bus_message_read(m, "b", &mute);
        if (r < 0)
                return r;
        r = call_set_muted(c, mute);
        if (r < 0)
                return bus_error_set_errno(error, r, "Call %u is %s.", c->id, call_state_to_string(c->state));
        return sd_bus_reply_method_return(m, NULL);
}

/* Deferred replies for operations that wait for the far end (Hold, Answer, Transfer). The
 * bus context travels along so the reply can say which call it was about. */
static void on_call_op_done(Call *c, int error, const char *message, void *userdata) {
        sd_bus_message *m = userdata;

        if (error < 0)
                (void) bus_reply_errno(m, error, "Call %u: %s.", c->id, message ? message : "failed");
        else
                (void) sd_bus_reply_method_return(m, NULL);
        sd_bus_message_unref(m);
}

static int reply_call_error(Call *c, sd_bus_error *error, int r, const char *what) {
        if (r == -ESTALE)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_STATE, "Cannot %s call %u: it is %s.", what, c->id,
                                         call_state_to_string(c->state));
        if (r == -EBUSY)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_STATE,
                                         "Cannot %s call %u: another request on it is still in progress.", what,
                                         c->id);
        return bus_error_set_errno(error, r, "Cannot %s call %u: %s.", what, c->id, strerror(-r));
}

static int method_hold(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        int hold, r;

        r = sd_bus_message_read(m, "b", &hold);
        if (r < 0)
                return r;
        r = call_hold(c, hold, on_call_op_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                return reply_call_error(c, error, r, hold ? "hold" : "resume");
        }
        return 1;
}

static int method_send_dtmf(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        const char *digits;
        int r;

        r = sd_bus_message_read(m, "s", &digits);
        if (r < 0)
                return r;
        r = call_send_dtmf(c, digits);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_DTMF,
                                         "Invalid DTMF \"%s\": use 1 to 256 of 0-9 A-D * # and ',' for a 2 s pause.",
                                         digits);
        if (r < 0)
                return reply_call_error(c, error, r, "send DTMF on");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_answer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        int r;

        r = call_answer(c, on_call_op_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                return reply_call_error(c, error, r, "answer");
        }
        return 1;
}

static int method_reject(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        uint32_t code;
        int r;

        r = sd_bus_message_read(m, "u", &code);
        if (r < 0)
                return r;
        r = call_reject(c, code);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Reject code %u is not a final error status (300–699, or 0 for 486).", code);
        if (r < 0)
                return reply_call_error(c, error, r, "reject");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_redirect(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        const char *target;
        int r;

        r = sd_bus_message_read(m, "s", &target);
        if (r < 0)
                return r;
        r = call_redirect(c, target);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_NUMBER, "Invalid redirect target \"%s\".", target);
        if (r < 0)
                return reply_call_error(c, error, r, "redirect");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_transfer(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        const char *target;
        int r;

        r = sd_bus_message_read(m, "s", &target);
        if (r < 0)
                return r;
        r = call_transfer(c, target, on_call_op_done, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                if (r == -EINVAL)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_NUMBER, "Invalid transfer target \"%s\".",
                                                 target);
                return reply_call_error(c, error, r, "transfer");
        }
        return 1;
}

static int property_get_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Call *c = userdata;
        const char *node = call_device_in_use(c, strcmp(property, "Input") == 0 ? CALL_DEVICE_INPUT : CALL_DEVICE_OUTPUT);

        return sd_bus_message_append(reply, "s", node ?: "");
}

/* SetInput/SetOutput on a call: this call only, at once, no SIP. */
static int set_call_device(sd_bus_message *m, Call *c, CallDevice d, sd_bus_error *error) {
        const char *node;
        int r;

        r = sd_bus_message_read(m, "s", &node);
        if (r < 0)
                return r;
        if (!c->phone || !phone_has_device(c->phone, d, node)) {
                g_autofree char *message = phone_device_missing_message(d, node);

                return sd_bus_error_set(error, BUS_ERROR_NO_DEVICE, message);
        }
        r = call_set_device(c, d, node);
        if (r < 0)
                return reply_call_error(c, error, r, d == CALL_DEVICE_INPUT ? "set the microphone of" : "set the speaker of");
        return sd_bus_reply_method_return(m, NULL);
}

static int method_set_input(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return set_call_device(m, userdata, CALL_DEVICE_INPUT, error);
}

static int method_set_output(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return set_call_device(m, userdata, CALL_DEVICE_OUTPUT, error);
}

static const sd_bus_vtable call_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Direction", "s", property_get_direction, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Number", "s", NULL, offsetof(Call, number), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LocalHold", "b", property_get_bool_field, offsetof(Call, local_hold),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RemoteHold", "b", property_get_bool_field, offsetof(Call, remote_hold),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Muted", "b", property_get_bool_field, offsetof(Call, muted),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Reconnecting", "b", property_get_bool_field, offsetof(Call, reconnecting),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* The devices in use; "" = the system default (also while a chosen one is unplugged). */
        SD_BUS_PROPERTY("Input", "s", property_get_device, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Output", "s", property_get_device, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SpeakingWhileMuted", "b", property_get_bool_field, offsetof(Call, speaking_while_muted),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MicrophoneSilent", "b", property_get_bool_field, offsetof(Call, microphone_silent),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Cause", "s", property_get_cause, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SipCode", "u", NULL, offsetof(Call, sip_code), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StartTime", "t", NULL, offsetof(Call, start_usec), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Duration", "u", property_get_duration, 0, 0),
        /* Invalidated (not sent) on change: first audio arrived, read it when needed. */
        SD_BUS_PROPERTY("Stats", "a{sv}", property_get_stats, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_METHOD("Hangup", NULL, NULL, method_hangup, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Mute", SD_BUS_ARGS("b", mute), SD_BUS_NO_RESULT, method_mute,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Hold", SD_BUS_ARGS("b", hold), SD_BUS_NO_RESULT, method_hold,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendDtmf", SD_BUS_ARGS("s", digits), SD_BUS_NO_RESULT, method_send_dtmf,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Answer", NULL, NULL, method_answer, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reject", SD_BUS_ARGS("u", sip_code), SD_BUS_NO_RESULT, method_reject,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Redirect", SD_BUS_ARGS("s", target), SD_BUS_NO_RESULT, method_redirect,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Transfer", SD_BUS_ARGS("s", target), SD_BUS_NO_RESULT, method_transfer,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetInput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_input,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetOutput", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_set_output,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("StateChanged", SD_BUS_ARGS("s", old, "s", new, "s", cause), 0),
        SD_BUS_SIGNAL_WITH_ARGS("HoldStateChanged", SD_BUS_ARGS("b", is_hold, "b", is_remote), 0),
        SD_BUS_SIGNAL_WITH_ARGS("DtmfReceived", SD_BUS_ARGS("s", digit), 0),
        SD_BUS_SIGNAL_WITH_ARGS("TransferRequested", SD_BUS_ARGS("s", target), 0),
        SD_BUS_SIGNAL_WITH_ARGS("AudioDeviceChanged", SD_BUS_ARGS("s", kind, "s", node, "s", reason), 0),
        SD_BUS_VTABLE_END,
};

int bus_call_register(BusContext *ctx) {
        int r;

        r = sd_bus_add_fallback_vtable(ctx->bus, NULL, BUS_CALL_PREFIX, BUS_CALL_INTERFACE, call_vtable,
                                       call_object_find, ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Call objects: %m");
        r = sd_bus_add_node_enumerator(ctx->bus, NULL, BUS_CALL_PREFIX, call_node_enumerator, ctx);
        if (r < 0)
                return log_error_errno(r, "Failed to register the Call enumerator: %m");
        return 0;
}

void bus_call_emit_added(BusContext *ctx, Call *c) {
        g_autofree char *path = bus_call_path(c);
        int r;

        r = sd_bus_emit_interfaces_added(ctx->bus, path, BUS_CALL_INTERFACE, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesAdded for %s: %m", path);
        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, "CallAdded", "o", path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit CallAdded: %m");
}

void bus_call_emit_removed(BusContext *ctx, Call *c) {
        g_autofree char *path = bus_call_path(c);
        int r;

        r = sd_bus_emit_interfaces_removed(ctx->bus, path, BUS_CALL_INTERFACE, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit InterfacesRemoved for %s: %m", path);
        r = sd_bus_emit_signal(ctx->bus, BUS_PHONE_PATH, BUS_PHONE_INTERFACE, "CallRemoved", "o", path);
        if (r < 0)
                log_warning_errno(r, "Failed to emit CallRemoved: %m");
}

void bus_call_emit_state_changed(BusContext *ctx, Call *c, CallState old, CallState new) {
        g_autofree char *path = bus_call_path(c);
        int r;

        r = sd_bus_emit_signal(ctx->bus, path, BUS_CALL_INTERFACE, "StateChanged", "sss",
                               call_state_to_string(old), call_state_to_string(new),
                               new == CALL_STATE_TERMINATED && c->cause ? c->cause : "");
        if (r < 0)
                log_warning_errno(r, "Failed to emit StateChanged for %s: %m", path);
}

void bus_call_emit_changed(BusContext *ctx, Call *c, const char *const *properties) {
        g_autofree char *path = bus_call_path(c);
        int r;

        r = sd_bus_emit_properties_changed_strv(ctx->bus, path, BUS_CALL_INTERFACE, (char **) properties);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged for %s: %m", path);
}

static void call_emit(BusContext *ctx, Call *c, const char *member, const char *types, ...) {
        g_autofree char *path = bus_call_path(c);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_signal(ctx->bus, &msg, path, BUS_CALL_INTERFACE, member);
        if (r >= 0) {
                va_start(ap, types);
                r = sd_bus_message_appendv(msg, types, ap);
                va_end(ap);
        }
        if (r >= 0)
                r = sd_bus_send(ctx->bus, msg, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to emit %s for %s: %m", member, path);
}

void bus_call_emit_hold_state_changed(BusContext *ctx, Call *c, bool is_hold, bool is_remote) {
        call_emit(ctx, c, "HoldStateChanged", "bb", (int) is_hold, (int) is_remote);
}

void bus_call_emit_dtmf_received(BusContext *ctx, Call *c, char digit) {
        char s[2] = { digit, 0 };
        call_emit(ctx, c, "DtmfReceived", "s", s);
}

void bus_call_emit_transfer_requested(BusContext *ctx, Call *c, const char *target) {
        call_emit(ctx, c, "TransferRequested", "s", target);
}

void bus_call_emit_audio_device_changed(BusContext *ctx, Call *c, const char *kind, const char *node,
                                        const char *reason) {
        call_emit(ctx, c, "AudioDeviceChanged", "sss", kind, node, reason);
}
