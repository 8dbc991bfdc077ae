/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <gst/sdp/sdp.h>
#include <nice/agent.h>

#include "ice.h"
#include "log.h"
#include "macro.h"

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

/* libnice 0.1.21 declares no autoptr for its agent. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NiceAgent, g_object_unref)

/* The NiceAgent and its stream id inside a webrtcbin: "agent" is use-at-your-own-risk API, and
 * with max-bundle and one m-line there is exactly one stream, the one nicesrc reads. */
static int ice_agent_stream(GstElement *webrtcbin, NiceAgent **ret_agent, guint *ret_stream) {
        g_autoptr(GstObject) ice = NULL;
        GObject *agent = NULL;
        GstIterator *it;
        GValue v = G_VALUE_INIT;
        guint stream = 0;

        g_object_get(webrtcbin, "ice-agent", &ice, NULL);
        if (!ice || !g_object_class_find_property(G_OBJECT_GET_CLASS(ice), "agent"))
                return -ENOTSUP;
        it = gst_bin_iterate_recurse(GST_BIN(webrtcbin));
        while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
                GstElementFactory *f = gst_element_get_factory(g_value_get_object(&v));

                if (f && g_str_equal(GST_OBJECT_NAME(f), "nicesrc"))
                        g_object_get(g_value_get_object(&v), "stream", &stream, NULL);
                g_value_reset(&v);
        }
        gst_iterator_free(it);
        g_object_get(ice, "agent", &agent, NULL);
        if (!agent || stream == 0) {
                g_clear_object(&agent);
                return -ENOTSUP;
        }
        *ret_agent = NICE_AGENT(agent);
        *ret_stream = stream;
        return 0;
}

char *ice_selected_local_address(GstElement *webrtcbin) {
        g_autoptr(NiceAgent) agent = NULL;
        NiceCandidate *local = NULL, *remote = NULL;
        char text[NICE_ADDRESS_STRING_LEN];
        guint stream;

        if (ice_agent_stream(webrtcbin, &agent, &stream) < 0 ||
            !nice_agent_get_selected_pair(agent, stream, 1, &local, &remote) || !local)
                return NULL;
        nice_address_to_string(&local->addr, text);
        return g_strdup(text);
}

static char *random_ice_chars(size_t n) {
        static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *s = g_malloc(n + 1);

        for (size_t i = 0; i < n; i++)
                s[i] = chars[g_random_int_range(0, 64)];
        s[n] = '\0';
        return s;
}

int ice_restart_local(GstElement *webrtcbin, char **ret_ufrag, char **ret_pwd) {
        g_autoptr(NiceAgent) agent = NULL;
        g_autofree char *ufrag = random_ice_chars(8), *pwd = random_ice_chars(24);
        guint stream;
        int r;

        r = ice_agent_stream(webrtcbin, &agent, &stream);
        if (r < 0)
                return r;
        /* The restart draws random credentials of its own (libnice 0.1.21 renews only the
         * first 4 ufrag characters): ours go into the SDP, so they must be the agent's too. */
        if (!nice_agent_restart_stream(agent, stream) ||
            !nice_agent_set_local_credentials(agent, stream, ufrag, pwd))
                return -EIO;
        *ret_ufrag = TAKE_PTR(ufrag);
        *ret_pwd = TAKE_PTR(pwd);
        return 0;
}

static const char *sdp_ice_attribute(const GstSDPMessage *sdp, const char *key) {
        const char *v = gst_sdp_message_get_attribute_val(sdp, key);

        if (!v && gst_sdp_message_medias_len(sdp) > 0)
                v = gst_sdp_media_get_attribute_val(gst_sdp_message_get_media(sdp, 0), key);
        return v;
}

static GstSDPMessage *sdp_parse(const char *text) {
        GstSDPMessage *sdp = NULL;

        if (!text || gst_sdp_message_new_from_text(text, &sdp) != GST_SDP_OK)
                return NULL;
        if (gst_sdp_message_medias_len(sdp) == 0) {
                gst_sdp_message_free(sdp);
                return NULL;
        }
        return sdp;
}

