/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include "goertzel.h"
#include "ice.h"
#include "log.h"
#include "sim-media.h"

/* How a call's media is wired with GStreamer 1.22 (checked by hand; see README.md):
 *
 *   send:    audiotestsrc (or appsrc for the echo party) ! audioconvert ! audioresample
 *            ! <opusenc ! rtpopuspay | 8 kHz ! mulawenc ! rtppcmupay | alawenc ! rtppcmapay> pt=P
 *            ! valve (hold; shut from the start for the silent party) ! rtpdtmfmux ! queue
 *            ! webrtcbin.sink_0
 *            rtpdtmfsrc pt=<telephone-event PT> ! clock-rate=<codec's> ! valve (shut until the
 *            first digit) ! rtpdtmfmux.priority_sink_0
 *   receive: webrtcbin.src_N ! queue ! <depay ! dec> ! audioconvert ! audioresample
 *            ! S16LE/mono/48 kHz ! appsink           (telephone-event: rtpdtmfdepay ! fakesink)
 *
 * ANSWERER: the sink pad is requested and the payloader linked BEFORE set-remote-description:
 * webrtcbin then associates that pad's transceiver with the offer's audio m-line and answers
 * sendrecv with the payloader's codec and PT. We wait until the send codec's caps have passed the
 * queue in front of webrtcbin before setting the remote description: webrtcbin 1.22 intersects
 * the offer with the caps seen on the sink pad (platform-notes §2). rtpdtmfsrc negotiates its
 * telephone-event caps as soon as it runs, and through rtpdtmfmux they replace the voice caps
 * on that pad: an answer created then lists telephone-event alone (seen with three calls
 * starting at once). Hence the valve on the DTMF branch, shut until the first digit. The voice
 * valve forwards sticky events while it drops buffers, so the wait also ends for the silent
 * party. The answer is created, telephone-event
 * at the send codec's clock rate is added to it by hand (webrtcbin 1.22 drops it, platform-notes
 * §2), set as local description, and only delivered once ICE gathering is complete, when
 * local-description carries every candidate (non-trickle, platform-notes §1).
 *
 * OFFERER: create-offer only once webrtcbin asked for it (on-negotiation-needed) and the first
 * RTP packet has passed the queue (so webrtcbin has stored the send caps; platform-notes §1).
 * webrtcbin's offer then lists the send codec only; the other codec and both telephone-events
 * are added to the SDP text before set-local-description, as bwcalld does.
 *
 * Echo: the receive branch's appsink hands each decoded buffer to an appsrc at the head of the
 * send branch (appsrc is-live, do-timestamp: buffers are stamped with the send side's running
 * time when pushed, so the two branches need no common timeline). Until far-end audio arrives
 * one 20 ms block of silence is pushed, so that caps exist before negotiation.
 *
 * DTMF out: a custom upstream "dtmf-event" on rtpdtmfsrc's src pad starts/stops a digit
 * (platform-notes §2); rtpdtmfmux gives it priority over the voice packets meanwhile.
 *
 * ICE restart (an in-dialog offer with new ICE credentials, either role): webrtcbin 1.22 keeps the
 * old credentials in re-answers and never gathers again, so the restart happens in the NiceAgent
 * under it (restart, our new credentials, the offer's credentials and candidates) and the SIP side
 * writes the answer from its own SDP text. webrtcbin's descriptions keep the old credentials.
 *
 * Media block: probes on webrtcbin's nicesrc/nicesink drop SRTP/SRTCP both ways while set;
 * STUN never passes there and DTLS is let through, so ICE and DTLS stay up.
 *
 * Threads: webrtcbin's promise callbacks and notify signals, pad-added, probes and appsink run on
 * GStreamer threads. They never touch SIP state: they post a MediaEvent to the main context. The
 * frequency math runs in the appsink thread on a per-media buffer guarded by a mutex. Posted
 * events hold a reference; everything else relies on media_free() stopping the pipeline (which
 * joins those threads) before the last reference goes. */

#define SAMPLE_RATE 48000
#define NEGOTIATION_TIMEOUT_MS 15000
#define DTMF_GAP_MS 250
#define MSID_STREAM "bwgw-sim-stream"
#define MSID_TRACK "bwgw-sim-track"
/* What the offerer puts in its offers (the PTs browsers and bwcalld use). */
#define OFFER_PT_OPUS 111
#define OFFER_PT_TE48 101
#define OFFER_PT_TE8 126

struct Media {
        gint n_ref;
        GMainContext *context;
        MediaCallbacks cb;
        void *userdata;
        bool freed; /* main thread only: set by media_free(), silences callbacks */

        MediaMode mode;
        MediaCodec codec;
        bool offerer;
        int send_pt;  /* PT of the send codec */
        int te_pt;    /* negotiated telephone-event PT at the send codec's rate, or -1 */
        int dtmf_pt;  /* the PT rtpdtmfsrc was built with */
        GstSDPMessage *offer; /* answerer: the far end's offer */

        GstElement *pipeline, *webrtc, *appsrc, *valve, *dtmfsrc, *dtmfvalve;
        guint bus_watch;
        guint timeout;
        bool negotiation_started, sdp_delivered, connected_reported, failed_reported;
        bool answer_applied; /* offerer */
        bool negotiation_needed, send_flowing; /* offerer: both needed before create-offer */
        bool first_audio_posted; /* appsink thread, under lock */
        gint gathered; /* atomic: gathering-complete posted */
        gint stopping; /* atomic: media_free() began; GStreamer threads post nothing more */

        /* DTMF out (main thread). */
        GString *dtmf_queue;
        guint dtmf_timer;
        bool dtmf_on;
        unsigned dtmf_duration_ms;

        /* ICE restart (main thread): the far end's current credentials, from its first SDP and
         * then from each offer that restarted ICE. */
        char *remote_ufrag, *remote_pwd;
        /* Its DTLS association (RFC 8842 a=tls-id, and the certificate): another one in an offer
         * is a new session. */
        char *remote_fingerprint, *remote_tls_id;

        /* media-block: probes on nicesrc/nicesink (installed once, main thread) drop SRTP/SRTCP
         * while blocked is set. */
        bool block_probes;
        gint blocked;                  /* atomic */
        gint dropped_sent, dropped_received; /* atomic */

        GMutex lock; /* guards acc/n_acc (appsink thread) */
        int16_t *acc;
        size_t n_acc;
};

typedef enum MediaEventKind {
        MEDIA_EVENT_SEND_CAPS,
        MEDIA_EVENT_SEND_BUFFER,
        MEDIA_EVENT_NEGOTIATION_NEEDED,
        MEDIA_EVENT_REMOTE_SET,
        MEDIA_EVENT_OFFER_CREATED,
        MEDIA_EVENT_ANSWER_CREATED,
        MEDIA_EVENT_LOCAL_SET,
        MEDIA_EVENT_GATHERED,
        MEDIA_EVENT_CONNECTION_STATE,
        MEDIA_EVENT_FREQUENCY,
        MEDIA_EVENT_FIRST_AUDIO,
} MediaEventKind;

typedef struct MediaEvent {
        Media *m; /* referenced */
        MediaEventKind kind;
        GstWebRTCSessionDescription *desc;
        char *error; /* set when a promise failed */
        int state;
        double hz, dbfs;
} MediaEvent;

static const char *const codec_names[] = {
        [MEDIA_CODEC_OPUS] = "opus",
        [MEDIA_CODEC_PCMU] = "pcmu",
        [MEDIA_CODEC_PCMA] = "pcma",
};

const char *media_codec_name(MediaCodec codec) {
        return (size_t) codec < ELEMENTSOF(codec_names) ? codec_names[codec] : "?";
}

int media_codec_from_string(const char *s, MediaCodec *ret) {
        for (size_t i = 0; s && i < ELEMENTSOF(codec_names); i++)
                if (g_ascii_strcasecmp(s, codec_names[i]) == 0) {
                        *ret = (MediaCodec) i;
                        return 0;
                }
        return -EINVAL;
}

MediaCodec media_get_codec(const Media *m) {
        return m->codec;
}

static unsigned codec_rate(MediaCodec codec) {
        return codec == MEDIA_CODEC_OPUS ? 48000 : 8000;
}

static const char *codec_encoding(MediaCodec codec) {
        return codec == MEDIA_CODEC_OPUS ? "opus" : codec == MEDIA_CODEC_PCMU ? "PCMU" : "PCMA";
}

static Media *media_ref(Media *m) {
        g_atomic_int_inc(&m->n_ref);
        return m;
}

