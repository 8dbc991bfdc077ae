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

/* How the answerer is wired with GStreamer 1.22 (checked by hand; see README.md):
 *
 *   send:    audiotestsrc (or appsrc for the echo party) ! audioconvert ! audioresample ! opusenc
 *            ! rtpopuspay pt=<the offer's Opus PT> ! queue ! webrtcbin.sink_0
 *   receive: webrtcbin.src_N ! queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample
 *            ! S16LE/mono/48 kHz ! appsink           (telephone-event: rtpdtmfdepay ! fakesink)
 *
 * The sink pad is requested and the payloader linked BEFORE set-remote-description: webrtcbin
 * then associates that pad's transceiver with the offer's audio m-line and answers sendrecv with
 * the payloader's PT. We also wait until caps have reached the payloader's src pad before
 * setting the remote description: the offerer side races there (platform-notes §1) and webrtcbin
 * 1.22 intersects with the caps seen on the sink pad (§2). Measured on 1.22.0, answering without
 * the wait still gave Opus (4 of 4 runs), so the wait is a cheap precaution (a few ms), not a
 * known requirement. The answer is created, telephone-event is added to it by hand (webrtcbin
 * 1.22 drops it, platform-notes §2), set as local description, and only sent once ICE gathering
 * is complete, when local-description carries every candidate (non-trickle, platform-notes §1).
 *
 * Echo: the receive branch's appsink hands each decoded buffer to an appsrc at the head of the
 * send branch (appsrc is-live, do-timestamp: buffers are stamped with the send side's running
 * time when pushed, so the two branches need no common timeline). Until caller audio arrives one
 * 20 ms block of silence is pushed, so that caps exist before negotiation.
 *
 * Threads: webrtcbin's promise callbacks and notify signals, pad-added, probes and appsink run on
 * GStreamer threads. They never touch SIP state: they post a MediaEvent to the main context. The
 * frequency math runs in the appsink thread on a per-media buffer guarded by a mutex. Posted
 * events hold a reference; everything else relies on media_free() stopping the pipeline (which
 * joins those threads) before the last reference goes. */

#define SAMPLE_RATE 48000
#define NEGOTIATION_TIMEOUT_MS 15000
#define MSID_STREAM "bwgw-sim-stream"
#define MSID_TRACK "bwgw-sim-track"

struct Media {
        gint n_ref;
        GMainContext *context;
        MediaCallbacks cb;
        void *userdata;
        bool freed; /* main thread only: set by media_free(), silences callbacks */

        MediaMode mode;
        int opus_pt, te_pt; /* te_pt: telephone-event/48000 PT of the offer, or -1 */
        GstSDPMessage *offer;

        GstElement *pipeline, *webrtc, *appsrc;
        guint bus_watch;
        guint timeout;
        bool negotiation_started, answer_delivered, connected_reported, failed_reported;
        bool first_audio_posted; /* appsink thread, under lock */
        gint gathered; /* atomic: gathering-complete posted */
        gint stopping; /* atomic: media_free() began; GStreamer threads post nothing more */

        GMutex lock; /* guards acc/n_acc (appsink thread) */
        int16_t *acc;
        size_t n_acc;
};