int ice_set_remote_from_sdp(GstElement *webrtcbin, const char *sdp_text) {
        g_autoptr(NiceAgent) agent = NULL;
        GstSDPMessage *sdp = sdp_parse(sdp_text);
        const GstSDPMedia *media;
        GSList *candidates = NULL;
        const char *ufrag, *pwd;
        guint stream;
        int r, n = 0;

        if (!sdp)
                return -EBADMSG;
        ufrag = sdp_ice_attribute(sdp, "ice-ufrag");
        pwd = sdp_ice_attribute(sdp, "ice-pwd");
        r = ufrag && pwd ? ice_agent_stream(webrtcbin, &agent, &stream) : -EBADMSG;
        if (r < 0)
                goto out;
        if (!nice_agent_set_remote_credentials(agent, stream, ufrag, pwd)) {
                r = -EINVAL;
                goto out;
        }
        media = gst_sdp_message_get_media(sdp, 0);
        for (guint i = 0; i < gst_sdp_media_attributes_len(media); i++) {
                const GstSDPAttribute *a = gst_sdp_media_get_attribute(media, i);
                g_autofree char *line = NULL;
                NiceCandidate *cand;

                if (g_strcmp0(a->key, "candidate") != 0 || !a->value)
                        continue;
                line = g_strdup_printf("a=candidate:%s", a->value);
                cand = nice_agent_parse_remote_candidate_sdp(agent, stream, line);
                /* rtcp-mux: component 1 carries everything. */
                if (cand && cand->component_id == 1)
                        candidates = g_slist_append(candidates, cand);
                else if (cand)
                        nice_candidate_free(cand);
        }
        n = candidates ? nice_agent_set_remote_candidates(agent, stream, 1, candidates) : 0;
        g_slist_free_full(candidates, (GDestroyNotify) nice_candidate_free);
        r = n < 0 ? -EINVAL : n;
out:
        gst_sdp_message_free(sdp);
        return r;
}

char *ice_sdp_ufrag(const char *sdp_text) {
        GstSDPMessage *sdp = sdp_parse(sdp_text);
        char *ufrag;

        if (!sdp)
                return NULL;
        ufrag = g_strdup(sdp_ice_attribute(sdp, "ice-ufrag"));
        gst_sdp_message_free(sdp);
        return ufrag;
}

char *ice_sdp_with_credentials(const char *sdp_text, const char *ufrag, const char *pwd) {
        g_auto(GStrv) lines = NULL;
        GString *out;

        if (!sdp_text || !g_str_has_prefix(sdp_text, "v=0"))
                return NULL;
        lines = g_strsplit(sdp_text, "\r\n", -1);
        out = g_string_new(NULL);
        for (char **l = lines; *l; l++) {
                if (!**l && !l[1])
                        break; /* the text's final CRLF */
                if (g_str_has_prefix(*l, "a=ice-ufrag:"))
                        g_string_append_printf(out, "a=ice-ufrag:%s\r\n", ufrag);
                else if (g_str_has_prefix(*l, "a=ice-pwd:"))
                        g_string_append_printf(out, "a=ice-pwd:%s\r\n", pwd);
                else if (g_str_has_prefix(*l, "o=")) {
                        /* o=<user> <sess-id> <sess-version> ...: a new description, version + 1 */
                        g_auto(GStrv) f = g_strsplit(*l, " ", -1);

                        if (g_strv_length(f) >= 3) {
                                guint64 version = g_ascii_strtoull(f[2], NULL, 10) + 1;
                                g_free(f[2]);
                                f[2] = g_strdup_printf("%" G_GUINT64_FORMAT, version);
                        }
                        {
                                g_autofree char *joined = g_strjoinv(" ", f);
                                g_string_append_printf(out, "%s\r\n", joined);
                        }
                } else
                        g_string_append_printf(out, "%s\r\n", *l);
        }
        return g_string_free(out, FALSE);
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