static void media_unref(Media *m) {
        if (!m || !g_atomic_int_dec_and_test(&m->n_ref))
                return;
        if (m->pipeline)
                gst_object_unref(m->pipeline);
        if (m->webrtc)
                gst_object_unref(m->webrtc);
        if (m->appsrc)
                gst_object_unref(m->appsrc);
        if (m->valve)
                gst_object_unref(m->valve);
        if (m->dtmfsrc)
                gst_object_unref(m->dtmfsrc);
        if (m->dtmfvalve)
                gst_object_unref(m->dtmfvalve);
        if (m->offer)
                gst_sdp_message_free(m->offer);
        if (m->dtmf_queue)
                g_string_free(m->dtmf_queue, TRUE);
        g_free(m->remote_ufrag);
        g_free(m->remote_pwd);
        g_free(m->remote_fingerprint);
        g_free(m->remote_tls_id);
        g_main_context_unref(m->context);
        g_mutex_clear(&m->lock);
        g_free(m->acc);
        g_free(m);
}

static void media_event_free(gpointer p) {
        MediaEvent *e = p;

        if (e->desc)
                gst_webrtc_session_description_free(e->desc);
        g_free(e->error);
        media_unref(e->m);
        g_free(e);
}

static gboolean media_dispatch(gpointer p);

/* Any thread: queue e for the main context (never runs synchronously). Once media_free() has
 * begun nothing is queued: a webrtcbin promise interrupted while the pipeline is finalized must
 * not resurrect a Media whose last reference is going away. */
static void media_post(Media *m, MediaEvent *e) {
        g_autoptr(GSource) src = NULL;

        if (g_atomic_int_get(&m->stopping)) {
                if (e->desc)
                        gst_webrtc_session_description_free(e->desc);
                g_free(e->error);
                g_free(e);
                return;
        }
        src = g_idle_source_new();
        e->m = media_ref(m);
        g_source_set_priority(src, G_PRIORITY_DEFAULT);
        g_source_set_callback(src, media_dispatch, e, media_event_free);
        g_source_attach(src, m->context);
}

static void media_post_kind(Media *m, MediaEventKind kind) {
        MediaEvent *e = g_new0(MediaEvent, 1);

        e->kind = kind;
        media_post(m, e);
}

/* ---- SDP helpers ---- */

static GstSDPMedia *sdp_audio_media(const GstSDPMessage *sdp, guint *ret_index) {
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                const GstSDPMedia *md = gst_sdp_message_get_media(sdp, i);
                if (g_strcmp0(gst_sdp_media_get_media(md), "audio") == 0) {
                        if (ret_index)
                                *ret_index = i;
                        return (GstSDPMedia *) md;
                }
        }
        return NULL;
}

static bool sdp_media_has_format(const GstSDPMedia *md, int pt) {
        g_autofree char *s = g_strdup_printf("%d", pt);

        for (guint i = 0; i < gst_sdp_media_formats_len(md); i++)
                if (g_strcmp0(gst_sdp_media_get_format(md, i), s) == 0)
                        return true;
        return false;
}

/* The encoding and clock rate of an "a=rtpmap" for pt, or false. */
static bool sdp_rtpmap(const GstSDPMedia *md, int pt, char **ret_encoding, unsigned *ret_rate) {
        for (guint i = 0; i < gst_sdp_media_attributes_len(md); i++) {
                const GstSDPAttribute *a = gst_sdp_media_get_attribute(md, i);
                g_auto(GStrv) f = NULL, enc = NULL;
                char *end = NULL;
                long p;

                if (g_strcmp0(a->key, "rtpmap") != 0 || !a->value)
                        continue;
                f = g_strsplit(a->value, " ", 2);
                if (g_strv_length(f) != 2)
                        continue;
                p = strtol(f[0], &end, 10);
                if (!end || *end || p != pt)
                        continue;
                enc = g_strsplit(g_strstrip(f[1]), "/", 3);
                if (g_strv_length(enc) < 2)
                        return false;
                *ret_encoding = g_strdup(enc[0]);
                *ret_rate = (unsigned) strtoul(enc[1], NULL, 10);
                return true;
        }
        return false;
}

/* PT of "a=rtpmap:<pt> <encoding>/<rate>..." (case-insensitive encoding) among the m-line's
 * formats; for PCMU/PCMA also the static PT 0/8 without an rtpmap. -1 if absent. */
static int sdp_find_pt(const GstSDPMedia *md, const char *encoding, unsigned rate) {
        if (!md)
                return -1;
        for (guint i = 0; i < gst_sdp_media_formats_len(md); i++) {
                const char *fmt = gst_sdp_media_get_format(md, i);
                g_autofree char *enc = NULL;
                unsigned r = 0;
                char *end = NULL;
                long pt = strtol(fmt, &end, 10);

                if (!end || *end || pt < 0 || pt > 127)
                        continue;
                if (sdp_rtpmap(md, (int) pt, &enc, &r)) {
                        if (g_ascii_strcasecmp(enc, encoding) == 0 && r == rate)
                                return (int) pt;
                } else if ((pt == 0 && g_ascii_strcasecmp(encoding, "PCMU") == 0 && rate == 8000) ||
                           (pt == 8 && g_ascii_strcasecmp(encoding, "PCMA") == 0 && rate == 8000))
                        return (int) pt;
        }
        return -1;
}

static bool sdp_media_has_attribute(const GstSDPMedia *md, const char *key) {
        return gst_sdp_media_get_attribute_val(md, key) != NULL;
}

static void sdp_media_remove_attributes(GstSDPMedia *md, const char *key) {
        for (guint i = 0; i < gst_sdp_media_attributes_len(md);) {
                if (g_strcmp0(gst_sdp_media_get_attribute(md, i)->key, key) == 0)
                        gst_sdp_media_remove_attribute(md, i);
                else
                        i++;
        }
}

static const char *sdp_direction(const GstSDPMessage *sdp, const GstSDPMedia *md) {
        static const char *const dirs[] = { "sendrecv", "sendonly", "recvonly", "inactive" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (md && sdp_media_has_attribute(md, dirs[i]))
                        return dirs[i];
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (gst_sdp_message_get_attribute_val(sdp, dirs[i]))
                        return dirs[i];
        return "sendrecv";
}

static int sdp_parse(const char *text, GstSDPMessage **ret) {
        GstSDPMessage *sdp = NULL;

        if (!text || gst_sdp_message_new_from_text(text, &sdp) != GST_SDP_OK || !sdp)
                return -EBADMSG;
        if (gst_sdp_message_medias_len(sdp) == 0) {
                gst_sdp_message_free(sdp);
                return -EBADMSG;
        }
        *ret = sdp;
        return 0;
}

static void sdp_bump_version(GstSDPMessage *sdp) {
        /* RFC 3264 §8: a changed SDP carries the next o= version. */
        const GstSDPOrigin *o = gst_sdp_message_get_origin(sdp);
        guint64 version = g_ascii_strtoull(o->sess_version ? o->sess_version : "0", NULL, 10);
        g_autofree char *v = g_strdup_printf("%" G_GUINT64_FORMAT, version + 1);
        g_autofree char *user = g_strdup(o->username), *id = g_strdup(o->sess_id),
                        *nt = g_strdup(o->nettype), *at = g_strdup(o->addrtype), *addr = g_strdup(o->addr);

        gst_sdp_message_set_origin(sdp, user, id, v, nt, at, addr);
}

/* An ICE attribute (ice-ufrag, ice-pwd) of md, else of the session (RFC 8839 §5.4 allows both). */
static const char *sdp_ice_attr(const GstSDPMessage *sdp, const GstSDPMedia *md, const char *key) {
        const char *v = md ? gst_sdp_media_get_attribute_val(md, key) : NULL;

        return v ? v : gst_sdp_message_get_attribute_val(sdp, key);
}

/* Replaces every key attribute of md (or adds one when add_missing and there is none). */
static void sdp_media_set_attribute(GstSDPMedia *md, const char *key, const char *value, bool add_missing) {
        bool found = false;

        for (guint i = 0; i < gst_sdp_media_attributes_len(md); i++) {
                GstSDPAttribute a = {};

                if (g_strcmp0(gst_sdp_media_get_attribute(md, i)->key, key) != 0)
                        continue;
                gst_sdp_attribute_set(&a, key, value);
                gst_sdp_media_replace_attribute(md, i, &a); /* takes a's strings */
                found = true;
        }
        if (!found && add_missing)
                gst_sdp_media_add_attribute(md, key, value);
}

int media_check_offer(const char *offer_sdp, MediaCodec codec) {
        GstSDPMessage *sdp = NULL;
        const GstSDPMedia *md;
        int r;

        r = sdp_parse(offer_sdp, &sdp);
        if (r < 0)
                return r;
        md = sdp_audio_media(sdp, NULL);
        r = !md                                                                     ? -EBADMSG
            : sdp_find_pt(md, codec_encoding(codec), codec_rate(codec)) < 0 ? -EPROTONOSUPPORT
                                                                                    : 0;
        gst_sdp_message_free(sdp);
        return r;
}

const char *media_sdp_direction(const char *text) {
        GstSDPMessage *sdp = NULL;
        const char *dir;

        if (sdp_parse(text, &sdp) < 0)
                return NULL;
        dir = sdp_direction(sdp, sdp_audio_media(sdp, NULL));
        gst_sdp_message_free(sdp);
        return dir;
}

const char *media_direction_mirror(const char *d) {
        return g_strcmp0(d, "sendonly") == 0   ? "recvonly"
               : g_strcmp0(d, "recvonly") == 0 ? "sendonly"
               : g_strcmp0(d, "inactive") == 0 ? "inactive"
                                               : "sendrecv";
}

char *media_sdp_with_direction(const char *text, const char *direction, bool bump_version) {
        GstSDPMessage *sdp = NULL;
        char *out;

        if (sdp_parse(text, &sdp) < 0)
                return NULL;
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(sdp, i);

                sdp_media_remove_attributes(md, "sendrecv");
                sdp_media_remove_attributes(md, "sendonly");
                sdp_media_remove_attributes(md, "recvonly");
                sdp_media_remove_attributes(md, "inactive");
                gst_sdp_media_add_attribute(md, direction, "");
        }
        /* A session-level direction would contradict the media-level one. */
        for (guint i = 0; i < gst_sdp_message_attributes_len(sdp);) {
                const char *k = gst_sdp_message_get_attribute(sdp, i)->key;

                if (g_strcmp0(k, "sendrecv") == 0 || g_strcmp0(k, "sendonly") == 0 ||
                    g_strcmp0(k, "recvonly") == 0 || g_strcmp0(k, "inactive") == 0)
                        gst_sdp_message_remove_attribute(sdp, i);
                else
                        i++;
        }
        if (bump_version)
                sdp_bump_version(sdp);
        out = gst_sdp_message_as_text(sdp);
        gst_sdp_message_free(sdp);
        return out;
}

