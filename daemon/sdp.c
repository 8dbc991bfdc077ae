/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <gst/sdp/sdp.h>

#include "macro.h"
#include "sdp.h"

static const char *const direction_names[_SDP_DIRECTION_MAX] = {
        [SDP_DIRECTION_SENDRECV] = "sendrecv",
        [SDP_DIRECTION_SENDONLY] = "sendonly",
        [SDP_DIRECTION_RECVONLY] = "recvonly",
        [SDP_DIRECTION_INACTIVE] = "inactive",
};

const char *sdp_direction_to_string(SdpDirection d) {
        return d >= 0 && d < _SDP_DIRECTION_MAX ? direction_names[d] : "sendrecv";
}

static int direction_from_attrs(guint (*len)(const void *), const GstSDPAttribute *(*get)(const void *, guint),
                                const void *obj) {
        for (guint i = 0; i < len(obj); i++) {
                const GstSDPAttribute *a = get(obj, i);
                for (int d = 0; d < _SDP_DIRECTION_MAX; d++)
                        if (g_strcmp0(a->key, direction_names[d]) == 0)
                                return d;
        }
        return -ENOENT;
}

static guint media_attr_len(const void *m) {
        return gst_sdp_media_attributes_len(m);
}
static const GstSDPAttribute *media_attr_get(const void *m, guint i) {
        return gst_sdp_media_get_attribute(m, i);
}
static guint message_attr_len(const void *m) {
        return gst_sdp_message_attributes_len(m);
}
static const GstSDPAttribute *message_attr_get(const void *m, guint i) {
        return gst_sdp_message_get_attribute(m, i);
}

static int parse(const char *text, GstSDPMessage **ret_msg, GstSDPMedia **ret_audio) {
        GstSDPMessage *msg = NULL;

        if (!text || gst_sdp_message_new_from_text(text, &msg) != GST_SDP_OK || !msg)
                return -EBADMSG;
        for (guint i = 0; i < gst_sdp_message_medias_len(msg); i++) {
                GstSDPMedia *m = (GstSDPMedia *) gst_sdp_message_get_media(msg, i);
                if (g_strcmp0(gst_sdp_media_get_media(m), "audio") == 0) {
                        *ret_msg = msg;
                        *ret_audio = m;
                        return 0;
                }
        }
        gst_sdp_message_free(msg);
        return -EBADMSG;
}

int sdp_get_direction(const char *sdp, SdpDirection *ret) {
        GstSDPMessage *msg;
        GstSDPMedia *audio;
        int r, d;

        r = parse(sdp, &msg, &audio);
        if (r < 0)
                return r;
        d = direction_from_attrs(media_attr_len, media_attr_get, audio);
        if (d < 0)
                d = direction_from_attrs(message_attr_len, message_attr_get, msg);
        gst_sdp_message_free(msg);
        *ret = d < 0 ? SDP_DIRECTION_SENDRECV : (SdpDirection) d;
        return 0;
}

bool sdp_is_hold(SdpDirection d) {
        return d == SDP_DIRECTION_SENDONLY || d == SDP_DIRECTION_INACTIVE;
}

SdpDirection sdp_direction_answer(SdpDirection offered) {
        switch (offered) {
        case SDP_DIRECTION_SENDONLY:
                return SDP_DIRECTION_RECVONLY;
        case SDP_DIRECTION_RECVONLY:
                return SDP_DIRECTION_SENDONLY;
        case SDP_DIRECTION_INACTIVE:
                return SDP_DIRECTION_INACTIVE;
        default:
                return SDP_DIRECTION_SENDRECV;
        }
}

static void remove_directions(guint (*len)(const void *), const GstSDPAttribute *(*get)(const void *, guint),
                              GstSDPResult (*remove)(void *, guint), void *obj) {
        for (guint i = 0; i < len(obj);) {
                const GstSDPAttribute *a = get(obj, i);
                bool is_dir = false;

                for (int d = 0; d < _SDP_DIRECTION_MAX; d++)
                        is_dir = is_dir || g_strcmp0(a->key, direction_names[d]) == 0;
                if (is_dir)
                        remove(obj, i);
                else
                        i++;
        }
}

static GstSDPResult media_attr_remove(void *m, guint i) {
        return gst_sdp_media_remove_attribute(m, i);
}
static GstSDPResult message_attr_remove(void *m, guint i) {
        return gst_sdp_message_remove_attribute(m, i);
}

void sdp_set_origin_session(GstSDPMessage *msg, const char *sess_id, uint64_t version) {
        const GstSDPOrigin *o = gst_sdp_message_get_origin(msg);
        /* set_origin frees the old strings first: copy them before. */
        g_autofree char *user = g_strdup(o && o->username ? o->username : "-");
        g_autofree char *id = g_strdup(sess_id ? sess_id : o && o->sess_id ? o->sess_id : "0");
        g_autofree char *net = g_strdup(o && o->nettype ? o->nettype : "IN");
        g_autofree char *addrtype = g_strdup(o && o->addrtype ? o->addrtype : "IP4");
        g_autofree char *addr = g_strdup(o && o->addr ? o->addr : "0.0.0.0");
        g_autofree char *v = g_strdup_printf("%" PRIu64, version);

        gst_sdp_message_set_origin(msg, user, id, v, net, addrtype, addr);
}

char *sdp_with_direction(const char *sdp, SdpDirection d) {
        GstSDPMessage *msg;
        GstSDPMedia *audio;
        const GstSDPOrigin *o;
        char *text;

        if (parse(sdp, &msg, &audio) < 0 || d < 0 || d >= _SDP_DIRECTION_MAX)
                return NULL;
        remove_directions(message_attr_len, message_attr_get, message_attr_remove, msg);
        remove_directions(media_attr_len, media_attr_get, media_attr_remove, audio);
        gst_sdp_media_add_attribute(audio, direction_names[d], NULL);

        /* RFC 3264 §8: a modified offer carries a session version one higher. */
        o = gst_sdp_message_get_origin(msg);
        if (o && o->sess_version)
                sdp_set_origin_session(msg, NULL, g_ascii_strtoull(o->sess_version, NULL, 10) + 1);
        text = gst_sdp_message_as_text(msg);
        gst_sdp_message_free(msg);
        return text;
}