typedef enum MediaEventKind {
        MEDIA_EVENT_SEND_CAPS,
        MEDIA_EVENT_REMOTE_SET,
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
        if (m->offer)
                gst_sdp_message_free(m->offer);
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

/* PT of "a=rtpmap:<pt> <encoding>/<rate>..." (case-insensitive encoding), or -1. */
static int sdp_find_pt(const GstSDPMedia *md, const char *encoding, unsigned rate) {
        for (guint i = 0; i < gst_sdp_media_attributes_len(md); i++) {
                const GstSDPAttribute *a = gst_sdp_media_get_attribute(md, i);
                g_auto(GStrv) f = NULL, enc = NULL;
                char *end = NULL;
                long pt;

                if (g_strcmp0(a->key, "rtpmap") != 0 || !a->value)
                        continue;
                f = g_strsplit(a->value, " ", 2);
                if (g_strv_length(f) != 2)
                        continue;
                pt = strtol(f[0], &end, 10);
                if (!end || *end || pt < 0 || pt > 127)
                        continue;
                enc = g_strsplit(f[1], "/", 3);
                if (g_strv_length(enc) >= 2 && g_ascii_strcasecmp(enc[0], encoding) == 0 &&
                    strtoul(enc[1], NULL, 10) == rate)
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

int media_check_offer(const char *offer_sdp) {
        GstSDPMessage *sdp = NULL;
        const GstSDPMedia *md;
        int r;

        r = sdp_parse(offer_sdp, &sdp);
        if (r < 0)
                return r;
        md = sdp_audio_media(sdp, NULL);
        r = !md ? -EBADMSG : sdp_find_pt(md, "opus", 48000) < 0 ? -EPROTONOSUPPORT : 0;
        gst_sdp_message_free(sdp);
        return r;
}

/* Before set-local-description: telephone-event at 48 kHz with the offer's PT (platform-notes
 * §2: webrtcbin 1.22 leaves it out, and only a local description that lists it makes webrtcbin
 * accept the PT on receive). */
static void media_answer_add_telephone_event(Media *m, GstSDPMessage *answer) {
        GstSDPMedia *md = sdp_audio_media(answer, NULL);
        g_autofree char *pt = NULL, *rtpmap = NULL, *fmtp = NULL;

        if (!md || m->te_pt < 0 || sdp_find_pt(md, "telephone-event", 48000) >= 0)
                return;
        pt = g_strdup_printf("%d", m->te_pt);
        for (guint i = 0; i < gst_sdp_media_formats_len(md); i++)
                if (g_strcmp0(gst_sdp_media_get_format(md, i), pt) == 0)
                        return; /* PT taken by something else; leave the answer alone */
        rtpmap = g_strdup_printf("%d telephone-event/48000", m->te_pt);
        fmtp = g_strdup_printf("%d 0-15", m->te_pt);
        gst_sdp_media_add_format(md, pt);
        gst_sdp_media_add_attribute(md, "rtpmap", rtpmap);
        gst_sdp_media_add_attribute(md, "fmtp", fmtp);
}

/* After gathering: what goes on the wire. Returns 0 or -EBADMSG with *ret_error set. */
static int media_answer_finish(Media *m, GstSDPMessage *answer, const char **ret_error) {
        for (guint i = 0; i < gst_sdp_message_medias_len(answer); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(answer, i);
                const GstSDPMedia *offered = i < gst_sdp_message_medias_len(m->offer)
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
                /* Chromium fires its track event without a stream unless the answer has a=msid
                 * (gateway-protocol.md, later findings). webrtcbin 1.22 only writes a=ssrc msid. */
                if (!sdp_media_has_attribute(md, "msid"))
                        gst_sdp_media_add_attribute(md, "msid", MSID_STREAM " " MSID_TRACK);
                if (!sdp_media_has_attribute(md, "fingerprint") &&
                    !gst_sdp_message_get_attribute_val(answer, "fingerprint")) {
                        *ret_error = "answer has no DTLS fingerprint";
                        return -EBADMSG;
                }
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

char *media_sdp_mirror_direction(const char *answer_sdp, const char *offer_sdp, bool bump_version,
                                 const char **ret_direction) {
        GstSDPMessage *answer = NULL, *offer = NULL;
        const char *dir = "sendrecv";
        char *text;

        if (sdp_parse(answer_sdp, &answer) < 0)
                return NULL;
        if (sdp_parse(offer_sdp, &offer) < 0) {
                gst_sdp_message_free(answer);
                return NULL;
        }
        for (guint i = 0; i < gst_sdp_message_medias_len(answer); i++) {
                GstSDPMedia *md = (GstSDPMedia *) gst_sdp_message_get_media(answer, i);
                const GstSDPMedia *om = i < gst_sdp_message_medias_len(offer)
                                                ? gst_sdp_message_get_media(offer, i)
                                                : NULL;
                const char *od = sdp_direction(offer, om);

                dir = strcmp(od, "sendonly") == 0   ? "recvonly"
                      : strcmp(od, "recvonly") == 0 ? "sendonly"
                      : strcmp(od, "inactive") == 0 ? "inactive"
                                                    : "sendrecv";
                sdp_media_remove_attributes(md, "sendrecv");
                sdp_media_remove_attributes(md, "sendonly");
                sdp_media_remove_attributes(md, "recvonly");
                sdp_media_remove_attributes(md, "inactive");
                gst_sdp_media_add_attribute(md, dir, "");
        }
        if (bump_version) {
                /* RFC 3264 §8: a changed SDP carries the next o= version. */
                const GstSDPOrigin *o = gst_sdp_message_get_origin(answer);
                guint64 version = g_ascii_strtoull(o->sess_version ? o->sess_version : "0", NULL, 10);
                g_autofree char *v = g_strdup_printf("%" G_GUINT64_FORMAT, version + 1);
                g_autofree char *user = g_strdup(o->username), *id = g_strdup(o->sess_id),
                                *nt = g_strdup(o->nettype), *at = g_strdup(o->addrtype),
                                *addr = g_strdup(o->addr);

                gst_sdp_message_set_origin(answer, user, id, v, nt, at, addr);
        }
        text = gst_sdp_message_as_text(answer);
        gst_sdp_message_free(answer);
        gst_sdp_message_free(offer);
        if (ret_direction)
                *ret_direction = dir;
        return text;
}

/* ---- negotiation (main thread) ---- */

static void media_fail_negotiation(Media *m, int error, const char *message) {
        if (m->answer_delivered)
                return;
        m->answer_delivered = true;
        if (m->timeout) {
                g_source_remove(m->timeout);
                m->timeout = 0;
        }
        log_warning("Media negotiation failed: %s", message);
        if (m->cb.answer_ready)
                m->cb.answer_ready(m, NULL, error, message, m->userdata);
}

static void on_promise_remote_set(GstPromise *promise, gpointer userdata);
static void on_promise_answer(GstPromise *promise, gpointer userdata);
static void on_promise_local_set(GstPromise *promise, gpointer userdata);

static void media_negotiate(Media *m) {
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

static void media_on_remote_set(Media *m) {
        GstPromise *p = gst_promise_new_with_change_func(on_promise_answer, m, NULL);
        g_signal_emit_by_name(m->webrtc, "create-answer", NULL, p);
}

static void media_on_answer(Media *m, GstWebRTCSessionDescription *answer) {
        GstPromise *p;

        media_answer_add_telephone_event(m, answer->sdp);
        p = gst_promise_new_with_change_func(on_promise_local_set, m, NULL);
        g_signal_emit_by_name(m->webrtc, "set-local-description", answer, p);
}

static void media_on_gathered(Media *m) {
        GstWebRTCSessionDescription *local = NULL;
        GstSDPMessage *sdp = NULL;
        const char *error = NULL;
        g_autofree char *text = NULL;

        if (m->answer_delivered)
                return;
        g_object_get(m->webrtc, "local-description", &local, NULL);
        if (!local) {
                media_fail_negotiation(m, -EPROTO, "no local description after ICE gathering");
                return;
        }
        gst_sdp_message_copy(local->sdp, &sdp);
        gst_webrtc_session_description_free(local);
        if (media_answer_finish(m, sdp, &error) < 0) {
                gst_sdp_message_free(sdp);
                media_fail_negotiation(m, -EBADMSG, error);
                return;
        }
        text = gst_sdp_message_as_text(sdp);
        gst_sdp_message_free(sdp);

        m->answer_delivered = true;
        if (m->timeout) {
                g_source_remove(m->timeout);
                m->timeout = 0;
        }
        if (m->cb.answer_ready)
                m->cb.answer_ready(m, text, 0, NULL, m->userdata);
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
                media_negotiate(m);
                break;
        case MEDIA_EVENT_REMOTE_SET:
                media_on_remote_set(m);
                break;
        case MEDIA_EVENT_ANSWER_CREATED:
                media_on_answer(m, e->desc);
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
        media_fail_negotiation(m, -ETIMEDOUT, "timed out creating the SDP answer (ICE gathering?)");
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

static void on_promise_answer(GstPromise *promise, gpointer userdata) {
        MediaEvent *e = g_new0(MediaEvent, 1);
        const GstStructure *reply;

        e->kind = MEDIA_EVENT_ANSWER_CREATED;
        reply = promise_reply(promise, &e->error);
        if (reply)
                gst_structure_get(reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &e->desc, NULL);
        if (!e->error && !e->desc)
                e->error = g_strdup("webrtcbin created no answer");
        gst_promise_unref(promise);
        media_post(userdata, e);
}

static void on_promise_local_set(GstPromise *promise, gpointer userdata) {
        MediaEvent *e = g_new0(MediaEvent, 1);

        e->kind = MEDIA_EVENT_LOCAL_SET;
        (void) promise_reply(promise, &e->error);
        gst_promise_unref(promise);
        media_post(userdata, e);
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
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);

        if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS)
                return GST_PAD_PROBE_OK;
        media_post_kind(userdata, MEDIA_EVENT_SEND_CAPS);
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
        const char *desc;
        g_autoptr(GError) err = NULL;
        GstElement *bin;
        GstPad *sinkpad;
        bool opus = enc && g_ascii_strcasecmp(enc, "OPUS") == 0;

        if (opus)
                desc = "queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! "
                       "audio/x-raw,format=S16LE,channels=1,rate=48000 ! "
                       "appsink name=pcm sync=false async=false emit-signals=false max-buffers=50 drop=true";
        else if (enc && g_ascii_strcasecmp(enc, "TELEPHONE-EVENT") == 0)
                /* rtpdtmfdepay posts a "dtmf-event" element message per event (bus watch). */
                desc = "queue ! rtpdtmfdepay ! fakesink sync=false async=false";
        else
                desc = "fakesink sync=false async=false";
        log_debug("Received stream %s on %s.", enc ? enc : "(unknown)", GST_PAD_NAME(pad));

        bin = gst_parse_bin_from_description(desc, TRUE, &err);
        if (!bin) {
                log_warning("Failed to build the receive branch for %s: %s", enc ? enc : "?",
                            err ? err->message : "?");
                return;
        }
        if (opus) {
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
                if (!m->answer_delivered)
                        media_fail_negotiation(m, -EIO, text);
                else if (!m->failed_reported) {
                        m->failed_reported = true;
                        if (m->cb.failed)
                                m->cb.failed(m, text, m->userdata);
                }
                break;
        }
        case GST_MESSAGE_ELEMENT: {
                const GstStructure *st = gst_message_get_structure(msg);
                int number;

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

int media_new_answer(const char *offer_sdp, MediaMode mode, double tone_hz, const char *ice_address,
                     const MediaCallbacks *cb, void *userdata, Media **ret) {
        g_autoptr(GError) err = NULL;
        g_autofree char *desc = NULL;
        g_autoptr(GstElement) pay = NULL;
        g_autoptr(GstPad) paysrc = NULL;
        g_autoptr(GstBus) bus = NULL;
        const char *const addresses[] = { ice_address, NULL };
        GstSDPMedia *md;
        Media *m;
        int r;

        assert(ret);
        r = media_check_offer(offer_sdp);
        if (r < 0)
                return r;

        m = g_new0(Media, 1);
        m->n_ref = 1;
        m->context = g_main_context_ref_thread_default();
        m->cb = *cb;
        m->userdata = userdata;
        m->mode = mode;
        g_mutex_init(&m->lock);
        m->acc = g_new(int16_t, SAMPLE_RATE);
        (void) sdp_parse(offer_sdp, &m->offer);
        md = sdp_audio_media(m->offer, NULL);
        m->opus_pt = sdp_find_pt(md, "opus", 48000);
        m->te_pt = sdp_find_pt(md, "telephone-event", 48000);

        if (mode == MEDIA_ECHO)
                desc = g_strdup_printf(
                        "webrtcbin name=w bundle-policy=max-bundle latency=60 "
                        "appsrc name=src is-live=true format=time do-timestamp=true "
                        "caps=audio/x-raw,format=S16LE,layout=interleaved,channels=1,rate=48000 "
                        "! audioconvert ! audioresample ! opusenc ! rtpopuspay name=pay pt=%d ! queue ! w.",
                        m->opus_pt);
        else
                desc = g_strdup_printf(
                        "webrtcbin name=w bundle-policy=max-bundle latency=60 "
                        "audiotestsrc is-live=true wave=sine freq=%.1f volume=0.4 "
                        "! audioconvert ! audioresample ! opusenc ! rtpopuspay name=pay pt=%d ! queue ! w.",
                        tone_hz, m->opus_pt);
        m->pipeline = gst_parse_launch(desc, &err);
        if (!m->pipeline || err) {
                log_error("Failed to build the media pipeline: %s", err ? err->message : "?");
                /* gst_parse_launch may return a partial pipeline along with the error. */
                media_free(m);
                return -ENODEV;
        }
        m->webrtc = gst_bin_get_by_name(GST_BIN(m->pipeline), "w");
        m->appsrc = gst_bin_get_by_name(GST_BIN(m->pipeline), "src");
        pay = gst_bin_get_by_name(GST_BIN(m->pipeline), "pay");
        if (!m->webrtc || !pay) {
                media_free(m);
                return -ENODEV;
        }

        r = ice_restrict_webrtcbin(m->webrtc, addresses, FALSE);
        if (r < 0) {
                log_error_errno(r, "Failed to restrict ICE to %s: %m", ice_address);
                media_free(m);
                return r;
        }

        g_signal_connect(m->webrtc, "pad-added", G_CALLBACK(on_pad_added), m);
        g_signal_connect(m->webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering_state), m);
        g_signal_connect(m->webrtc, "notify::connection-state", G_CALLBACK(on_connection_state), m);
        paysrc = gst_element_get_static_pad(pay, "src");
        gst_pad_add_probe(paysrc, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_send_caps, m, NULL);

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
                media_free(m);
                return -EIO;
        }
        *ret = m;
        return 0;
}

Media *media_free(Media *m) {
        if (!m)
                return NULL;
        m->freed = true;
        g_atomic_int_set(&m->stopping, 1);
        if (m->timeout)
                g_source_remove(m->timeout);
        m->timeout = 0;
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