char *media_sdp_with_ice_credentials(const char *text, const char *ufrag, const char *pwd,
                                     bool bump_version) {
        GstSDPMessage *sdp = NULL;
        bool session_level = false;
        char *out;

        if (sdp_parse(text, &sdp) < 0)
                return NULL;
        for (guint i = 0; i < gst_sdp_message_attributes_len(sdp); i++) {
                const GstSDPAttribute *a = gst_sdp_message_get_attribute(sdp, i);
                GstSDPAttribute n = {};

                if (g_strcmp0(a->key, "ice-ufrag") != 0 && g_strcmp0(a->key, "ice-pwd") != 0)
                        continue;
                session_level = true;
                gst_sdp_attribute_set(&n, a->key, g_str_equal(a->key, "ice-ufrag") ? ufrag : pwd);
                gst_sdp_message_replace_attribute(sdp, i, &n);
        }
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(sdp, i);

                if (gst_sdp_media_get_port(md) == 0)
                        continue; /* a rejected section has no transport */
                /* A section without its own credentials inherits the session's. */
                sdp_media_set_attribute(md, "ice-ufrag", ufrag, !session_level);
                sdp_media_set_attribute(md, "ice-pwd", pwd, !session_level);
        }
        if (bump_version)
                sdp_bump_version(sdp);
        out = gst_sdp_message_as_text(sdp);
        gst_sdp_message_free(sdp);
        return out;
}

char *media_sdp_settle_setup(const char *local_offer, const char *remote_answer) {
        GstSDPMessage *local = NULL, *remote = NULL;
        const GstSDPMedia *rm;
        const char *rsetup, *ours;
        char *out;

        if (sdp_parse(local_offer, &local) < 0)
                return NULL;
        if (sdp_parse(remote_answer, &remote) < 0) {
                gst_sdp_message_free(local);
                return NULL;
        }
        rm = sdp_audio_media(remote, NULL);
        rsetup = rm ? gst_sdp_media_get_attribute_val(rm, "setup") : NULL;
        if (!rsetup)
                rsetup = gst_sdp_message_get_attribute_val(remote, "setup");
        /* RFC 5763: the answerer picked a role; ours is the other one from now on. */
        ours = g_strcmp0(rsetup, "passive") == 0 ? "active" : "passive";
        for (guint i = 0; i < gst_sdp_message_medias_len(local); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(local, i);

                if (!sdp_media_has_attribute(md, "setup"))
                        continue;
                sdp_media_remove_attributes(md, "setup");
                gst_sdp_media_add_attribute(md, "setup", ours);
        }
        out = gst_sdp_message_as_text(local);
        gst_sdp_message_free(local);
        gst_sdp_message_free(remote);
        return out;
}

/* Adds "<pt> <rtpmap>" (and fmtp) to md unless the PT is listed already. */
static void sdp_media_add_codec(GstSDPMedia *md, int pt, const char *rtpmap, const char *fmtp) {
        g_autofree char *p = g_strdup_printf("%d", pt), *map = NULL, *fm = NULL;

        if (sdp_media_has_format(md, pt))
                return;
        gst_sdp_media_add_format(md, p);
        map = g_strdup_printf("%d %s", pt, rtpmap);
        gst_sdp_media_add_attribute(md, "rtpmap", map);
        if (fmtp) {
                fm = g_strdup_printf("%d %s", pt, fmtp);
                gst_sdp_media_add_attribute(md, "fmtp", fm);
        }
}

/* Before set-local-description of an answer: telephone-event at the send codec's rate with the
 * offer's PT (platform-notes §2: webrtcbin 1.22 leaves it out, and only a local description that
 * lists it makes webrtcbin accept the PT on receive). */
static void media_answer_add_telephone_event(Media *m, GstSDPMessage *answer) {
        GstSDPMedia *md = sdp_audio_media(answer, NULL);

        if (!md || m->te_pt < 0 || sdp_find_pt(md, "telephone-event", codec_rate(m->codec)) >= 0)
                return;
        if (sdp_media_has_format(md, m->te_pt)) {
                m->te_pt = -1; /* PT taken by something else; leave the answer alone */
                return;
        }
        if (m->codec == MEDIA_CODEC_OPUS)
                sdp_media_add_codec(md, m->te_pt, "telephone-event/48000", "0-15");
        else
                sdp_media_add_codec(md, m->te_pt, "telephone-event/8000", "0-15");
}

/* Before set-local-description of an offer: the codecs webrtcbin left out (it only lists what
 * it saw on the sink pad). */
static void media_offer_add_codecs(Media *m, GstSDPMessage *offer) {
        GstSDPMedia *md = sdp_audio_media(offer, NULL);

        if (!md)
                return;
        if (m->codec == MEDIA_CODEC_OPUS)
                sdp_media_add_codec(md, 0, "PCMU/8000", NULL);
        else
                sdp_media_add_codec(md, OFFER_PT_OPUS, "opus/48000/2", "minptime=10;useinbandfec=1");
        if (m->codec == MEDIA_CODEC_OPUS) {
                sdp_media_add_codec(md, OFFER_PT_TE48, "telephone-event/48000", "0-15");
                sdp_media_add_codec(md, OFFER_PT_TE8, "telephone-event/8000", "0-15");
        } else {
                sdp_media_add_codec(md, OFFER_PT_TE8, "telephone-event/8000", "0-15");
                sdp_media_add_codec(md, OFFER_PT_TE48, "telephone-event/48000", "0-15");
        }
}

