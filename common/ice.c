/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <gst/sdp/sdp.h>
#include <nice/agent.h>

#include "ice.h"
#include "log.h"

int ice_restrict_webrtcbin(GstElement *webrtcbin, const char *const *addresses, gboolean upnp) {
        g_autoptr(GstObject) ice = NULL;
        g_autoptr(GObject) agent = NULL;

        g_return_val_if_fail(webrtcbin, -EINVAL);

        g_object_get(webrtcbin, "ice-agent", &ice, NULL);
        if (!ice)
                return -ENOTSUP;
        /* GstWebRTCNice documents "agent" as use-at-your-own-risk; it is the only way to
         * control which addresses are gathered. */
        if (!g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
                return -ENOTSUP;
        g_object_get(ice, "agent", &agent, NULL); /* a NiceAgent */
        if (!agent)
                return -ENOTSUP;

        g_object_set(agent, "upnp", upnp, NULL);

        for (const char *const *a = addresses; a && *a; a++) {
                NiceAddress addr;

                if (!**a)
                        continue;
                nice_address_init(&addr);
                if (!nice_address_set_from_string(&addr, *a))
                        return log_error_errno(-EINVAL, "Invalid ICE local address '%s'.", *a);
                if (!nice_agent_add_local_address(NICE_AGENT(agent), &addr))
                        return log_error_errno(-EINVAL, "libnice refused local address '%s'.", *a);
        }
        return 0;
}

int ice_sdp_keep_udp_candidates(void *gst_sdp_media, guint max_candidates) {
        GstSDPMedia *media = gst_sdp_media;
        guint kept = 0;

        g_return_val_if_fail(media, -EINVAL);

        for (guint i = 0; i < gst_sdp_media_attributes_len(media);) {
                const GstSDPAttribute *attr = gst_sdp_media_get_attribute(media, i);
                gboolean keep = TRUE;

                if (g_strcmp0(attr->key, "candidate") == 0) {
                        g_auto(GStrv) f = g_strsplit(attr->value ? attr->value : "", " ", -1);
                        /* foundation component transport priority address port typ type ... */
                        keep = g_strv_length(f) >= 8 && g_ascii_strcasecmp(f[2], "udp") == 0 &&
                               strcmp(f[7], "host") == 0 && g_strcmp0(f[1], "1") == 0 &&
                               kept < max_candidates;
                        if (keep)
                                kept++;
                }
                if (keep)
                        i++;
                else
                        gst_sdp_media_remove_attribute(media, i);
        }
        return (int) kept;
}