/* After gathering: what goes on the wire. Returns 0 or -EBADMSG with *ret_error set. */
static int media_sdp_finish(Media *m, GstSDPMessage *sdp, const char **ret_error) {
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(sdp, i);
                const GstSDPMedia *offered = m->offer && i < gst_sdp_message_medias_len(m->offer)
                                                     ? gst_sdp_message_get_media(m->offer, i)
                                                     : NULL;
                const char *setup, *cand;
                int kept;

                if (gst_sdp_media_get_port(md) == 0)
                        continue; /* rejected section */

                /* Like an ICE-Lite SBC: a single host candidate (checklist "Media"). */
                kept = ice_sdp_keep_udp_candidates(md, 1);
                if (kept <= 0) {
                        *ret_error = "no UDP host candidate was gathered";
                        return -EBADMSG;
                }
                /* c= and the m= port from that candidate, for peers that look at them. */
                cand = gst_sdp_media_get_attribute_val(md, "candidate");
                if (cand) {
                        g_auto(GStrv) f = g_strsplit(cand, " ", -1);

                        if (g_strv_length(f) >= 6) {
                                guint port = (guint) strtoul(f[5], NULL, 10);

                                while (gst_sdp_media_connections_len(md) > 0)
                                        gst_sdp_media_remove_connection(md, 0);
                                gst_sdp_media_add_connection(md, "IN", strchr(f[4], ':') ? "IP6" : "IP4",
                                                             f[4], 0, 0);
                                if (port > 0)
                                        gst_sdp_media_set_port_info(md, port, 1);
                        }
                }

                if (!sdp_media_has_attribute(md, "rtcp-mux"))
                        gst_sdp_media_add_attribute(md, "rtcp-mux", "");
                if (!sdp_media_has_attribute(md, "mid") && offered &&
                    gst_sdp_media_get_attribute_val(offered, "mid"))
                        gst_sdp_media_add_attribute(md, "mid",
                                                    gst_sdp_media_get_attribute_val(offered, "mid"));
                /* Chromium fires its track event without a stream unless the SDP has a=msid
                 * (gateway-protocol.md, later findings). webrtcbin 1.22 only writes a=ssrc msid. */
                if (!sdp_media_has_attribute(md, "msid"))
                        gst_sdp_media_add_attribute(md, "msid", MSID_STREAM " " MSID_TRACK);
                if (!sdp_media_has_attribute(md, "fingerprint") &&
                    !gst_sdp_message_get_attribute_val(sdp, "fingerprint")) {
                        *ret_error = "local SDP has no DTLS fingerprint";
                        return -EBADMSG;
                }
                if (m->offerer)
                        continue; /* a=setup:actpass, as webrtcbin wrote it */
                setup = gst_sdp_media_get_attribute_val(md, "setup");
                if (!setup || (strcmp(setup, "active") != 0 && strcmp(setup, "passive") != 0)) {
                        /* webrtcbin answers "active" to an actpass offer; anything else would
                         * be a webrtcbin change worth knowing about. */
                        log_warning("webrtcbin answered a=setup:%s; sending a=setup:active instead.",
                                    setup ? setup : "(none)");
                        sdp_media_remove_attributes(md, "setup");
                        gst_sdp_media_add_attribute(md, "setup", "active");
                }
        }
        return 0;
}

/* The far end's ICE credentials as its SDP gives them; an offer with others restarts ICE. */
static void media_remember_remote_ice(Media *m, const GstSDPMessage *sdp, const GstSDPMedia *md) {
        g_free(m->remote_fingerprint);
        m->remote_fingerprint = g_strdup(sdp_ice_attr(sdp, md, "fingerprint"));
        g_free(m->remote_tls_id);
        m->remote_tls_id = g_strdup(sdp_ice_attr(sdp, md, "tls-id"));
        g_free(m->remote_ufrag);
        g_free(m->remote_pwd);
        m->remote_ufrag = g_strdup(sdp_ice_attr(sdp, md, "ice-ufrag"));
        m->remote_pwd = g_strdup(sdp_ice_attr(sdp, md, "ice-pwd"));
}

/* ---- negotiation (main thread) ---- */

static void media_fail_negotiation(Media *m, int error, const char *message) {
        if (m->sdp_delivered) {
                /* After the SDP went out, a failing promise (set-remote-description of the
                 * offerer's answer) is a media failure. */
                if (!m->failed_reported) {
                        m->failed_reported = true;
                        log_warning("Media failed: %s", message);
                        if (m->cb.failed)
                                m->cb.failed(m, message, m->userdata);
                }
                return;
        }
        m->sdp_delivered = true;
        if (m->timeout) {
                g_source_remove(m->timeout);
                m->timeout = 0;
        }
        log_warning("Media negotiation failed: %s", message);
        if (m->cb.sdp_ready)
                m->cb.sdp_ready(m, NULL, error, message, m->userdata);
}

static void on_promise_remote_set(GstPromise *promise, gpointer userdata);
static void on_promise_answer(GstPromise *promise, gpointer userdata);
static void on_promise_offer(GstPromise *promise, gpointer userdata);
static void on_promise_local_set(GstPromise *promise, gpointer userdata);

/* Answerer: the far end's offer goes in once the send caps reached webrtcbin. */
static void media_negotiate_answer(Media *m) {
        GstWebRTCSessionDescription *desc;
        GstSDPMessage *copy = NULL;
        GstPromise *p;

        if (m->negotiation_started)
                return;
        m->negotiation_started = true;
        gst_sdp_message_copy(m->offer, &copy);
        desc = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, copy);
        /* The promise callbacks own the promise (they unref it); userdata needs no reference
         * because the pipeline is stopped before the Media goes away. */
        p = gst_promise_new_with_change_func(on_promise_remote_set, m, NULL);
        g_signal_emit_by_name(m->webrtc, "set-remote-description", desc, p);
        gst_webrtc_session_description_free(desc);
}

/* Offerer: create-offer once webrtcbin wants it and the send caps are stored. */
static void media_maybe_offer(Media *m) {
        GstPromise *p;

        if (!m->offerer || m->negotiation_started || !m->negotiation_needed || !m->send_flowing)
                return;
        m->negotiation_started = true;
        p = gst_promise_new_with_change_func(on_promise_offer, m, NULL);
        g_signal_emit_by_name(m->webrtc, "create-offer", NULL, p);
}

static void media_on_remote_set(Media *m) {
        GstPromise *p;

        if (m->offerer)
                return; /* the answer is in; ICE and DTLS take it from here */
        p = gst_promise_new_with_change_func(on_promise_answer, m, NULL);
        g_signal_emit_by_name(m->webrtc, "create-answer", NULL, p);
}

static void media_on_local_created(Media *m, GstWebRTCSessionDescription *desc) {
        GstPromise *p;

        if (m->offerer)
                media_offer_add_codecs(m, desc->sdp);
        else
                media_answer_add_telephone_event(m, desc->sdp);
        p = gst_promise_new_with_change_func(on_promise_local_set, m, NULL);
        g_signal_emit_by_name(m->webrtc, "set-local-description", desc, p);
}

static void media_on_gathered(Media *m) {
        GstWebRTCSessionDescription *local = NULL;
        GstSDPMessage *sdp = NULL;
        const char *error = NULL;
        g_autofree char *text = NULL;

        if (m->sdp_delivered)
                return;
        g_object_get(m->webrtc, "local-description", &local, NULL);
        if (!local) {
                media_fail_negotiation(m, -EPROTO, "no local description after ICE gathering");
                return;
        }
        gst_sdp_message_copy(local->sdp, &sdp);
        gst_webrtc_session_description_free(local);
        if (media_sdp_finish(m, sdp, &error) < 0) {
                gst_sdp_message_free(sdp);
                media_fail_negotiation(m, -EBADMSG, error);
                return;
        }
        text = gst_sdp_message_as_text(sdp);
        gst_sdp_message_free(sdp);

        m->sdp_delivered = true;
        if (m->timeout) {
                g_source_remove(m->timeout);
                m->timeout = 0;
        }
        if (m->cb.sdp_ready)
                m->cb.sdp_ready(m, text, 0, NULL, m->userdata);
}

static gboolean media_dispatch(gpointer p) {
        MediaEvent *e = p;
        Media *m = e->m;

        if (m->freed)
                return G_SOURCE_REMOVE;

        if (e->error && e->kind != MEDIA_EVENT_FREQUENCY && e->kind != MEDIA_EVENT_FIRST_AUDIO) {
                media_fail_negotiation(m, -EPROTO, e->error);
                return G_SOURCE_REMOVE;
        }
        switch (e->kind) {
        case MEDIA_EVENT_SEND_CAPS:
                if (!m->offerer) {
                        media_negotiate_answer(m);
                        break;
                }
                G_GNUC_FALLTHROUGH;
        case MEDIA_EVENT_SEND_BUFFER:
                m->send_flowing = true;
                media_maybe_offer(m);
                break;
        case MEDIA_EVENT_NEGOTIATION_NEEDED:
                m->negotiation_needed = true;
                media_maybe_offer(m);
                break;
        case MEDIA_EVENT_REMOTE_SET:
                media_on_remote_set(m);
                break;
        case MEDIA_EVENT_OFFER_CREATED:
        case MEDIA_EVENT_ANSWER_CREATED:
                media_on_local_created(m, e->desc);
                break;
        case MEDIA_EVENT_LOCAL_SET:
                break; /* gathering completion drives the rest */
        case MEDIA_EVENT_GATHERED:
                media_on_gathered(m);
                break;
        case MEDIA_EVENT_CONNECTION_STATE:
                if (e->state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED && !m->connected_reported) {
                        m->connected_reported = true;
                        log_debug("Media connected.");
                        if (m->cb.connected)
                                m->cb.connected(m, m->userdata);
                } else if (e->state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED && !m->failed_reported) {
                        m->failed_reported = true;
                        if (m->cb.failed)
                                m->cb.failed(m, "ICE/DTLS connection failed", m->userdata);
                }
                break;
        case MEDIA_EVENT_FREQUENCY:
                if (m->cb.frequency)
                        m->cb.frequency(m, e->hz, e->dbfs, m->userdata);
                break;
        case MEDIA_EVENT_FIRST_AUDIO:
                if (m->cb.first_audio)
                        m->cb.first_audio(m, e->dbfs, m->userdata);
                break;
        }
        return G_SOURCE_REMOVE;
}

static gboolean media_on_timeout(gpointer userdata) {
        Media *m = media_ref(userdata); /* the callback may media_free() it */

        m->timeout = 0;
        media_fail_negotiation(m, -ETIMEDOUT, "timed out creating the local SDP (ICE gathering?)");
        media_unref(m);
        return G_SOURCE_REMOVE;
}

/* ---- GStreamer threads ---- */

/* Returns the reply if the promise was answered without an error; otherwise sets *ret_error. */
static const GstStructure *promise_reply(GstPromise *promise, char **ret_error) {
        const GstStructure *reply;
        GError *err = NULL;

        if (gst_promise_wait(promise) != GST_PROMISE_RESULT_REPLIED) {
                *ret_error = g_strdup("webrtcbin did not answer the request");
                return NULL;
        }
        reply = gst_promise_get_reply(promise);
        if (reply && gst_structure_has_field(reply, "error")) {
                gst_structure_get(reply, "error", G_TYPE_ERROR, &err, NULL);
                *ret_error = g_strdup(err ? err->message : "webrtcbin reported an error");
                g_clear_error(&err);
                return NULL;
        }
        return reply;
}

static void on_promise_remote_set(GstPromise *promise, gpointer userdata) {
        MediaEvent *e = g_new0(MediaEvent, 1);

        e->kind = MEDIA_EVENT_REMOTE_SET;
        (void) promise_reply(promise, &e->error);
        gst_promise_unref(promise);
        media_post(userdata, e);
}

static void promise_description(GstPromise *promise, gpointer userdata, MediaEventKind kind,
                                const char *field) {
        MediaEvent *e = g_new0(MediaEvent, 1);
        const GstStructure *reply;

        e->kind = kind;
        reply = promise_reply(promise, &e->error);
        if (reply)
                gst_structure_get(reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &e->desc, NULL);
        if (!e->error && !e->desc)
                e->error = g_strdup_printf("webrtcbin created no %s", field);
        gst_promise_unref(promise);
        media_post(userdata, e);
}

static void on_promise_answer(GstPromise *promise, gpointer userdata) {
        promise_description(promise, userdata, MEDIA_EVENT_ANSWER_CREATED, "answer");
}

static void on_promise_offer(GstPromise *promise, gpointer userdata) {
        promise_description(promise, userdata, MEDIA_EVENT_OFFER_CREATED, "offer");
}

static void on_promise_local_set(GstPromise *promise, gpointer userdata) {
        MediaEvent *e = g_new0(MediaEvent, 1);

        e->kind = MEDIA_EVENT_LOCAL_SET;
        (void) promise_reply(promise, &e->error);
        gst_promise_unref(promise);
        media_post(userdata, e);
}

static void on_negotiation_needed(GstElement *webrtc, gpointer userdata) {
        media_post_kind(userdata, MEDIA_EVENT_NEGOTIATION_NEEDED);
}

static void on_gathering_state(GstElement *webrtc, GParamSpec *pspec, gpointer userdata) {
        Media *m = userdata;
        GstWebRTCICEGatheringState st;

        g_object_get(webrtc, "ice-gathering-state", &st, NULL);
        if (st == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE &&
            g_atomic_int_compare_and_exchange(&m->gathered, 0, 1))
                media_post_kind(m, MEDIA_EVENT_GATHERED);
}

static void on_connection_state(GstElement *webrtc, GParamSpec *pspec, gpointer userdata) {
        MediaEvent *e = g_new0(MediaEvent, 1);
        GstWebRTCPeerConnectionState st;

        g_object_get(webrtc, "connection-state", &st, NULL);
        e->kind = MEDIA_EVENT_CONNECTION_STATE;
        e->state = (int) st;
        media_post(userdata, e);
}

static GstPadProbeReturn on_send_caps(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        Media *m = userdata;
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
        const GstStructure *st;
        GstCaps *caps = NULL;
        const char *enc;

        if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS)
                return GST_PAD_PROBE_OK;
        /* Only the send codec's caps count (telephone-event caps are held back by the DTMF
         * valve, but be sure). */
        gst_event_parse_caps(ev, &caps);
        st = caps ? gst_caps_get_structure(caps, 0) : NULL;
        enc = st ? gst_structure_get_string(st, "encoding-name") : NULL;
        if (!enc || g_ascii_strcasecmp(enc, codec_encoding(m->codec)) != 0)
                return GST_PAD_PROBE_OK;
        media_post_kind(m, MEDIA_EVENT_SEND_CAPS);
        return GST_PAD_PROBE_REMOVE;
}

static GstPadProbeReturn on_send_buffer(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        /* Sticky events go out before the buffer, so webrtcbin has stored the CAPS by now. */
        media_post_kind(userdata, MEDIA_EVENT_SEND_BUFFER);
        return GST_PAD_PROBE_REMOVE;
}

/* appsink thread: accumulate 1 s blocks for the frequency events; echo the audio back. */
static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer userdata) {
        Media *m = userdata;
        g_autoptr(GstSample) sample = gst_app_sink_pull_sample(sink);
        GstBuffer *buf = sample ? gst_sample_get_buffer(sample) : NULL;
        GstMapInfo map;
        const int16_t *pcm;
        size_t n;

        if (!buf || !gst_buffer_map(buf, &map, GST_MAP_READ))
                return GST_FLOW_OK;
        pcm = (const int16_t *) map.data;
        n = map.size / sizeof(int16_t);

        if (m->mode == MEDIA_ECHO && m->appsrc && n > 0) {
                GstBuffer *copy = gst_buffer_new_memdup(map.data, map.size);

                GST_BUFFER_DURATION(copy) = gst_util_uint64_scale(n, GST_SECOND, SAMPLE_RATE);
                (void) gst_app_src_push_buffer(GST_APP_SRC(m->appsrc), copy);
        }

        g_mutex_lock(&m->lock);
        /* The first buffer that is not near-silence: what benchmarks call "first audio heard at
         * the far end" (the 1 s frequency blocks are too coarse for that). */
        if (!m->first_audio_posted && n > 0) {
                double sum = 0, dbfs;

                for (size_t i = 0; i < n; i++)
                        sum += (double) pcm[i] * pcm[i];
                dbfs = sum > 0 ? 20.0 * log10(sqrt(sum / n) / 32768.0) : -100.0;
                if (dbfs > -50.0) {
                        MediaEvent *e = g_new0(MediaEvent, 1);

                        m->first_audio_posted = true;
                        e->kind = MEDIA_EVENT_FIRST_AUDIO;
                        e->dbfs = dbfs;
                        media_post(m, e);
                }
        }
        while (n > 0) {
                size_t take = MIN(n, (size_t) SAMPLE_RATE - m->n_acc);

                memcpy(m->acc + m->n_acc, pcm, take * sizeof(int16_t));
                m->n_acc += take;
                pcm += take;
                n -= take;
                if (m->n_acc == SAMPLE_RATE) {
                        MediaEvent *e = g_new0(MediaEvent, 1);

                        e->kind = MEDIA_EVENT_FREQUENCY;
                        if (dominant_frequency(m->acc, m->n_acc, SAMPLE_RATE, &e->hz, &e->dbfs) < 0)
                                e->hz = e->dbfs = 0;
                        m->n_acc = 0;
                        media_post(m, e);
                }
        }
        g_mutex_unlock(&m->lock);
        gst_buffer_unmap(buf, &map);
        return GST_FLOW_OK;
}

static void media_link_receive(Media *m, GstPad *pad, const GstCaps *caps) {
        const GstStructure *st = gst_caps_get_structure(caps, 0);
        const char *enc = st ? gst_structure_get_string(st, "encoding-name") : NULL;
        const char *decode = NULL;
        g_autofree char *desc = NULL;
        g_autoptr(GError) err = NULL;
        GstElement *bin;
        GstPad *sinkpad;

        if (enc && g_ascii_strcasecmp(enc, "OPUS") == 0)
                decode = "rtpopusdepay ! opusdec";
        else if (enc && g_ascii_strcasecmp(enc, "PCMU") == 0)
                decode = "rtppcmudepay ! mulawdec";
        else if (enc && g_ascii_strcasecmp(enc, "PCMA") == 0)
                decode = "rtppcmadepay ! alawdec";

        if (decode)
                desc = g_strdup_printf("queue ! %s ! audioconvert ! audioresample ! "
                                       "audio/x-raw,format=S16LE,channels=1,rate=48000 ! "
                                       "appsink name=pcm sync=false async=false emit-signals=false "
                                       "max-buffers=50 drop=true",
                                       decode);
        else if (enc && g_ascii_strcasecmp(enc, "TELEPHONE-EVENT") == 0)
                /* rtpdtmfdepay posts a "dtmf-event" element message per event (bus watch). */
                desc = g_strdup("queue ! rtpdtmfdepay ! fakesink sync=false async=false");
        else
                desc = g_strdup("fakesink sync=false async=false");
        log_debug("Received stream %s on %s.", enc ? enc : "(unknown)", GST_PAD_NAME(pad));

        bin = gst_parse_bin_from_description(desc, TRUE, &err);
        if (!bin) {
                log_warning("Failed to build the receive branch for %s: %s", enc ? enc : "?",
                            err ? err->message : "?");
                return;
        }
        if (decode) {
                g_autoptr(GstElement) sink = gst_bin_get_by_name(GST_BIN(bin), "pcm");
                GstAppSinkCallbacks cbs = { .new_sample = on_new_sample };

                gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, m, NULL);
        }
        gst_bin_add(GST_BIN(m->pipeline), bin);
        sinkpad = gst_element_get_static_pad(bin, "sink");
        if (gst_pad_link(pad, sinkpad) != GST_PAD_LINK_OK)
                log_warning("Failed to link %s to the receive branch.", GST_PAD_NAME(pad));
        gst_object_unref(sinkpad);
        gst_element_sync_state_with_parent(bin);
}

static GstPadProbeReturn on_src_event(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
        GstCaps *caps = NULL;

        /* Let stream-start and friends through (sticky, kept on the pad until it is linked). */
        if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS)
                return GST_PAD_PROBE_PASS;
        gst_event_parse_caps(ev, &caps);
        media_link_receive(userdata, pad, caps);
        return GST_PAD_PROBE_REMOVE;
}

static void on_pad_added(GstElement *webrtc, GstPad *pad, gpointer userdata) {
        g_autoptr(GstCaps) caps = NULL;

        if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
                return;
        /* At pad-added time the pad usually has no caps yet, and a caps query only says
         * application/x-rtp (platform-notes §1): wait for the CAPS event, which names the
         * encoding, and build the branch then. */
        caps = gst_pad_get_current_caps(pad);
        if (caps) {
                media_link_receive(userdata, pad, caps);
                return;
        }
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_src_event,
                          userdata, NULL);
}

/* ---- main thread ---- */

static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer userdata) {
        Media *m = userdata;

        if (m->freed)
                return G_SOURCE_CONTINUE;
        media_ref(m); /* a callback may media_free() it */
        switch (GST_MESSAGE_TYPE(msg)) {
        case GST_MESSAGE_ERROR: {
                g_autoptr(GError) err = NULL;
                g_autofree char *dbg = NULL, *text = NULL;

                gst_message_parse_error(msg, &err, &dbg);
                text = g_strdup_printf("%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)),
                                       err ? err->message : "error");
                log_warning("Pipeline error from %s", text);
                log_debug("%s", dbg ? dbg : "");
                media_fail_negotiation(m, -EIO, text);
                break;
        }
        case GST_MESSAGE_ELEMENT: {
                const GstStructure *st = gst_message_get_structure(msg);
                int number;

                /* rtpdtmfsrc posts "dtmf-event-processed" for what we send; only the
                 * depayloader's "dtmf-event" is a received digit. */
                if (st && gst_structure_has_name(st, "dtmf-event") &&
                    gst_structure_get_int(st, "number", &number) && number >= 0 && number <= 15) {
                        static const char *const digits[] = { "0", "1", "2", "3", "4", "5", "6", "7",
                                                              "8", "9", "*", "#", "A", "B", "C", "D" };
                        if (m->cb.dtmf)
                                m->cb.dtmf(m, digits[number], m->userdata);
                }
                break;
        }
        default:
                break;
        }
        media_unref(m);
        return G_SOURCE_CONTINUE;
}

static char *media_pipeline_description(Media *m, double tone_hz) {
        g_autofree char *src = NULL, *enc = NULL;

        if (m->mode == MEDIA_ECHO)
                src = g_strdup("appsrc name=src is-live=true format=time do-timestamp=true "
                               "caps=audio/x-raw,format=S16LE,layout=interleaved,channels=1,rate=48000");
        else
                src = g_strdup_printf("audiotestsrc is-live=true wave=sine freq=%.1f volume=0.4", tone_hz);
        switch (m->codec) {
        case MEDIA_CODEC_OPUS:
                enc = g_strdup_printf("opusenc ! rtpopuspay name=pay pt=%d", m->send_pt);
                break;
        case MEDIA_CODEC_PCMU:
        case MEDIA_CODEC_PCMA:
                /* 20 ms packets, like browsers. */
                enc = g_strdup_printf("audio/x-raw,rate=8000,channels=1 ! %s ! %s name=pay pt=%d "
                                      "min-ptime=20000000 max-ptime=20000000",
                                      m->codec == MEDIA_CODEC_PCMU ? "mulawenc" : "alawenc",
                                      m->codec == MEDIA_CODEC_PCMU ? "rtppcmupay" : "rtppcmapay",
                                      m->send_pt);
                break;
        }
        return g_strdup_printf("webrtcbin name=w bundle-policy=max-bundle latency=60 "
                               "%s ! audioconvert ! audioresample ! %s "
                               "! valve name=valve drop=%s drop-mode=forward-sticky-events "
                               "! rtpdtmfmux name=mux ! queue name=q ! w. "
                               "rtpdtmfsrc name=dtmfsrc pt=%d ! application/x-rtp,clock-rate=%u "
                               "! valve name=dtmfvalve drop=true drop-mode=drop-all ! mux.priority_sink_0",
                               src, enc, m->mode == MEDIA_SILENT ? "true" : "false", m->dtmf_pt,
                               codec_rate(m->codec));
}

static Media *media_alloc(MediaMode mode, MediaCodec codec, const MediaCallbacks *cb, void *userdata) {
        Media *m = g_new0(Media, 1);

        m->n_ref = 1;
        m->context = g_main_context_ref_thread_default();
        m->cb = *cb;
        m->userdata = userdata;
        m->mode = mode;
        m->codec = codec;
        m->te_pt = -1;
        g_mutex_init(&m->lock);
        m->acc = g_new(int16_t, SAMPLE_RATE);
        m->dtmf_queue = g_string_new(NULL);
        return m;
}

static int media_build_and_start(Media *m, double tone_hz, const char *ice_address) {
        g_autoptr(GError) err = NULL;
        g_autofree char *desc = NULL;
        g_autoptr(GstElement) queue = NULL;
        g_autoptr(GstPad) qsrc = NULL;
        g_autoptr(GstBus) bus = NULL;
        const char *const addresses[] = { ice_address, NULL };
        int r;

        desc = media_pipeline_description(m, tone_hz);
        m->pipeline = gst_parse_launch(desc, &err);
        if (!m->pipeline || err) {
                log_error("Failed to build the media pipeline: %s", err ? err->message : "?");
                /* gst_parse_launch may return a partial pipeline along with the error. */
                return -ENODEV;
        }
        m->webrtc = gst_bin_get_by_name(GST_BIN(m->pipeline), "w");
        m->appsrc = gst_bin_get_by_name(GST_BIN(m->pipeline), "src");
        m->valve = gst_bin_get_by_name(GST_BIN(m->pipeline), "valve");
        m->dtmfsrc = gst_bin_get_by_name(GST_BIN(m->pipeline), "dtmfsrc");
        m->dtmfvalve = gst_bin_get_by_name(GST_BIN(m->pipeline), "dtmfvalve");
        queue = gst_bin_get_by_name(GST_BIN(m->pipeline), "q");
        if (!m->webrtc || !m->valve || !m->dtmfsrc || !m->dtmfvalve || !queue)
                return -ENODEV;

        r = ice_restrict_webrtcbin(m->webrtc, addresses, FALSE);
        if (r < 0)
                return log_error_errno(r, "Failed to restrict ICE to %s: %m", ice_address);

        g_signal_connect(m->webrtc, "pad-added", G_CALLBACK(on_pad_added), m);
        g_signal_connect(m->webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering_state), m);
        g_signal_connect(m->webrtc, "notify::connection-state", G_CALLBACK(on_connection_state), m);
        qsrc = gst_element_get_static_pad(queue, "src");
        if (m->offerer)
                g_signal_connect(m->webrtc, "on-negotiation-needed", G_CALLBACK(on_negotiation_needed), m);
        /* The offerer waits for the first packet (its caps are stored by then); nothing passes
         * the silent party's valve, so it and the answerer go by the CAPS event. */
        if (m->offerer && m->mode != MEDIA_SILENT)
                gst_pad_add_probe(qsrc, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                                  on_send_buffer, m, NULL);
        else
                gst_pad_add_probe(qsrc, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_send_caps, m, NULL);

        bus = gst_element_get_bus(m->pipeline);
        m->bus_watch = gst_bus_add_watch(bus, on_bus_message, m);

        if (m->appsrc) {
                /* 20 ms of silence so caps reach webrtcbin before negotiation. */
                GstBuffer *silence = gst_buffer_new_allocate(NULL, SAMPLE_RATE / 50 * sizeof(int16_t), NULL);

                gst_buffer_memset(silence, 0, 0, gst_buffer_get_size(silence));
                GST_BUFFER_DURATION(silence) = 20 * GST_MSECOND;
                (void) gst_app_src_push_buffer(GST_APP_SRC(m->appsrc), silence);
        }

        m->timeout = g_timeout_add(NEGOTIATION_TIMEOUT_MS, media_on_timeout, m);
        if (gst_element_set_state(m->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
                log_error("Failed to start the media pipeline.");
                return -EIO;
        }
        return 0;
}

int media_new_answer(const char *offer_sdp, MediaMode mode, MediaCodec codec, double tone_hz,
                     const char *ice_address, const MediaCallbacks *cb, void *userdata, Media **ret) {
        GstSDPMedia *md;
        Media *m;
        int r;

        assert(ret);
        r = media_check_offer(offer_sdp, codec);
        if (r < 0)
                return r;

        m = media_alloc(mode, codec, cb, userdata);
        (void) sdp_parse(offer_sdp, &m->offer);
        md = sdp_audio_media(m->offer, NULL);
        media_remember_remote_ice(m, m->offer, md);
        m->send_pt = sdp_find_pt(md, codec_encoding(codec), codec_rate(codec));
        m->te_pt = sdp_find_pt(md, "telephone-event", codec_rate(codec));
        /* Without telephone-event at this rate rtpdtmfsrc stays idle; any PT will do. */
        m->dtmf_pt = m->te_pt >= 0 ? m->te_pt : codec == MEDIA_CODEC_OPUS ? OFFER_PT_TE48 : OFFER_PT_TE8;

        r = media_build_and_start(m, tone_hz, ice_address);
        if (r < 0) {
                media_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

int media_new_offer(MediaMode mode, MediaCodec codec, double tone_hz, const char *ice_address,
                    const MediaCallbacks *cb, void *userdata, Media **ret) {
        Media *m;
        int r;

        assert(ret);
        m = media_alloc(mode, codec, cb, userdata);
        m->offerer = true;
        m->send_pt = codec == MEDIA_CODEC_OPUS ? OFFER_PT_OPUS : codec == MEDIA_CODEC_PCMU ? 0 : 8;
        m->dtmf_pt = codec == MEDIA_CODEC_OPUS ? OFFER_PT_TE48 : OFFER_PT_TE8;

        r = media_build_and_start(m, tone_hz, ice_address);
        if (r < 0) {
                media_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

int media_set_answer(Media *m, const char *answer_sdp, const char **ret_codec) {
        GstSDPMessage *sdp = NULL;
        GstWebRTCSessionDescription *desc;
        const GstSDPMedia *md;
        const char *codec = NULL;
        GstPromise *p;
        int r = 0;

        assert(m->offerer);
        if (m->answer_applied)
                return -EALREADY;
        if (sdp_parse(answer_sdp, &sdp) < 0)
                return -EBADMSG;
        md = sdp_audio_media(sdp, NULL);
        if (!md || gst_sdp_media_formats_len(md) == 0) {
                gst_sdp_message_free(sdp);
                return -EBADMSG;
        }
        /* The answer's first format is what the far end sends and expects. */
        for (guint i = 0; i < gst_sdp_media_formats_len(md) && !codec; i++) {
                int pt = (int) strtol(gst_sdp_media_get_format(md, i), NULL, 10);
                g_autofree char *enc = NULL;
                unsigned rate = 0;

                if (sdp_rtpmap(md, pt, &enc, &rate) && g_ascii_strcasecmp(enc, "telephone-event") == 0)
                        continue;
                codec = pt == OFFER_PT_OPUS ? "opus" : pt == 0 ? "pcmu" : pt == 8 ? "pcma" : "other";
        }
        if (g_strcmp0(codec, media_codec_name(m->codec)) != 0)
                r = -EPROTONOSUPPORT;
        if (ret_codec)
                *ret_codec = codec ? codec : "none";
        if (sdp_find_pt(md, "telephone-event", codec_rate(m->codec)) == m->dtmf_pt)
                m->te_pt = m->dtmf_pt;
        media_remember_remote_ice(m, sdp, md);

        m->answer_applied = true;
        desc = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
        p = gst_promise_new_with_change_func(on_promise_remote_set, m, NULL);
        g_signal_emit_by_name(m->webrtc, "set-remote-description", desc, p);
        gst_webrtc_session_description_free(desc);
        return r;
}

void media_set_sending(Media *m, bool sending) {
        if (!m || !m->valve)
                return;
        g_object_set(m->valve, "drop", (gboolean) (!sending || m->mode == MEDIA_SILENT), NULL);
}

static void media_dtmf_event(Media *m, int number, bool start) {
        g_autoptr(GstPad) pad = gst_element_get_static_pad(m->dtmfsrc, "src");
        GstStructure *st;

        if (start)
                st = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "number", G_TYPE_INT, number,
                                       "volume", G_TYPE_INT, 10, "start", G_TYPE_BOOLEAN, TRUE, NULL);
        else
                st = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "start", G_TYPE_BOOLEAN, FALSE,
                                       NULL);
        /* A custom upstream event on the src pad; gst_element_send_event() would be dropped by
         * GstBaseSrc (platform-notes §2). */
        if (!pad || !gst_pad_send_event(pad, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, st)))
                log_warning("rtpdtmfsrc refused a dtmf-event.");
}

static int dtmf_number(char c) {
        static const char digits[] = "0123456789*#ABCD";
        const char *p = c ? strchr(digits, c) : NULL;

        return p ? (int) (p - digits) : -1;
}

static gboolean media_dtmf_step(gpointer userdata) {
        Media *m = userdata;
        char digit[2] = {};

        m->dtmf_timer = 0;
        if (m->dtmf_on) {
                media_dtmf_event(m, 0, false);
                m->dtmf_on = false;
                m->dtmf_timer = g_timeout_add(DTMF_GAP_MS, media_dtmf_step, m);
                return G_SOURCE_REMOVE;
        }
        if (m->dtmf_queue->len == 0)
                return G_SOURCE_REMOVE;
        digit[0] = m->dtmf_queue->str[0];
        g_string_erase(m->dtmf_queue, 0, 1);
        media_dtmf_event(m, dtmf_number(digit[0]), true);
        m->dtmf_on = true;
        m->dtmf_timer = g_timeout_add(m->dtmf_duration_ms, media_dtmf_step, m);
        if (m->cb.dtmf_sent)
                m->cb.dtmf_sent(m, digit, m->userdata);
        return G_SOURCE_REMOVE;
}

int media_send_dtmf(Media *m, const char *digits, unsigned duration_ms) {
        if (!digits || !*digits)
                return -EINVAL;
        for (const char *p = digits; *p; p++)
                if (dtmf_number(*p) < 0)
                        return -EINVAL;
        if (!m->connected_reported)
                return -ENOTCONN;
        if (m->te_pt < 0)
                return -ENOTSUP;
        /* rtpdtmfsrc negotiates its caps as soon as it runs; through rtpdtmfmux they would
         * reach webrtcbin's sink pad and, before negotiation, become the only codec of the SDP.
         * So its branch stays shut (caps kept, re-sent with the first packet) until now. */
        g_object_set(m->dtmfvalve, "drop", FALSE, NULL);
        g_string_append(m->dtmf_queue, digits);
        m->dtmf_duration_ms = duration_ms;
        if (!m->dtmf_timer && !m->dtmf_on)
                m->dtmf_timer = g_idle_add(media_dtmf_step, m);
        return 0;
}

/* ---- ICE restart and media-block ---- */

/* webrtcbin's nicesrc and nicesink elements (one each with max-bundle), as lists of references.
 * They exist once webrtcbin has a transport: after set-remote-description of an offer, or
 * set-local-description of ours. */
static void media_nice_elements(Media *m, GList **ret_src, GList **ret_sink) {
        g_auto(GValue) v = G_VALUE_INIT;
        GstIterator *it = gst_bin_iterate_recurse(GST_BIN(m->webrtc));

        while (gst_iterator_next(it, &v) == GST_ITERATOR_OK) {
                GstElement *e = g_value_get_object(&v);
                GstElementFactory *f = gst_element_get_factory(e);
                const char *name = f ? GST_OBJECT_NAME(f) : "";

                if (ret_src && strcmp(name, "nicesrc") == 0)
                        *ret_src = g_list_prepend(*ret_src, gst_object_ref(e));
                else if (ret_sink && strcmp(name, "nicesink") == 0)
                        *ret_sink = g_list_prepend(*ret_sink, gst_object_ref(e));
                g_value_reset(&v);
        }
        gst_iterator_free(it);
}

void media_ice_restart_clear(MediaIceRestart *r) {
        if (!r)
                return;
        g_free(r->old_remote_ufrag);
        g_free(r->remote_ufrag);
        g_free(r->local_ufrag);
        g_free(r->local_pwd);
        *r = (MediaIceRestart) {};
}

bool media_offer_is_new_session(Media *m, const char *offer_sdp) {
        GstSDPMessage *sdp = NULL;
        const GstSDPMedia *md;
        const char *fingerprint, *tls_id;
        bool changed;

        if (sdp_parse(offer_sdp, &sdp) < 0)
                return false;
        md = sdp_audio_media(sdp, NULL);
        fingerprint = md ? sdp_ice_attr(sdp, md, "fingerprint") : NULL;
        tls_id = md ? sdp_ice_attr(sdp, md, "tls-id") : NULL;
        changed = (fingerprint && m->remote_fingerprint && strcmp(fingerprint, m->remote_fingerprint) != 0) ||
                  (tls_id && m->remote_tls_id && strcmp(tls_id, m->remote_tls_id) != 0);
        gst_sdp_message_free(sdp);
        return changed;
}

int media_answer_ice_restart(Media *m, const char *offer_sdp, MediaIceRestart *ret) {
        GstSDPMessage *sdp = NULL;
        const GstSDPMedia *md;
        const char *ufrag, *pwd;
        g_autofree char *local_ufrag = NULL, *local_pwd = NULL;
        int r, n;

        assert(ret);
        if (sdp_parse(offer_sdp, &sdp) < 0)
                return -EBADMSG;
        md = sdp_audio_media(sdp, NULL);
        if (!md) {
                gst_sdp_message_free(sdp);
                return -EBADMSG;
        }
        ufrag = sdp_ice_attr(sdp, md, "ice-ufrag");
        pwd = sdp_ice_attr(sdp, md, "ice-pwd");
        /* RFC 8839 §4.4.1.1.1: either credential changing means a restart. An offer without them
         * is no restart (and no usable WebRTC offer either; hold re-INVITEs always carry them). */
        if (!ufrag || !pwd || !m->remote_ufrag ||
            (strcmp(ufrag, m->remote_ufrag) == 0 && g_strcmp0(pwd, m->remote_pwd) == 0)) {
                gst_sdp_message_free(sdp);
                return 0;
        }

        /* The answerer's side of the libnice-level restart (HACKING.md, "ICE restart"): nothing
         * for webrtcbin to do; libnice keeps the selected pair in use until a new one is chosen
         * and never gathers again, so our local candidates stay valid. */
        r = ice_restart_local(m->webrtc, &local_ufrag, &local_pwd);
        if (r < 0) {
                gst_sdp_message_free(sdp);
                return log_warning_errno(r == -ENOTSUP ? -ENOTCONN : r, "libnice refused the ICE restart: %m");
        }
        n = ice_set_remote_from_sdp(m->webrtc, offer_sdp);
        if (n <= 0)
                /* libnice still learns the far end's address from its checks (peer-reflexive). */
                log_warning("The ICE restart offer gave libnice no usable candidate.");

        *ret = (MediaIceRestart) {
                .old_remote_ufrag = g_strdup(m->remote_ufrag),
                .remote_ufrag = g_strdup(ufrag),
                .local_ufrag = g_steal_pointer(&local_ufrag),
                .local_pwd = g_steal_pointer(&local_pwd),
                .n_candidates = n > 0 ? (unsigned) n : 0,
        };
        media_remember_remote_ice(m, sdp, md);
        gst_sdp_message_free(sdp);
        return 1;
}

/* RFC 7983: a first byte of 128-191 is RTP or RTCP (SRTP/SRTCP here), 20-63 DTLS. STUN never
 * reaches nicesrc/nicesink: libnice handles it below them. */
static bool buffer_is_srtp(GstBuffer *b) {
        guint8 first;

        return gst_buffer_extract(b, 0, &first, 1) == 1 && first >= 128 && first <= 191;
}

/* Streaming threads: nicesrc's src pad (received) and nicesink's sink pad (sent). */
static GstPadProbeReturn on_nice_data(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        Media *m = userdata;
        gint *counter = GST_PAD_DIRECTION(pad) == GST_PAD_SRC ? &m->dropped_received : &m->dropped_sent;
        GstBufferList *list, *kept;
        guint n, dropped = 0;

        if (!g_atomic_int_get(&m->blocked))
                return GST_PAD_PROBE_OK;
        if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
                if (!buffer_is_srtp(GST_PAD_PROBE_INFO_BUFFER(info)))
                        return GST_PAD_PROBE_OK;
                g_atomic_int_inc(counter);
                return GST_PAD_PROBE_DROP;
        }
        if (!(GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST))
                return GST_PAD_PROBE_OK;
        /* A list may mix DTLS and SRTP in principle: keep what is not SRTP. */
        list = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
        n = gst_buffer_list_length(list);
        kept = gst_buffer_list_new_sized(n);
        for (guint i = 0; i < n; i++) {
                GstBuffer *b = gst_buffer_list_get(list, i);

                if (buffer_is_srtp(b))
                        dropped++;
                else
                        gst_buffer_list_add(kept, gst_buffer_ref(b));
        }
        if (dropped == 0) {
                gst_buffer_list_unref(kept);
                return GST_PAD_PROBE_OK;
        }
        g_atomic_int_add(counter, (gint) dropped);
        if (gst_buffer_list_length(kept) == 0) {
                gst_buffer_list_unref(kept);
                return GST_PAD_PROBE_DROP;
        }
        gst_buffer_list_unref(list);
        GST_PAD_PROBE_INFO_DATA(info) = kept;
        return GST_PAD_PROBE_OK;
}

/* At the nice elements rather than at webrtcbin's own pads: RTCP (which rtpbin makes inside
 * webrtcbin) is dropped too, whatever webrtcbin does with transceivers, and on the way in nothing
 * reaches the jitter buffer or the decoder. */
static int media_install_block_probes(Media *m) {
        GList *srcs = NULL, *sinks = NULL;

        media_nice_elements(m, &srcs, &sinks);
        if (!srcs || !sinks) {
                g_list_free_full(srcs, gst_object_unref);
                g_list_free_full(sinks, gst_object_unref);
                return -ENOTCONN;
        }
        for (GList *l = srcs; l; l = l->next) {
                g_autoptr(GstPad) pad = gst_element_get_static_pad(l->data, "src");

                if (pad)
                        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                                          on_nice_data, m, NULL);
        }
        for (GList *l = sinks; l; l = l->next) {
                g_autoptr(GstPad) pad = gst_element_get_static_pad(l->data, "sink");

                if (pad)
                        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                                          on_nice_data, m, NULL);
        }
        g_list_free_full(srcs, gst_object_unref);
        g_list_free_full(sinks, gst_object_unref);
        return 0;
}

int media_set_blocked(Media *m, bool blocked) {
        if (blocked && !m->block_probes) {
                int r = media_install_block_probes(m);

                if (r < 0)
                        return r;
                /* They stay (a flag check per packet) until the pipeline goes. */
                m->block_probes = true;
        }
        if (blocked && !g_atomic_int_get(&m->blocked)) {
                g_atomic_int_set(&m->dropped_sent, 0);
                g_atomic_int_set(&m->dropped_received, 0);
        }
        g_atomic_int_set(&m->blocked, blocked);
        return 0;
}

void media_get_dropped(Media *m, unsigned *ret_sent, unsigned *ret_received) {
        *ret_sent = (unsigned) g_atomic_int_get(&m->dropped_sent);
        *ret_received = (unsigned) g_atomic_int_get(&m->dropped_received);
}

Media *media_free(Media *m) {
        if (!m)
                return NULL;
        m->freed = true;
        g_atomic_int_set(&m->stopping, 1);
        if (m->timeout)
                g_source_remove(m->timeout);
        m->timeout = 0;
        if (m->dtmf_timer)
                g_source_remove(m->dtmf_timer);
        m->dtmf_timer = 0;
        if (m->webrtc)
                g_signal_handlers_disconnect_by_data(m->webrtc, m);
        if (m->pipeline)
                gst_element_set_state(m->pipeline, GST_STATE_NULL);
        if (m->bus_watch)
                g_source_remove(m->bus_watch);
        m->bus_watch = 0;
        media_unref(m);
        return NULL;
}

void media_prewarm(void) {
        GstElement *e = gst_element_factory_make("dtlsdec", NULL);

        if (e)
                gst_object_unref(e);
}
