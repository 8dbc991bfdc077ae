/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include "ice.h"
#include "log.h"
#include "media.h"
#include "pw-audio.h"
#include "sdp.h"

/* Pipeline (platform-notes §1–§3):
 *
 *   appsrc (microphone) ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 !
 *     volume ! ENCODER ! rtpdtmfmux ! queue ! webrtcbin
 *   rtpdtmfsrc pt=101 ! application/x-rtp,clock-rate=48000 ! rtpdtmfmux.priority_sink_0
 *
 * where ENCODER is the send codec's chain:
 *
 *   opusenc ! rtpopuspay pt=111                                                      (Opus)
 *   audioconvert ! audioresample ! S16LE/8000/mono ! mulawenc ! rtppcmupay pt=0      (PCMU; PCMA alike)
 *
 * and for every stream webrtcbin hands us (pad-added, decided on the CAPS event):
 *
 *   queue ! rtpopusdepay ! opusdec ! audioconvert ! audioresample ! volume ! appsink (speaker)  (OPUS)
 *   queue ! rtppcmudepay ! mulawdec ! ...                                               (PCMU, PCMA)
 *   queue ! rtpdtmfdepay ! fakesink                                                     (TELEPHONE-EVENT)
 *
 * The microphone and each speaker are PipeWire streams of our own (common/pw-audio.h: GStreamer's
 * pipewiresrc/pipewiresink deadlock in 0.3.65), joined to the pipeline by appsrc/appsink: the
 * microphone's PipeWire thread pushes into appsrc, appsink's streaming thread writes into the
 * speaker stream's ring. Each media.role=Communication, linked by WirePlumber.
 *
 * Offerer: the pipeline starts with Opus, because webrtcbin 1.22 builds the offer's m-line from
 * the caps it has seen (PCMU, PCMA and telephone-event are added to the SDP text). When the answer
 * picks another codec (or another payload type), the encoder chain is swapped in an IDLE probe on
 * volume's src pad: rtpdtmfmux forces one clock rate on all its inputs (caps queries), so parallel
 * Opus and G.711 branches into the same mux cannot negotiate, while a swapped chain renegotiates
 * the mux, webrtcbin's sink pad (accept-caps comes from the codec preferences, which list every
 * format we may send) and rtpdtmfsrc's clock rate cleanly; Opus packets still queued in front of
 * webrtcbin are dropped (PayloadFilter). Answerer: the chain for the offer's codec is built from
 * the start (Opus, else PCMU, else PCMA) with the offer's payload types.
 *
 * DTMF out: digits are queued on the main context and paced with timers; each one is a "dtmf-event"
 * start/stop pair of custom upstream events pushed into rtpdtmfsrc's src pad (platform-notes §2),
 * using the telephone-event payload type negotiated at the send codec's clock rate. rtpdtmfsrc
 * itself holds a tone for at least 250 ms and keeps 100 ms+ between tones; dtmf_sent waits until
 * it has processed the last stop. DTMF in: rtpdtmfdepay posts one "dtmf-event" element message per
 * event; a probe drops repeated start packets (marker set again, same RTP timestamp) first.
 *
 * Hold (media_set_active): the send volume is muted (muted || held) and so are the volume elements
 * of the receive branches; RTP keeps flowing, as from a browser with a disabled track.
 *
 * Threading: webrtcbin signals, promise callbacks and pad probes run on GStreamer threads. They
 * only read immutable fields and queue a Dispatch onto the GMainContext captured in
 * media_new_offer()/media_new_answer(); everything the user sees happens there. The bus watch
 * and the DTMF timers are attached to that context too. Each queued Dispatch, signal closure,
 * promise and probe holds a reference on the Media, so the struct outlives them; media_free()
 * marks it freed (under the lock) and destroys the dispatches still queued, so no callback runs
 * after it returns. */

#define OFFER_PT_OPUS 111
#define OFFER_PT_TE_48K 101
#define MEDIA_DEFAULT_LATENCY_MS 40U
/* Gathering on a few local addresses takes milliseconds; this is the safety net so an offer
 * (or an error) always comes out, like the SDK's 2 s ice_timeout_fix but hardly ever hit. */
#define MEDIA_OFFER_TIMEOUT_MSEC 5000U
/* webrtcbin answers promises from its own thread within milliseconds; never block forever. */
#define MEDIA_PROMISE_TIMEOUT_USEC (5 * G_USEC_PER_SEC)
#define MEDIA_ENCODER_MAX 5
/* DTMF (gateway-protocol §7): AudioCodes defaults, JsSIP's limits, ',' pauses 2 s. */
#define DTMF_DEFAULT_DURATION_MS 250U
#define DTMF_DEFAULT_GAP_MS 250U
#define DTMF_MIN_DURATION_MS 70U
#define DTMF_MAX_DURATION_MS 6000U
#define DTMF_MIN_GAP_MS 50U
#define DTMF_PAUSE_MS 2000U
#define DTMF_VOLUME 10 /* -10 dBm0, as browsers send */
/* How long dtmf_sent waits for rtpdtmfsrc to confirm the last stop before firing anyway. */
#define DTMF_DRAIN_TIMEOUT_MS 2000U
#define DTMF_DIGITS "0123456789*#ABCD"
/* The microphone goes into the pipeline in 10 ms buffers (on_mic_samples()). */
#define MIC_CHUNK_SAMPLES 480

typedef enum DispatchKind {
        DISPATCH_OFFER_READY,
        DISPATCH_OFFER_ERROR,
        DISPATCH_FIRST_AUDIO,
        DISPATCH_FAILED,
        DISPATCH_CONNECTED,
        DISPATCH_DTMF_RECEIVED,
} DispatchKind;

typedef enum SendCodec {
        SEND_CODEC_OPUS,
        SEND_CODEC_PCMU,
        SEND_CODEC_PCMA,
        _SEND_CODEC_MAX,
} SendCodec;

/* In order of preference for the answerer (Opus, else PCMU, else PCMA). */
static const struct {
        const char *name;     /* lower case, for stats and logs */
        const char *encoding; /* SDP rtpmap / caps encoding-name */
        unsigned rate;
        int static_pt; /* RFC 3551 static payload type, -1 if dynamic */
} send_codecs[_SEND_CODEC_MAX] = {
        [SEND_CODEC_OPUS] = { "opus", "OPUS", 48000, -1 },
        [SEND_CODEC_PCMU] = { "pcmu", "PCMU", 8000, 0 },
        [SEND_CODEC_PCMA] = { "pcma", "PCMA", 8000, 8 },
};

/* What goes out: the send codec and payload type, and the telephone-event payload types. */
typedef struct MediaFormat {
        SendCodec codec;
        int pt;
        int te_pt;           /* telephone-event at the codec's clock rate (sendable); -1: none */
        int rx_te_pt;        /* answerer: another telephone-event of the offer, receive only; -1 */
        unsigned rx_te_rate;
} MediaFormat;

typedef struct DtmfTone {
        char digit;
        unsigned duration_ms, gap_ms;
} DtmfTone;

struct Media {
        gint n_ref; /* atomic */

        /* Immutable after media_new_offer()/media_new_answer() returns; read from any thread. */
        GMainContext *context;
        MediaCallbacks cb;
        void *userdata;
        bool answerer;
        bool offer_lets_us_send; /* answerer: the offer was sendrecv or recvonly */
        MediaFormat initial;     /* the format the pipeline was built with */
        char tls_id[25];         /* RFC 8842 a=tls-id: this pipeline's DTLS association */
        PwAudio *pw;             /* our PipeWire connection (ref) */
        GstElement *mic_src;     /* appsrc the microphone stream pushes into (ref) */
        GstElement *pipeline;
        GstElement *webrtcbin;
        GstElement *volume;
        GstPad *mux_sink;    /* rtpdtmfmux pad the encoder chain feeds (ref) */
        GstPad *queue_src;   /* what goes into webrtcbin (ref) */
        GstElement *dtmfsrc; /* RFC 4733 sender, fed by custom upstream events (platform-notes §2) */
        GstElement *dtmfcaps;
        /* The echo canceller's reference: what the first speaker stream hands PipeWire goes
         * appsrc ! webrtcechoprobe ! fakesink. NULL without echo cancelling. */
        GstElement *echo_src;    /* (ref) */
        gpointer echo_speaker;   /* atomic: the Speaker that feeds it, the newest one */
        GstClockTime echo_next_pts; /* that speaker's data thread only */
        gint64 start_usec; /* monotonic, for timing logs */

        GMutex lock;        /* protects everything up to play_muted */
        bool freed;         /* media_free() was called */
        GPtrArray *pending; /* GSource* of queued dispatches, one ref each */
        GstElement *encoder[MEDIA_ENCODER_MAX]; /* current chain between volume and the mux */
        size_t n_encoder;
        GPtrArray *play_volumes; /* volume element of each audio receive branch (ref each) */
        bool play_muted;

        /* Never taken by PipeWire's threads (whose callbacks take `lock`): held while streams
         * are retargeted, which takes PipeWire's loop lock. */
        GMutex speakers_lock;
        GPtrArray *speakers;     /* Speaker* of each audio receive branch (owned by its appsink) */
        char *output_target;     /* speaker node.name; NULL = system default */

        /* Main context only; the microphone callbacks read only immutable fields. */
        PwAudioStream *mic;
        /* Written by the microphone's data thread: the last period's level (centi-dBFS) and when
         * it last delivered anything but digital silence (monotonic µs, 0 = never). */
        _Atomic int mic_level_cdb;
        _Atomic int64_t mic_sound_usec;
        /* The microphone's data thread only. */
        GstClockTime mic_next_pts;
        int16_t mic_chunk[MIC_CHUNK_SAMPLES];
        size_t mic_chunk_fill;
        gint negotiation_needed; /* atomic: on-negotiation-needed fired */
        gint sending;            /* atomic: the first RTP packet reached webrtcbin */
        gint offer_requested;    /* atomic: create-offer / create-answer issued */
        gint first_audio_seen;   /* atomic: first decoded buffer seen */
        gint rtp_received;       /* atomic: audio RTP packets reaching the depayloader */
        gint starting;           /* atomic: the READY -> PLAYING change is still running */
        gint connected_seen;     /* atomic: connected dispatched */

        /* Main context only. */
        gulong handler_ids[5];
        GSource *bus_source;
        GSource *offer_timeout;
        bool offer_done;
        bool failure_reported;
        bool muted;
        bool held;
        bool negotiated; /* answer applied (offerer) or answer handed out (answerer) */
        bool connected;  /* ICE + DTLS up */
        MediaFormat format; /* negotiated; valid once negotiated */
        char *answer_text; /* normalised text of the applied answer */
        char *codec;       /* send codec, lower case */
        char *local_sdp;   /* the offer or answer handed out */
        uint64_t first_audio_usec;

        /* DTMF sender, main context only. */
        GQueue dtmf_queue; /* DtmfTone* */
        GSource *dtmf_timer;
        bool dtmf_busy;     /* digits were queued and dtmf_sent is owed */
        bool dtmf_tone_on;  /* a start went out; the timer sends its stop */
        bool dtmf_draining; /* queue empty, waiting for rtpdtmfsrc to finish the last stop */
        unsigned dtmf_gap_ms;
        unsigned dtmf_stops_sent, dtmf_stops_done;
};

typedef struct Dispatch {
        Media *m; /* ref */
        GSource *source;
        DispatchKind kind;
        int error;
        char *message;
        uint64_t usec;
} Dispatch;

static const struct {
        const char *factory;
        const char *package;
} required_factories[] = {
        { "appsrc", "gstreamer1.0-plugins-base" },        { "appsink", "gstreamer1.0-plugins-base" },
        { "webrtcbin", "gstreamer1.0-plugins-bad" },      { "dtlssrtpenc", "gstreamer1.0-plugins-bad" },
        { "dtlssrtpdec", "gstreamer1.0-plugins-bad" },    { "srtpenc", "gstreamer1.0-plugins-bad" },
        { "nicesrc", "gstreamer1.0-nice" },               { "nicesink", "gstreamer1.0-nice" },
        { "rtpbin", "gstreamer1.0-plugins-good" },        { "audioconvert", "gstreamer1.0-plugins-base" },
        { "audioresample", "gstreamer1.0-plugins-base" }, { "volume", "gstreamer1.0-plugins-base" },
        { "opusenc", "gstreamer1.0-plugins-base" },       { "opusdec", "gstreamer1.0-plugins-base" },
        { "rtpopuspay", "gstreamer1.0-plugins-good" },    { "rtpopusdepay", "gstreamer1.0-plugins-good" },
        { "rtppcmupay", "gstreamer1.0-plugins-good" },    { "rtppcmapay", "gstreamer1.0-plugins-good" },
        { "rtppcmudepay", "gstreamer1.0-plugins-good" },  { "rtppcmadepay", "gstreamer1.0-plugins-good" },
        { "mulawenc", "gstreamer1.0-plugins-good" },      { "alawenc", "gstreamer1.0-plugins-good" },
        { "mulawdec", "gstreamer1.0-plugins-good" },      { "alawdec", "gstreamer1.0-plugins-good" },
        { "rtpdtmfmux", "gstreamer1.0-plugins-good" },    { "rtpdtmfsrc", "gstreamer1.0-plugins-good" },
        { "rtpdtmfdepay", "gstreamer1.0-plugins-good" },  { "queue", "gstreamer1.0 (core)" },
        { "capsfilter", "gstreamer1.0 (core)" },          { "fakesink", "gstreamer1.0 (core)" },
};

/* Codecs the offer must carry besides Opus (gateway-protocol §4). webrtcbin 1.22 only puts the
 * codecs of the caps seen on its sink pad into the offer, so they are added to the SDP text
 * before set-local-description (platform-notes §2). */
static const struct {
        const char *pt;
        const char *rtpmap;
        const char *fmtp;
} offer_extra_codecs[] = {
        { "0", "0 PCMU/8000", NULL },
        { "8", "8 PCMA/8000", NULL },
        { "101", "101 telephone-event/48000", "101 0-15" },
        { "126", "126 telephone-event/8000", "126 0-15" },
};

/* webrtcbin answers its sink pad's accept-caps and caps queries from the transceiver's codec
 * preferences, so they must hold everything that may reach that pad: every codec the answer may
 * pick and telephone-event (with Opus alone the first DTMF digit failed with not-negotiated and
 * stopped the whole send branch). Offer creation intersects them with the caps seen (Opus), so
 * the extra entries do not leak into the offer. The Opus fmtp fields are the ones browsers offer. */
static const char offer_codec_preferences[] =
        "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111,"
        "encoding-params=(string)2,minptime=(string)10,useinbandfec=(string)1;"
        "application/x-rtp,media=audio,encoding-name=PCMU,clock-rate=8000,payload=0;"
        "application/x-rtp,media=audio,encoding-name=PCMA,clock-rate=8000,payload=8;"
        "application/x-rtp,media=audio,encoding-name=TELEPHONE-EVENT,clock-rate=48000,payload=101;"
        "application/x-rtp,media=audio,encoding-name=TELEPHONE-EVENT,clock-rate=8000,payload=126";

static Media *media_ref(Media *m) {
        g_atomic_int_inc(&m->n_ref);
        return m;
}

static void media_unref(Media *m) {
        if (!m || !g_atomic_int_dec_and_test(&m->n_ref))
                return;
        /* media_free() already released the pipeline; this is the memory only. */
        g_ptr_array_unref(m->pending);
        g_ptr_array_unref(m->play_volumes);
        g_mutex_clear(&m->lock);
        gst_clear_object(&m->mic_src);
        gst_clear_object(&m->echo_src);
        pw_audio_unref(m->pw);
        g_main_context_unref(m->context);
        g_ptr_array_unref(m->speakers);
        g_mutex_clear(&m->speakers_lock);
        g_free(m->output_target);
        g_free(m->answer_text);
        g_free(m->codec);
        g_free(m->local_sdp);
        g_free(m);
}

static void media_unref_notify(gpointer p) {
        media_unref(p);
}

static void media_closure_notify(gpointer p, GClosure *closure) {
        media_unref(p);
}

static bool media_is_freed(Media *m) {
        bool freed;

        g_mutex_lock(&m->lock);
        freed = m->freed;
        g_mutex_unlock(&m->lock);
        return freed;
}

static uint64_t media_elapsed_msec(const Media *m) {
        return (uint64_t) (g_get_monotonic_time() - m->start_usec) / 1000U;
}

static const char *media_sdp_kind(const Media *m) {
        return m->answerer ? "answer" : "offer";
}

/* ---- hopping to the main context ---- */

static void dispatch_free(gpointer p) {
        Dispatch *d = p;

        media_unref(d->m);
        g_free(d->message);
        g_free(d);
}

static void media_report_failure(Media *m, int error, const char *message);
static void media_deliver_offer(Media *m, bool timed_out);
static void media_dtmf_next(Media *m);

static gboolean dispatch_run(gpointer p) {
        Dispatch *d = p;
        Media *m = d->m;
        bool freed, removed;

        g_mutex_lock(&m->lock);
        freed = m->freed;
        removed = g_ptr_array_remove_fast(m->pending, d->source);
        g_mutex_unlock(&m->lock);
        if (removed)
                g_source_unref(d->source); /* the main loop still holds its own ref */
        if (freed)
                return G_SOURCE_REMOVE;

        /* d keeps a ref on m, so a callback may call media_free() safely. */
        switch (d->kind) {
        case DISPATCH_OFFER_READY:
                media_deliver_offer(m, false);
                break;
        case DISPATCH_OFFER_ERROR:
        case DISPATCH_FAILED:
                media_report_failure(m, d->error, d->message);
                break;
        case DISPATCH_FIRST_AUDIO:
                if (m->first_audio_usec != 0)
                        break;
                m->first_audio_usec = d->usec;
                log_debug("Media: first decoded remote audio %" PRIu64 " ms after start.",
                          media_elapsed_msec(m));
                if (m->cb.first_audio)
                        m->cb.first_audio(m, m->userdata);
                break;
        case DISPATCH_CONNECTED:
                log_debug("Media: connected %" PRIu64 " ms after start.", media_elapsed_msec(m));
                m->connected = true;
                media_dtmf_next(m); /* digits queued before the connection go out now */
                break;
        case DISPATCH_DTMF_RECEIVED:
                log_debug("Media: received RFC 4733 digit %c.", (char) d->error);
                if (m->cb.dtmf_received)
                        m->cb.dtmf_received(m, (char) d->error, m->userdata);
                break;
        }
        return G_SOURCE_REMOVE;
}

/* Callable from any thread. Always queued, never run inline: g_main_context_invoke() would run
 * the function right away on a GStreamer thread whenever it can acquire the context (for
 * instance while the main thread sits in media_get_stats() or before the loop runs), which
 * would break the "callbacks only on the main context" rule. */
static void media_queue(Media *m, DispatchKind kind, int error, const char *message, uint64_t usec) {
        Dispatch *d;
        GSource *source;

        d = g_new0(Dispatch, 1);
        d->m = media_ref(m);
        d->kind = kind;
        d->error = error;
        d->message = g_strdup(message);
        d->usec = usec;

        source = g_idle_source_new();
        g_source_set_priority(source, G_PRIORITY_DEFAULT);
        g_source_set_static_name(source, "bwcall-media-dispatch");
        g_source_set_callback(source, dispatch_run, d, dispatch_free);
        d->source = source;

        g_mutex_lock(&m->lock);
        if (!m->freed) {
                g_ptr_array_add(m->pending, g_source_ref(source));
                g_source_attach(source, m->context);
        }
        g_mutex_unlock(&m->lock);
        g_source_unref(source); /* unattached: finalises now and frees d */
}

/* ---- main context: results to the user ---- */

static void media_report_failure(Media *m, int error, const char *message) {
        if (m->failure_reported)
                return;
        m->failure_reported = true;

        if (!m->offer_done) {
                /* Nothing was handed out yet: the offer (answer) itself failed. */
                m->offer_done = true;
                if (m->offer_timeout) {
                        g_source_destroy(m->offer_timeout);
                        g_clear_pointer(&m->offer_timeout, g_source_unref);
                }
                log_error_errno(error, "Media: creating the %s failed: %s", media_sdp_kind(m), message);
                if (m->cb.offer_ready)
                        m->cb.offer_ready(m, NULL, error, m->userdata);
                return;
        }

        log_error_errno(error, "Media: %s", message);
        if (m->cb.failed)
                m->cb.failed(m, error, message, m->userdata);
}

static unsigned sdp_count_candidates(const GstSDPMessage *sdp) {
        unsigned n = 0;

        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                const GstSDPMedia *media = gst_sdp_message_get_media(sdp, i);

                for (guint j = 0; j < gst_sdp_media_attributes_len(media); j++)
                        if (g_strcmp0(gst_sdp_media_get_attribute(media, j)->key, "candidate") == 0)
                                n++;
        }
        return n;
}

static void media_deliver_offer(Media *m, bool timed_out) {
        GstWebRTCSessionDescription *desc = NULL;
        g_autofree char *text = NULL;
        unsigned n_candidates;

        if (m->offer_done)
                return;

        g_object_get(m->webrtcbin, "local-description", &desc, NULL);
        if (!desc) {
                if (timed_out)
                        media_report_failure(m, -ETIMEDOUT, "no local description in time");
                return;
        }
        n_candidates = sdp_count_candidates(desc->sdp);
        text = gst_sdp_message_as_text(desc->sdp);
        gst_webrtc_session_description_free(desc);

        if (n_candidates == 0 || !text) {
                /* Without a local candidate libnice has no socket to check from: the call could
                 * never connect. Happens when the configured ICE addresses do not exist. */
                media_report_failure(m, -EADDRNOTAVAIL,
                                     "ICE gathering produced no candidate (check the ICE address list)");
                return;
        }
        if (timed_out)
                log_warning("Media: ICE gathering not complete after %u ms, sending the %s with the %u "
                            "candidate(s) found.",
                            MEDIA_OFFER_TIMEOUT_MSEC, media_sdp_kind(m), n_candidates);

        m->offer_done = true;
        if (m->offer_timeout) {
                g_source_destroy(m->offer_timeout);
                g_clear_pointer(&m->offer_timeout, g_source_unref);
        }
        g_free(m->local_sdp);
        m->local_sdp = g_strdup(text);
        if (m->answerer) {
                /* The answer is final for webrtcbin: the media is negotiated once it is out. */
                m->format = m->initial;
                m->negotiated = true;
        }
        log_debug("Media: %s ready after %" PRIu64 " ms with %u candidate(s).", media_sdp_kind(m),
                  media_elapsed_msec(m), n_candidates);
        if (m->cb.offer_ready)
                m->cb.offer_ready(m, text, 0, m->userdata);
}

static gboolean on_offer_timeout(gpointer userdata) {
        Media *m = media_ref(userdata); /* the callback may call media_free() */

        g_clear_pointer(&m->offer_timeout, g_source_unref);
        if (!g_atomic_int_get(&m->sending))
                /* The offer waits for the first encoded packet (media_maybe_create_offer()). */
                media_report_failure(m, -ENODEV, "no audio from the microphone in time (is a source linked?)");
        else {
                media_deliver_offer(m, true);
                if (!m->offer_done)
                        media_report_failure(m, -ETIMEDOUT, "ICE gathering did not complete");
        }
        media_unref(m);
        return G_SOURCE_REMOVE;
}

/* ---- SDP ---- */

static const GstSDPMedia *sdp_find_audio(const GstSDPMessage *sdp) {
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                const GstSDPMedia *media = gst_sdp_message_get_media(sdp, i);

                if (g_strcmp0(gst_sdp_media_get_media(media), "audio") == 0)
                        return media;
        }
        return NULL;
}

/* Whether the attribute is present at media or session level (value or not: "a=rtcp-mux"). */
static bool sdp_has_attribute(const GstSDPMessage *sdp, const GstSDPMedia *media, const char *key) {
        for (guint i = 0; media && i < gst_sdp_media_attributes_len(media); i++)
                if (g_strcmp0(gst_sdp_media_get_attribute(media, i)->key, key) == 0)
                        return true;
        for (guint i = 0; sdp && i < gst_sdp_message_attributes_len(sdp); i++)
                if (g_strcmp0(gst_sdp_message_get_attribute(sdp, i)->key, key) == 0)
                        return true;
        return false;
}

/* Checks what webrtcbin needs (offer or answer) and returns a description of what is missing,
 * or NULL. */
static const char *sdp_missing_webrtc(const GstSDPMessage *sdp) {
        const GstSDPMedia *audio = sdp_find_audio(sdp);

        if (!audio)
                return "m=audio";
        if (gst_sdp_media_get_port(audio) == 0)
                return "an accepted audio stream (port 0)";
        if (gst_sdp_media_formats_len(audio) == 0)
                return "a payload type";
        if (!sdp_has_attribute(sdp, audio, "ice-ufrag"))
                return "a=ice-ufrag";
        if (!sdp_has_attribute(sdp, audio, "ice-pwd"))
                return "a=ice-pwd";
        if (!sdp_has_attribute(sdp, audio, "fingerprint"))
                return "a=fingerprint";
        if (!sdp_has_attribute(sdp, audio, "rtcp-mux"))
                return "a=rtcp-mux";
        if (!sdp_has_attribute(NULL, audio, "candidate"))
                return "a=candidate";
        return NULL;
}

static bool sdp_media_has_format(const GstSDPMedia *media, const char *pt) {
        for (guint i = 0; i < gst_sdp_media_formats_len(media); i++)
                if (g_strcmp0(gst_sdp_media_get_format(media, i), pt) == 0)
                        return true;
        return false;
}

static int sdp_parse_pt(const char *s) {
        char *end = NULL;
        long pt;

        if (!s || !g_ascii_isdigit(*s))
                return -1;
        pt = strtol(s, &end, 10);
        if (!end || *end || pt < 0 || pt > 127)
                return -1;
        return (int) pt;
}

/* Encoding name (lower case) and clock rate of payload type pt in media, from a=rtpmap or the
 * RFC 3551 static table. */
static bool sdp_format_info(const GstSDPMedia *media, const char *pt, char **ret_name, unsigned *ret_rate) {
        size_t len = strlen(pt);

        for (guint i = 0; i < gst_sdp_media_attributes_len(media); i++) {
                const GstSDPAttribute *a = gst_sdp_media_get_attribute(media, i);
                const char *name, *slash;

                if (g_strcmp0(a->key, "rtpmap") != 0 || !a->value || strncmp(a->value, pt, len) != 0 ||
                    a->value[len] != ' ')
                        continue;
                name = a->value + len + 1;
                name += strspn(name, " ");
                slash = strchr(name, '/');
                if (!slash)
                        return false;
                *ret_name = g_ascii_strdown(name, slash - name);
                *ret_rate = (unsigned) strtoul(slash + 1, NULL, 10);
                return true;
        }
        if (strcmp(pt, "0") == 0 || strcmp(pt, "8") == 0) {
                *ret_name = g_strdup(strcmp(pt, "0") == 0 ? "pcmu" : "pcma");
                *ret_rate = 8000;
                return true;
        }
        return false;
}

/* The send format of an audio section: the first codec we can send in the section's order (an
 * answer), or the best by our preference (an offer: Opus, else PCMU, else PCMA), plus the
 * telephone-event payload types. Returns false if there is no codec we can send. */
static bool sdp_pick_format(const GstSDPMedia *audio, bool by_preference, MediaFormat *ret) {
        MediaFormat f = { .codec = _SEND_CODEC_MAX, .pt = -1, .te_pt = -1, .rx_te_pt = -1 };
        int te_48k = -1, te_8k = -1;

        for (guint i = 0; i < gst_sdp_media_formats_len(audio); i++) {
                const char *fmt = gst_sdp_media_get_format(audio, i);
                g_autofree char *name = NULL;
                unsigned rate = 0;
                int pt = sdp_parse_pt(fmt);

                if (pt < 0 || !sdp_format_info(audio, fmt, &name, &rate))
                        continue;
                if (strcmp(name, "telephone-event") == 0) {
                        if (rate == 48000 && te_48k < 0)
                                te_48k = pt;
                        else if (rate == 8000 && te_8k < 0)
                                te_8k = pt;
                        continue;
                }
                for (SendCodec c = 0; c < _SEND_CODEC_MAX; c++)
                        if (g_ascii_strcasecmp(name, send_codecs[c].encoding) == 0 &&
                            rate == send_codecs[c].rate && (f.pt < 0 || (by_preference && c < f.codec))) {
                                f.codec = c;
                                f.pt = pt;
                        }
        }
        if (f.pt < 0)
                return false;

        /* rtpdtmfmux forces one clock rate on all its inputs: only the telephone-event at the send
         * codec's rate can be sent. Another one can still be received. */
        f.te_pt = send_codecs[f.codec].rate == 48000 ? te_48k : te_8k;
        if (f.te_pt < 0 && (te_48k >= 0 || te_8k >= 0)) {
                f.rx_te_pt = te_48k >= 0 ? te_48k : te_8k;
                f.rx_te_rate = te_48k >= 0 ? 48000 : 8000;
        }
        *ret = f;
        return true;
}

static const char *sdp_direction(const GstSDPMessage *sdp, const GstSDPMedia *media) {
        static const char *const dirs[] = { "sendrecv", "sendonly", "recvonly", "inactive" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (sdp_has_attribute(NULL, media, dirs[i]))
                        return dirs[i];
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
                if (sdp_has_attribute(sdp, NULL, dirs[i]))
                        return dirs[i];
        return "sendrecv";
}

/* webrtcbin 1.22 builds the answer from the offer's caps intersected with our payloader's, and
 * rtpopuspay's caps say sprop-stereo=0 and sprop-maxcapturerate=48000: an offer with other sprop-*
 * values (the offerer's own sending properties, RFC 7587 §6.1, nothing we must match) leaves no
 * intersection, and webrtcbin answers recvonly without our codec (measured with sprop-stereo=1 and
 * sprop-maxcapturerate=16000). They are dropped from the copy of the offer webrtcbin sees. */
static void offer_drop_sprop(GstSDPMedia *audio, int pt) {
        g_autofree char *prefix = g_strdup_printf("%d ", pt);

        for (guint i = 0; i < gst_sdp_media_attributes_len(audio);) {
                const GstSDPAttribute *a = gst_sdp_media_get_attribute(audio, i);
                g_auto(GStrv) params = NULL;
                GString *kept;
                GstSDPAttribute replacement;
                bool dropped = false;

                if (g_strcmp0(a->key, "fmtp") != 0 || !a->value || !g_str_has_prefix(a->value, prefix)) {
                        i++;
                        continue;
                }
                params = g_strsplit(a->value + strlen(prefix), ";", -1);
                kept = g_string_new(prefix);
                for (char **p = params; *p; p++) {
                        const char *param = *p + strspn(*p, " ");

                        if (!*param)
                                continue;
                        if (g_str_has_prefix(param, "sprop-")) {
                                dropped = true;
                                continue;
                        }
                        if (kept->len > strlen(prefix))
                                g_string_append_c(kept, ';');
                        g_string_append(kept, param);
                }
                if (dropped) {
                        log_debug("Media: offer fmtp \"%s\" handed to webrtcbin as \"%s\".", a->value,
                                  kept->str);
                        if (kept->len == strlen(prefix)) {
                                gst_sdp_media_remove_attribute(audio, i);
                                g_string_free(kept, TRUE);
                                continue;
                        }
                        gst_sdp_attribute_set(&replacement, "fmtp", kept->str);
                        gst_sdp_media_replace_attribute(audio, i, &replacement);
                }
                g_string_free(kept, TRUE);
                i++;
        }
}

static char *format_codec_preferences(const MediaFormat *f) {
        GString *s = g_string_new(NULL);

        g_string_append_printf(s, "application/x-rtp,media=audio,encoding-name=%s,clock-rate=%u,payload=%d",
                               send_codecs[f->codec].encoding, send_codecs[f->codec].rate, f->pt);
        if (f->codec == SEND_CODEC_OPUS)
                g_string_append(s, ",encoding-params=(string)2");
        /* rtpdtmfsrc negotiates once at start even when it will never send (no telephone-event
         * negotiated); its caps then pass rtpdtmfmux, and webrtcbin should not refuse them. */
        g_string_append_printf(s, ";application/x-rtp,media=audio,encoding-name=TELEPHONE-EVENT,"
                                  "clock-rate=%u,payload=%d",
                               send_codecs[f->codec].rate, f->te_pt >= 0 ? f->te_pt : OFFER_PT_TE_48K);
        return g_string_free(s, FALSE);
}

/* ---- offer and answer creation (webrtcbin's thread) ---- */

static void offer_add_codecs(GstSDPMessage *sdp) {
        for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
                GstSDPMedia *media = (GstSDPMedia *) gst_sdp_message_get_media(sdp, i);

                if (g_strcmp0(gst_sdp_media_get_media(media), "audio") != 0)
                        continue;
                /* Opus stays first (webrtcbin puts PT 111 there); the rest are appended. */
                for (size_t j = 0; j < ELEMENTSOF(offer_extra_codecs); j++) {
                        if (sdp_media_has_format(media, offer_extra_codecs[j].pt))
                                continue;
                        gst_sdp_media_add_format(media, offer_extra_codecs[j].pt);
                        gst_sdp_media_add_attribute(media, "rtpmap", offer_extra_codecs[j].rtpmap);
                        if (offer_extra_codecs[j].fmtp)
                                gst_sdp_media_add_attribute(media, "fmtp", offer_extra_codecs[j].fmtp);
                }
        }
}

/* Before set-local-description of our answer: webrtcbin 1.22 intersects the offer with the caps
 * seen on the sink pad, so the answer has the send codec only; telephone-event is added by hand
 * (platform-notes §2; only a local description listing it makes webrtcbin accept it on receive).
 * Returns NULL or what is wrong. */
static const char *answer_edit(const Media *m, GstSDPMessage *sdp) {
        GstSDPMedia *audio = (GstSDPMedia *) sdp_find_audio(sdp);
        g_autofree char *pt = NULL;
        const char *direction;
        int te_pt = m->initial.te_pt >= 0 ? m->initial.te_pt : m->initial.rx_te_pt;
        unsigned te_rate = m->initial.te_pt >= 0 ? send_codecs[m->initial.codec].rate
                                                 : m->initial.rx_te_rate;

        if (!audio || gst_sdp_media_get_port(audio) == 0)
                return "webrtcbin rejected the offer's audio stream";
        pt = g_strdup_printf("%d", m->initial.pt);
        if (!sdp_media_has_format(audio, pt))
                return "webrtcbin's answer lacks the send codec (the offer's codec parameters do not match)";
        direction = sdp_direction(sdp, audio);
        if (m->offer_lets_us_send && strcmp(direction, "sendrecv") != 0 &&
            strcmp(direction, "sendonly") != 0)
                return "webrtcbin did not attach the microphone to the offer's audio stream";

        if (te_pt >= 0) {
                g_autofree char *te = g_strdup_printf("%d", te_pt);

                if (!sdp_media_has_format(audio, te)) {
                        g_autofree char *rtpmap = g_strdup_printf("%d telephone-event/%u", te_pt, te_rate);
                        g_autofree char *fmtp = g_strdup_printf("%d 0-15", te_pt);

                        gst_sdp_media_add_format(audio, te);
                        gst_sdp_media_add_attribute(audio, "rtpmap", rtpmap);
                        gst_sdp_media_add_attribute(audio, "fmtp", fmtp);
                }
        }
        return NULL;
}

static char *promise_error_message(GstPromise *promise) {
        const GstStructure *reply;
        GError *error = NULL;
        char *message;

        if (gst_promise_wait(promise) != GST_PROMISE_RESULT_REPLIED)
                return g_strdup("webrtcbin did not reply (interrupted or expired)");
        reply = gst_promise_get_reply(promise);
        if (!reply || !gst_structure_has_field(reply, "error"))
                return NULL;
        gst_structure_get(reply, "error", G_TYPE_ERROR, &error, NULL);
        message = g_strdup(error ? error->message : "unknown webrtcbin error");
        g_clear_error(&error);
        return message;
}

static void on_local_description_set(GstPromise *promise, gpointer userdata) {
        Media *m = userdata;
        g_autofree char *error = promise_error_message(promise);

        gst_promise_unref(promise);
        if (error) {
                g_autofree char *message = g_strdup_printf("webrtcbin rejected the local %s: %s",
                                                           media_sdp_kind(m), error);
                media_queue(m, DISPATCH_OFFER_ERROR, -EPROTO, message, 0);
        }
}

/* Offer or answer created: edit it and set it as the local description. */
static void on_description_created(GstPromise *promise, gpointer userdata) {
        Media *m = userdata;
        GstWebRTCSessionDescription *desc = NULL;
        g_autofree char *error = promise_error_message(promise);
        const char *problem;
        GstPromise *set_promise;

        if (!error) {
                const GstStructure *reply = gst_promise_get_reply(promise);

                if (reply)
                        gst_structure_get(reply, media_sdp_kind(m), GST_TYPE_WEBRTC_SESSION_DESCRIPTION,
                                          &desc, NULL);
        }
        gst_promise_unref(promise);

        if (!desc) {
                g_autofree char *message = g_strdup_printf("create-%s failed: %s", media_sdp_kind(m),
                                                           error ?: "no description in the reply");
                media_queue(m, DISPATCH_OFFER_ERROR, -EPROTO, message, 0);
                return;
        }
        if (media_is_freed(m)) {
                gst_webrtc_session_description_free(desc);
                return;
        }

        if (m->answerer) {
                problem = answer_edit(m, desc->sdp);
                if (problem) {
                        g_autofree char *text = gst_sdp_message_as_text(desc->sdp);

                        log_debug("Media: unusable answer from webrtcbin:\n%s", text);
                        media_queue(m, DISPATCH_OFFER_ERROR, -EBADMSG, problem, 0);
                        gst_webrtc_session_description_free(desc);
                        return;
                }
        } else
                offer_add_codecs(desc->sdp);
        /* RFC 8842: a new DTLS association (a renewed Media in a re-INVITE) must be told from the
         * old one, and the fingerprint cannot tell: GStreamer uses one certificate per process. */
        for (guint i = 0; i < gst_sdp_message_medias_len(desc->sdp); i++) {
                GstSDPMedia *media = (GstSDPMedia *) gst_sdp_message_get_media(desc->sdp, i);

                if (!gst_sdp_media_get_attribute_val(media, "tls-id"))
                        gst_sdp_media_add_attribute(media, "tls-id", m->tls_id);
        }

        /* Gathering starts here; the result arrives through notify::ice-gathering-state. */
        set_promise = gst_promise_new_with_change_func(on_local_description_set, media_ref(m),
                                                       media_unref_notify);
        g_signal_emit_by_name(m->webrtcbin, "set-local-description", desc, set_promise);
        gst_webrtc_session_description_free(desc);
}

/* Creates the offer once webrtcbin wants one (on-negotiation-needed) *and* the first RTP packet
 * has reached it. Before the first packet webrtcbin 1.22 builds the m-line from a caps query on
 * its sink pad, which through rtpdtmfmux yields the rtpdtmfsrc caps: the offer would carry
 * telephone-event alone. Once caps were received it intersects the codec preferences with them:
 * Opus (platform-notes §1: "create the offer only from on-negotiation-needed", plus this). The
 * wait is the microphone's first 20 ms frame. The answerer (remote offer already set) waits for
 * the first packet only, for the same reason: the answer is the offer intersected with the caps
 * seen. Called from webrtcbin's or the send thread. */
static void media_maybe_create_offer(Media *m) {
        GstPromise *promise;

        if ((!m->answerer && !g_atomic_int_get(&m->negotiation_needed)) || !g_atomic_int_get(&m->sending))
                return;
        if (!g_atomic_int_compare_and_exchange(&m->offer_requested, 0, 1))
                return;
        if (media_is_freed(m))
                return;
        promise = gst_promise_new_with_change_func(on_description_created, media_ref(m), media_unref_notify);
        g_signal_emit_by_name(m->webrtcbin, m->answerer ? "create-answer" : "create-offer", NULL, promise);
}

static void on_negotiation_needed(GstElement *webrtcbin, gpointer userdata) {
        Media *m = userdata;

        /* Later renegotiation (hold, caps changes from DTMF or a codec switch) is not started from
         * here: hold only changes the SIP side's SDP direction (gateway-protocol §6). */
        g_atomic_int_set(&m->negotiation_needed, 1);
        media_maybe_create_offer(m);
}

static GstPadProbeReturn on_first_rtp_packet(GstPad *pad, GstPadProbeInfo *info,
                                              gpointer userdata) {
        Media *m = userdata;

        /* Sticky events go out before the buffer, so webrtcbin has stored the CAPS by now. */
        g_atomic_int_set(&m->sending, 1);
        media_maybe_create_offer(m);
        return GST_PAD_PROBE_REMOVE;
}

static void on_ice_gathering_state(GstElement *webrtcbin, GParamSpec *pspec, gpointer userdata) {
        Media *m = userdata;
        GstWebRTCICEGatheringState state;

        g_object_get(webrtcbin, "ice-gathering-state", &state, NULL);
        /* With gathering complete, local-description already carries every a=candidate. */
        if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
                media_queue(m, DISPATCH_OFFER_READY, 0, NULL, 0);
}

static void on_ice_connection_state(GstElement *webrtcbin, GParamSpec *pspec, gpointer userdata) {
        Media *m = userdata;
        GstWebRTCICEConnectionState state;

        g_object_get(webrtcbin, "ice-connection-state", &state, NULL);
        if (state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
                media_queue(m, DISPATCH_FAILED, -EHOSTUNREACH, "ICE connection failed", 0);
}

static void on_connection_state(GstElement *webrtcbin, GParamSpec *pspec, gpointer userdata) {
        Media *m = userdata;
        GstWebRTCPeerConnectionState state;

        g_object_get(webrtcbin, "connection-state", &state, NULL);
        /* Covers DTLS failures too; ICE failures arrive twice and are reported once. */
        if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
                media_queue(m, DISPATCH_FAILED, -ECONNREFUSED, "WebRTC connection failed (ICE or DTLS)",
                            0);
        else if (state == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED &&
                 g_atomic_int_compare_and_exchange(&m->connected_seen, 0, 1))
                media_queue(m, DISPATCH_CONNECTED, 0, NULL, 0);
}

/* ---- receive side (streaming threads) ---- */

static GstPadProbeReturn on_first_decoded_buffer(GstPad *pad, GstPadProbeInfo *info,
                                                  gpointer userdata) {
        Media *m = userdata;

        if (g_atomic_int_compare_and_exchange(&m->first_audio_seen, 0, 1))
                media_queue(m, DISPATCH_FIRST_AUDIO, 0, NULL, (uint64_t) g_get_real_time());
        return GST_PAD_PROBE_REMOVE;
}

/* Counts received audio RTP for the call's media watchdog: a cheap atomic the main loop can
 * read every second, instead of webrtcbin's get-stats round trip. */
static GstPadProbeReturn on_audio_rtp(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        Media *m = userdata;
        guint n = 1;

        /* The jitter buffer pushes buffer lists as well as single buffers. */
        if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
                n = gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
        g_atomic_int_add(&m->rtp_received, (gint) n);
        return GST_PAD_PROBE_OK;
}

typedef struct DtmfReceiveState {
        guint32 last_timestamp;
        bool have;
} DtmfReceiveState;

/* rtpdtmfdepay reports an event for every packet with the marker bit or a new RTP timestamp.
 * Senders may repeat the marked first packet of an event (RFC 4733 §2.5.1.2 allows redundancy),
 * which would report one digit twice: drop a marked packet of the event already seen. The RTP
 * header is read by hand (marker: byte 1 bit 7, timestamp: bytes 4-7) to stay off libgstrtp. */
static GstPadProbeReturn on_dtmf_rtp_packet(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        DtmfReceiveState *s = userdata;
        GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
        guint8 header[8];
        guint32 timestamp;
        bool marker;

        if (!buffer || gst_buffer_extract(buffer, 0, header, sizeof(header)) != sizeof(header))
                return GST_PAD_PROBE_OK;
        marker = header[1] & 0x80;
        timestamp = (guint32) header[4] << 24 | (guint32) header[5] << 16 | (guint32) header[6] << 8 |
                    header[7];
        if (s->have && timestamp == s->last_timestamp)
                return marker ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
        s->have = true;
        s->last_timestamp = timestamp;
        return GST_PAD_PROBE_OK;
}

static GstElement *make_element(const char *factory) {
        GstElement *e = gst_element_factory_make(factory, NULL);

        if (!e)
                log_error("Media: GStreamer element '%s' is missing.", factory);
        return e;
}

/* ---- PipeWire streams (common/pw-audio.h) ---- */

#define RAW_AUDIO_CAPS "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved"
/* What the microphone's appsrc may queue before dropping the oldest: a stalled pipeline must not
 * turn into delay. */
#define MIC_QUEUE_MSEC 200U

/* PipeWire thread. Either stream failed (e.g. PipeWire went away). */
static void on_stream_failed(const char *message, void *userdata) {
        Media *m = userdata;
        g_autofree char *text = g_strdup_printf("PipeWire stream failed: %s", message);

        media_queue(m, DISPATCH_FAILED, -EIO, text, 0);
}

/* Timestamps that follow the sample count, so the audio is one continuous stream: stamping each
 * period with the clock when it arrives (appsrc's do-timestamp) jitters by a millisecond or two,
 * and audioresample then flags every buffer DISCONT, which makes webrtcdsp throw its input away
 * (it never had the 10 ms it works on: no audio at all). The clock only resets the stream when
 * the two disagree by more than RESYNC_NSEC (a stall, a device switch). `at_end`: the samples
 * ended now (captured), else they start now (handed to PipeWire to play). */
#define RESYNC_NSEC (40 * GST_MSECOND)

static void stamp_continuous(GstElement *src, GstClockTime *next_pts, GstBuffer *buffer, size_t n, bool at_end) {
        GstClockTime duration = gst_util_uint64_scale_int(n, GST_SECOND, PW_AUDIO_RATE);
        g_autoptr(GstClock) clock = gst_element_get_clock(src);
        GstClockTime now, start;

        if (!clock)
                return;
        now = gst_clock_get_time(clock) - gst_element_get_base_time(src);
        start = !at_end ? now : now > duration ? now - duration : 0;
        if (!GST_CLOCK_TIME_IS_VALID(*next_pts) || GST_CLOCK_DIFF(*next_pts, start) > (GstClockTimeDiff) RESYNC_NSEC ||
            GST_CLOCK_DIFF(start, *next_pts) > (GstClockTimeDiff) RESYNC_NSEC) {
                if (GST_CLOCK_TIME_IS_VALID(*next_pts))
                        GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
                *next_pts = start;
        }
        GST_BUFFER_PTS(buffer) = *next_pts;
        GST_BUFFER_DURATION(buffer) = duration;
        *next_pts += duration;
}

/* PipeWire's data thread: one period of the microphone into the pipeline. Dropped until the
 * pipeline plays (there is no running time before). */
static void on_mic_samples(const int16_t *samples, size_t n, void *userdata) {
        Media *m = userdata;
        GstBuffer *buffer;
        double sum = 0;

        /* The level before mute and hold (those act further down the pipeline): speaking while
         * muted and a microphone that delivers nothing are what it is for. */
        for (size_t i = 0; i < n; i++)
                sum += (double) samples[i] * samples[i];
        if (sum > 0) {
                atomic_store(&m->mic_level_cdb, (int) lround(100 * 10 * log10(sum / n / (32768.0 * 32768.0))));
                atomic_store(&m->mic_sound_usec, g_get_monotonic_time());
        } else
                atomic_store(&m->mic_level_cdb, MEDIA_SILENCE_DBFS * 100);

        if (GST_STATE(m->mic_src) != GST_STATE_PLAYING) {
                m->mic_chunk_fill = 0;
                return;
        }
        /* 10 ms buffers whatever PipeWire's period: webrtcdsp works on 10 ms and throws away what
         * it holds whenever its base class still has a DISCONT pending, which stays pending until
         * it has produced output: shorter buffers never got through it (GStreamer 1.22). */
        for (size_t done = 0; done < n;) {
                size_t take = MIN(n - done, MIC_CHUNK_SAMPLES - m->mic_chunk_fill);

                memcpy(m->mic_chunk + m->mic_chunk_fill, samples + done, take * sizeof(int16_t));
                m->mic_chunk_fill += take;
                done += take;
                if (m->mic_chunk_fill < MIC_CHUNK_SAMPLES)
                        break;
                buffer = gst_buffer_new_memdup(m->mic_chunk, sizeof(m->mic_chunk));
                stamp_continuous(m->mic_src, &m->mic_next_pts, buffer, MIC_CHUNK_SAMPLES, true);
                gst_app_src_push_buffer(GST_APP_SRC(m->mic_src), buffer);
                m->mic_chunk_fill = 0;
        }
}

static int media_open_microphone(Media *m, const char *target) {
        const PwAudioStreamConfig config = {
                .direction = PW_AUDIO_CAPTURE,
                .name = "bwcall microphone",
                .target = target,
                .role = "Communication",
                .captured = on_mic_samples,
                .failed = on_stream_failed,
                .userdata = m,
        };

        return pw_audio_stream_new(m->pw, &config, &m->mic);
}

/* One receive branch's speaker: the appsink's callback data, freed with the appsink. */
typedef struct Speaker {
        Media *m; /* ref: the stream's callbacks use it */
        PwAudioStream *stream;
} Speaker;

static void speaker_free(gpointer p) {
        Speaker *sp = p;

        /* Its stream still runs until freed below; it stops feeding the reference now. */
        g_atomic_pointer_compare_and_exchange(&sp->m->echo_speaker, sp, NULL);
        g_mutex_lock(&sp->m->speakers_lock);
        g_ptr_array_remove_fast(sp->m->speakers, sp);
        g_mutex_unlock(&sp->m->speakers_lock);
        pw_audio_stream_free(sp->stream);
        media_unref(sp->m);
        g_free(sp);
}

static void on_speaker_failed(const char *message, void *userdata) {
        Speaker *sp = userdata;

        on_stream_failed(message, sp->m);
}

/* PipeWire's data thread: what the speaker plays now, as the echo canceller's reference. Only
 * the newest speaker's: a far end that changes its SSRC (a transfer, a re-anchoring SBC) gets a
 * new receive branch while the old one plays silence. */
static void on_speaker_played(const int16_t *samples, size_t n, void *userdata) {
        Speaker *sp = userdata;
        Media *m = sp->m;
        GstBuffer *buffer;

        if (g_atomic_pointer_get(&m->echo_speaker) != sp || GST_STATE(m->echo_src) != GST_STATE_PLAYING)
                return;
        buffer = gst_buffer_new_memdup(samples, n * sizeof(int16_t));
        stamp_continuous(m->echo_src, &m->echo_next_pts, buffer, n, false);
        gst_app_src_push_buffer(GST_APP_SRC(m->echo_src), buffer);
}

/* appsink's streaming thread. */
static GstFlowReturn on_speaker_sample(GstAppSink *sink, gpointer userdata) {
        Speaker *sp = userdata;
        g_autoptr(GstSample) sample = gst_app_sink_pull_sample(sink);
        GstBuffer *buffer = sample ? gst_sample_get_buffer(sample) : NULL;
        GstMapInfo map;

        if (buffer && gst_buffer_map(buffer, &map, GST_MAP_READ)) {
                pw_audio_stream_write(sp->stream, (const int16_t *) map.data, map.size / sizeof(int16_t));
                gst_buffer_unmap(buffer, &map);
        }
        return GST_FLOW_OK;
}

/* A speaker stream behind `sink` (an appsink not yet in the pipeline). Streaming thread. */
static int media_attach_speaker(Media *m, GstElement *sink) {
        Speaker *sp = g_new0(Speaker, 1);
        /* The echo canceller's reference is what a speaker hands PipeWire, when it does: that is
         * what comes back into the microphone (a reference taken before the speaker's ring buffer
         * had a delay that changed with the network's jitter; the canceller lost track of it). */
        PwAudioStreamConfig config = {
                .direction = PW_AUDIO_PLAYBACK,
                .name = "bwcall speaker",
                .role = "Communication",
                .played = m->echo_src ? on_speaker_played : NULL,
                .failed = on_speaker_failed,
                .userdata = sp,
        };
        GstAppSinkCallbacks callbacks = { .new_sample = on_speaker_sample };
        g_autoptr(GstCaps) caps = gst_caps_from_string(RAW_AUDIO_CAPS);
        int r;

        sp->m = media_ref(m);
        /* media_set_output() may change the target and walk the speakers meanwhile. */
        g_mutex_lock(&m->speakers_lock);
        config.target = m->output_target;
        r = pw_audio_stream_new(m->pw, &config, &sp->stream);
        if (r >= 0)
                g_ptr_array_add(m->speakers, sp);
        g_mutex_unlock(&m->speakers_lock);
        if (r < 0) {
                media_unref(sp->m);
                g_free(sp);
                return log_error_errno(r, "Media: cannot open the speaker stream: %m");
        }
        if (m->echo_src)
                g_atomic_pointer_set(&m->echo_speaker, sp);
        /* Paced by the jitter buffer upstream; the stream's ring absorbs the rest. */
        g_object_set(sink, "caps", caps, "sync", FALSE, "async", FALSE, NULL);
        gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, sp, speaker_free);
        return 0;
}

/* Builds and links the decoding branch for one webrtcbin src pad. Runs on a streaming thread,
 * before the CAPS event leaves the pad. */
static int media_link_receive_branch(Media *m, GstPad *pad, const GstCaps *caps) {
        const GstStructure *s = gst_caps_get_structure(caps, 0);
        const char *encoding = s ? gst_structure_get_string(s, "encoding-name") : NULL;
        const char *depay_name = NULL, *dec_name = NULL;
        GstElement *chain[8] = {};
        GstElement *play_volume = NULL;
        size_t n = 0;
        bool audio = false, dtmf = false;
        g_autoptr(GstPad) sinkpad = NULL;

        if (!encoding)
                encoding = "";
        if (g_ascii_strcasecmp(encoding, "OPUS") == 0) {
                depay_name = "rtpopusdepay";
                dec_name = "opusdec";
        } else if (g_ascii_strcasecmp(encoding, "PCMU") == 0) {
                depay_name = "rtppcmudepay";
                dec_name = "mulawdec";
        } else if (g_ascii_strcasecmp(encoding, "PCMA") == 0) {
                depay_name = "rtppcmadepay";
                dec_name = "alawdec";
        } else if (g_ascii_strcasecmp(encoding, "TELEPHONE-EVENT") == 0) {
                /* rtpdtmfdepay posts a "dtmf-event" element message per event on the bus. */
                depay_name = "rtpdtmfdepay";
                dtmf = true;
        } else
                log_warning("Media: remote stream with unsupported encoding '%s', discarding it.", encoding);

        audio = dec_name != NULL;
        if (!(chain[n++] = make_element("queue")))
                goto fail;
        if (depay_name && !(chain[n++] = make_element(depay_name)))
                goto fail;
        if (audio) {
                if (!(chain[n++] = make_element(dec_name)) ||
                    !(chain[n++] = make_element("audioconvert")) ||
                    !(chain[n++] = make_element("audioresample")) ||
                    !(play_volume = chain[n++] = make_element("volume")) ||
                    !(chain[n++] = make_element("appsink")))
                        goto fail;
                if (media_attach_speaker(m, chain[n - 1]) < 0)
                        goto fail;
        } else {
                if (!(chain[n++] = make_element("fakesink")))
                        goto fail;
                g_object_set(chain[n - 1], "async", FALSE, "sync", FALSE, NULL);
        }

        if (play_volume) {
                /* Hold (media_set_active()) mutes every speaker branch, the future ones too. */
                g_mutex_lock(&m->lock);
                g_object_set(play_volume, "mute", (gboolean) m->play_muted, NULL);
                g_ptr_array_add(m->play_volumes, gst_object_ref(play_volume));
                g_mutex_unlock(&m->lock);
        }

        for (size_t i = 0; i < n; i++)
                gst_bin_add(GST_BIN(m->pipeline), chain[i]);
        for (size_t i = 0; i + 1 < n; i++)
                if (!gst_element_link(chain[i], chain[i + 1])) {
                        log_error("Media: cannot link the %s receive branch.", encoding);
                        return -EINVAL;
                }
        for (size_t i = n; i > 0; i--)
                gst_element_sync_state_with_parent(chain[i - 1]);

        if (audio) {
                g_autoptr(GstPad) decpad = gst_element_get_static_pad(chain[2], "src");

                g_autoptr(GstPad) depay_sink = gst_element_get_static_pad(chain[1], "sink");

                gst_pad_add_probe(decpad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                                  on_first_decoded_buffer, media_ref(m), media_unref_notify);
                gst_pad_add_probe(depay_sink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                                  on_audio_rtp, media_ref(m), media_unref_notify);
        }
        if (dtmf) {
                g_autoptr(GstPad) depay_sink = gst_element_get_static_pad(chain[1], "sink");

                gst_pad_add_probe(depay_sink, GST_PAD_PROBE_TYPE_BUFFER, on_dtmf_rtp_packet,
                                  g_new0(DtmfReceiveState, 1), g_free);
        }

        sinkpad = gst_element_get_static_pad(chain[0], "sink");
        if (GST_PAD_LINK_FAILED(gst_pad_link(pad, sinkpad))) {
                log_error("Media: cannot link webrtcbin pad %s to the %s branch.", GST_PAD_NAME(pad),
                          encoding);
                return -EINVAL;
        }
        log_debug("Media: receiving %s on %s.", encoding, GST_PAD_NAME(pad));
        return 0;

fail:
        for (size_t i = 0; i < n; i++)
                if (chain[i])
                        gst_object_unref(chain[i]);
        return -ENODEV;
}

static void media_handle_new_stream(Media *m, GstPad *pad, const GstCaps *caps) {
        int r;

        if (media_is_freed(m))
                return;
        r = media_link_receive_branch(m, pad, caps);
        if (r < 0) {
                g_autofree char *caps_text = gst_caps_to_string(caps);
                g_autofree char *message = g_strdup_printf("cannot play the remote stream %s", caps_text);

                media_queue(m, DISPATCH_FAILED, r, message, 0);
        }
}

static GstPadProbeReturn on_src_pad_event(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        Media *m = userdata;
        GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
        GstCaps *caps = NULL;

        /* Stream-start comes first: let it through and keep blocking until CAPS. */
        if (!event || GST_EVENT_TYPE(event) != GST_EVENT_CAPS)
                return GST_PAD_PROBE_PASS;
        gst_event_parse_caps(event, &caps);
        media_handle_new_stream(m, pad, caps);
        return GST_PAD_PROBE_REMOVE;
}

static void on_pad_added(GstElement *webrtcbin, GstPad *pad, gpointer userdata) {
        Media *m = userdata;
        g_autoptr(GstCaps) caps = NULL;

        if (GST_PAD_DIRECTION(pad) != GST_PAD_SRC)
                return;

        /* At pad-added time a caps query only says application/x-rtp; the encoding comes with the
         * CAPS event (platform-notes §1). */
        caps = gst_pad_get_current_caps(pad);
        if (caps && gst_caps_is_fixed(caps) &&
            gst_structure_has_field(gst_caps_get_structure(caps, 0), "encoding-name")) {
                media_handle_new_stream(m, pad, caps);
                return;
        }
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BLOCK | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                          on_src_pad_event, media_ref(m), media_unref_notify);
}

/* ---- DTMF out (main context) ---- */

static int dtmf_event_number(char c) {
        const char *p = c ? strchr(DTMF_DIGITS, c) : NULL;

        return p ? (int) (p - DTMF_DIGITS) : -1;
}

/* A start (number >= 0) or stop (number < 0) for rtpdtmfsrc. GstBaseSrc drops custom upstream
 * events sent to the element, so they go into its src pad (platform-notes §2). rtpdtmfsrc only
 * queues them; its own thread paces the packets. */
static bool media_dtmf_push(Media *m, int number) {
        g_autoptr(GstPad) pad = gst_element_get_static_pad(m->dtmfsrc, "src");
        GstStructure *s;

        if (number >= 0)
                s = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "number", G_TYPE_INT, number,
                                      "volume", G_TYPE_INT, DTMF_VOLUME, "start", G_TYPE_BOOLEAN, TRUE,
                                      NULL);
        else
                s = gst_structure_new("dtmf-event", "type", G_TYPE_INT, 1, "start", G_TYPE_BOOLEAN, FALSE,
                                      NULL);
        return gst_pad_send_event(pad, gst_event_new_custom(GST_EVENT_CUSTOM_UPSTREAM, s));
}

static gboolean on_dtmf_timer(gpointer userdata);

static void media_dtmf_schedule(Media *m, unsigned msec) {
        assert(!m->dtmf_timer);
        m->dtmf_timer = g_timeout_source_new(msec);
        g_source_set_static_name(m->dtmf_timer, "bwcall-media-dtmf");
        g_source_set_callback(m->dtmf_timer, on_dtmf_timer, m, NULL);
        g_source_attach(m->dtmf_timer, m->context);
}

static void media_dtmf_cancel_timer(Media *m) {
        if (!m->dtmf_timer)
                return;
        g_source_destroy(m->dtmf_timer);
        g_clear_pointer(&m->dtmf_timer, g_source_unref);
}

/* Starts the next queued tone or pause, or reports the queue done. Never calls back while a
 * tone is queued, so media_send_dtmf() can call it. */
static void media_dtmf_next(Media *m) {
        DtmfTone *t;

        if (!m->dtmf_busy || m->dtmf_timer || m->dtmf_tone_on || !m->connected)
                return;

        t = g_queue_pop_head(&m->dtmf_queue);
        if (!t) {
                if (m->dtmf_stops_done < m->dtmf_stops_sent && !m->dtmf_draining) {
                        /* rtpdtmfsrc still plays the last tone (it holds each for >= 250 ms). */
                        m->dtmf_draining = true;
                        media_dtmf_schedule(m, DTMF_DRAIN_TIMEOUT_MS);
                        return;
                }
                if (m->dtmf_stops_done < m->dtmf_stops_sent)
                        log_warning("Media: rtpdtmfsrc did not confirm the last DTMF stop in time.");
                m->dtmf_busy = m->dtmf_draining = false;
                log_debug("Media: DTMF queue sent.");
                if (m->cb.dtmf_sent)
                        m->cb.dtmf_sent(m, m->userdata);
                return;
        }

        m->dtmf_draining = false;
        if (t->digit == ',')
                media_dtmf_schedule(m, DTMF_PAUSE_MS);
        else if (media_dtmf_push(m, dtmf_event_number(t->digit))) {
                log_debug("Media: sending DTMF %c for %u ms.", t->digit, t->duration_ms);
                m->dtmf_tone_on = true;
                m->dtmf_gap_ms = t->gap_ms;
                media_dtmf_schedule(m, t->duration_ms);
                if (m->cb.dtmf_sending)
                        m->cb.dtmf_sending(m, t->digit, t->duration_ms, m->userdata);
        } else {
                log_warning("Media: rtpdtmfsrc refused DTMF digit %c (pipeline not playing?).", t->digit);
                media_dtmf_schedule(m, t->duration_ms + t->gap_ms);
        }
        g_free(t);
}

static gboolean on_dtmf_timer(gpointer userdata) {
        Media *m = media_ref(userdata); /* dtmf_sent may call media_free() */

        g_clear_pointer(&m->dtmf_timer, g_source_unref);
        if (m->dtmf_tone_on) {
                m->dtmf_tone_on = false;
                if (media_dtmf_push(m, -1))
                        m->dtmf_stops_sent++;
                else
                        log_warning("Media: rtpdtmfsrc refused a DTMF stop.");
                media_dtmf_schedule(m, m->dtmf_gap_ms);
        } else
                media_dtmf_next(m);
        media_unref(m);
        return G_SOURCE_REMOVE;
}

/* rtpdtmfsrc took a stop from its queue: the tone's last packets are going out. */
static void media_dtmf_stop_processed(Media *m) {
        m->dtmf_stops_done++;
        if (m->dtmf_draining && m->dtmf_stops_done >= m->dtmf_stops_sent) {
                media_dtmf_cancel_timer(m);
                media_dtmf_next(m);
        }
}

/* ---- bus (main context) ---- */

static gboolean on_bus_message(GstBus *bus, GstMessage *message, gpointer userdata) {
        Media *m = media_ref(userdata); /* callbacks may call media_free() */

        switch (GST_MESSAGE_TYPE(message)) {
        case GST_MESSAGE_ERROR: {
                g_autoptr(GError) error = NULL;
                g_autofree char *debug = NULL, *text = NULL;

                gst_message_parse_error(message, &error, &debug);
                log_debug("Media: error from %s: %s (%s)", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                          error ? error->message : "?", debug ?: "");
                if (m->failure_reported)
                        log_warning("Media: %s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                                    error ? error->message : "pipeline error");
                text = g_strdup_printf("%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                                       error ? error->message : "pipeline error");
                media_report_failure(m, -EIO, text);
                break;
        }
        case GST_MESSAGE_WARNING: {
                g_autoptr(GError) error = NULL;

                gst_message_parse_warning(message, &error, NULL);
                log_warning("Media: %s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                            error ? error->message : "warning");
                break;
        }
        case GST_MESSAGE_LATENCY:
                /* Receive branches are added while playing; let the pipeline redistribute. */
                gst_bin_recalculate_latency(GST_BIN(m->pipeline));
                break;
        case GST_MESSAGE_ELEMENT: {
                const GstStructure *s = gst_message_get_structure(message);
                bool from_sender = GST_MESSAGE_SRC(message) == GST_OBJECT(m->dtmfsrc);
                gboolean start;
                int number;

                if (!s)
                        break;
                if (!from_sender && gst_structure_has_name(s, "dtmf-event") &&
                    gst_structure_get_int(s, "number", &number) && number >= 0 &&
                    number < (int) strlen(DTMF_DIGITS))
                        /* rtpdtmfdepay: one message per event. Queued like every other callback. */
                        media_queue(m, DISPATCH_DTMF_RECEIVED, DTMF_DIGITS[number], NULL, 0);
                else if (from_sender &&
                         (gst_structure_has_name(s, "dtmf-event-processed") ||
                          gst_structure_has_name(s, "dtmf-event-dropped")) &&
                         gst_structure_get_boolean(s, "start", &start) && !start)
                        media_dtmf_stop_processed(m);
                break;
        }
        default:
                break;
        }
        media_unref(m);
        return G_SOURCE_CONTINUE;
}

/* ---- send codec ---- */

static int media_make_encoder(const MediaFormat *f, GstElement *ret[MEDIA_ENCODER_MAX], size_t *ret_n) {
        const char *names[MEDIA_ENCODER_MAX] = {};
        size_t n = 0;

        if (f->codec == SEND_CODEC_OPUS) {
                names[n++] = "opusenc";
                names[n++] = "rtpopuspay";
        } else {
                /* mulawenc/alawenc take any rate and S16 only: convert and resample to 8 kHz here. */
                names[n++] = "audioconvert";
                names[n++] = "audioresample";
                names[n++] = "capsfilter";
                names[n++] = f->codec == SEND_CODEC_PCMU ? "mulawenc" : "alawenc";
                names[n++] = f->codec == SEND_CODEC_PCMU ? "rtppcmupay" : "rtppcmapay";
        }
        for (size_t i = 0; i < n; i++) {
                ret[i] = make_element(names[i]);
                if (!ret[i]) {
                        for (size_t j = 0; j < i; j++)
                                gst_object_unref(ret[j]);
                        return -ENODEV;
                }
        }

        /* RTP timestamps from the sample count (exactly 20 ms apart), not from each capture
         * timestamp; the encoder only resyncs when those drift apart by more than its tolerance. */
        g_object_set(ret[n - 2], "perfect-timestamp", TRUE, NULL);
        if (f->codec == SEND_CODEC_OPUS) {
                gst_util_set_object_arg(G_OBJECT(ret[0]), "audio-type", "voice");
                g_object_set(ret[0], "inband-fec", TRUE, NULL);
        } else {
                g_autoptr(GstCaps) caps = NULL;

                caps = gst_caps_from_string("audio/x-raw,format=S16LE,rate=8000,channels=1");

                g_object_set(ret[2], "caps", caps, NULL);
                /* 20 ms packets (160 samples) whatever the size of PipeWire's buffers. */
                g_object_set(ret[4], "min-ptime", (gint64) (20 * GST_MSECOND), "max-ptime",
                             (gint64) (20 * GST_MSECOND), NULL);
        }
        g_object_set(ret[n - 1], "pt", (guint) f->pt, NULL);
        *ret_n = n;
        return 0;
}

/* Links volume ! chain ! rtpdtmfmux. */
static bool media_link_encoder(Media *m, GstElement *const *chain, size_t n) {
        g_autoptr(GstPad) last_src = gst_element_get_static_pad(chain[n - 1], "src");

        if (!gst_element_link(m->volume, chain[0]))
                return false;
        for (size_t i = 0; i + 1 < n; i++)
                if (!gst_element_link(chain[i], chain[i + 1]))
                        return false;
        return GST_PAD_LINK_SUCCESSFUL(gst_pad_link(last_src, m->mux_sink));
}

/* rtpdtmfsrc's clock rate and payload type follow the send codec; its caps filter must match the
 * codec's clock rate even without telephone-event, as rtpdtmfmux intersects all inputs' rates. */
static void media_set_dtmf_format(Media *m, const MediaFormat *f) {
        g_autofree char *text = NULL;
        g_autoptr(GstCaps) caps = NULL;

        text = g_strdup_printf("application/x-rtp,clock-rate=%u", send_codecs[f->codec].rate);
        caps = gst_caps_from_string(text);

        g_object_set(m->dtmfcaps, "caps", caps, NULL);
        g_object_set(m->dtmfsrc, "pt", (guint) (f->te_pt >= 0 ? f->te_pt : OFFER_PT_TE_48K), NULL);
}

typedef struct EncoderSwap {
        Media *m; /* ref */
        MediaFormat format;
} EncoderSwap;

static void encoder_swap_free(gpointer p) {
        EncoderSwap *s = p;

        media_unref(s->m);
        g_free(s);
}

/* Replaces the encoder chain while volume's src pad is idle (nothing in flight in the old chain).
 * Runs on the microphone's streaming thread, or in media_set_answer() when the pad was idle
 * already. The new chain gets the sticky events (stream-start, caps, segment) from volume before
 * the next buffer, renegotiates rtpdtmfmux and webrtcbin's sink pad, and continues the same SSRC
 * and sequence numbers (rtpdtmfmux rewrites them). m->lock is held throughout, so media_free()
 * either stops the swap before it starts or waits until the pipeline is consistent again. */
static GstPadProbeReturn on_encoder_swap(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        EncoderSwap *s = userdata;
        Media *m = s->m;
        GstElement *chain[MEDIA_ENCODER_MAX];
        size_t n = 0;

        g_mutex_lock(&m->lock);
        if (m->freed)
                goto done;
        if (media_make_encoder(&s->format, chain, &n) < 0) {
                log_error("Media: cannot build the %s encoder; still sending %s.",
                          send_codecs[s->format.codec].name, send_codecs[m->initial.codec].name);
                goto done;
        }

        {
                g_autoptr(GstPad) old_src = gst_element_get_static_pad(m->encoder[m->n_encoder - 1], "src");

                gst_element_unlink(m->volume, m->encoder[0]);
                gst_pad_unlink(old_src, m->mux_sink);
        }
        for (size_t i = 0; i < m->n_encoder; i++) {
                gst_element_set_state(m->encoder[i], GST_STATE_NULL);
                gst_bin_remove(GST_BIN(m->pipeline), m->encoder[i]);
                m->encoder[i] = NULL;
        }
        /* Only now: with rtpdtmfsrc at the new rate while the old chain was still linked, the old
         * payloader renegotiated (webrtcbin sends RECONFIGURE when the answer connects its input)
         * and rtpdtmfmux's common-rate rule handed Opus clock-rate=8000: not-negotiated. */
        media_set_dtmf_format(m, &s->format);

        for (size_t i = 0; i < n; i++) {
                gst_bin_add(GST_BIN(m->pipeline), chain[i]);
                m->encoder[i] = chain[i];
        }
        m->n_encoder = n;
        if (!media_link_encoder(m, chain, n))
                /* The next buffer fails with not-linked and the bus reports the error. */
                log_error("Media: cannot link the %s encoder.", send_codecs[s->format.codec].name);
        for (size_t i = n; i > 0; i--)
                gst_element_sync_state_with_parent(chain[i - 1]);
        log_debug("Media: now sending %s with payload type %d.", send_codecs[s->format.codec].name,
                  s->format.pt);

done:
        g_mutex_unlock(&m->lock);
        return GST_PAD_PROBE_REMOVE;
}

static int media_set_codec_preferences(Media *m, const char *text) {
        g_autoptr(GstWebRTCRTPTransceiver) transceiver = NULL;
        g_autoptr(GstCaps) caps = NULL;

        g_signal_emit_by_name(m->webrtcbin, "get-transceiver", 0, &transceiver);
        if (!transceiver)
                return log_error_errno(-EINVAL, "Media: webrtcbin has no transceiver for the audio pad.");
        caps = gst_caps_from_string(text);
        if (!caps)
                return log_error_errno(-EINVAL, "Media: bad codec preference caps %s.", text);
        g_object_set(transceiver, "codec-preferences", caps, NULL);
        return 0;
}

typedef struct PayloadFilter {
        int pt, te_pt;
} PayloadFilter;

static bool payload_filter_keep(const PayloadFilter *f, GstBuffer *buffer) {
        guint8 header[2];
        int pt;

        if (gst_buffer_extract(buffer, 0, header, sizeof(header)) != sizeof(header))
                return true;
        pt = header[1] & 0x7f;
        return pt == f->pt || pt == f->te_pt;
}

static gboolean payload_filter_list_item(GstBuffer **buffer, guint idx, gpointer userdata) {
        if (!payload_filter_keep(userdata, *buffer))
                gst_clear_buffer(buffer);
        return TRUE;
}

/* webrtcbin blocks its sink pad until the answer is applied, so packets of the codec we offered
 * with may still wait in the queue after a switch. The far end never agreed to their payload type
 * (a webrtcbin far end logs "No clock-rate in caps!" and drops them): drop them here. */
static GstPadProbeReturn on_send_packet(GstPad *pad, GstPadProbeInfo *info, gpointer userdata) {
        const PayloadFilter *f = userdata;

        if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
                return payload_filter_keep(f, GST_PAD_PROBE_INFO_BUFFER(info)) ? GST_PAD_PROBE_OK
                                                                               : GST_PAD_PROBE_DROP;
        if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
                GstBufferList *list = gst_buffer_list_make_writable(GST_PAD_PROBE_INFO_BUFFER_LIST(info));

                GST_PAD_PROBE_INFO_DATA(info) = list;
                gst_buffer_list_foreach(list, payload_filter_list_item, (gpointer) f);
                return gst_buffer_list_length(list) > 0 ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
        }
        return GST_PAD_PROBE_OK;
}

/* Offerer, answer applied: send what the answer chose. */
static void media_apply_format(Media *m, const MediaFormat *f) {
        g_autofree char *negotiated = format_codec_preferences(f);
        g_autofree char *preferences = NULL;
        PayloadFilter *filter;
        EncoderSwap *s;
        g_autoptr(GstPad) pad = NULL, webrtc_sink = NULL;

        /* accept-caps for what we are about to send (webrtcbin checks the codec preferences). What
         * we offered stays in: its CAPS event may still wait in the queue behind webrtcbin's
         * blocked sink pad, and would fail with not-negotiated, stopping the microphone. */
        preferences = g_strconcat(offer_codec_preferences, ";", negotiated, NULL);
        (void) media_set_codec_preferences(m, preferences);
        if (f->codec == m->initial.codec && f->pt == m->initial.pt) {
                media_set_dtmf_format(m, f);
                return;
        }

        log_debug("Media: the answer chose %s (payload type %d); switching the encoder.",
                  send_codecs[f->codec].name, f->pt);
        filter = g_new(PayloadFilter, 1);
        *filter = (PayloadFilter) { .pt = f->pt, .te_pt = f->te_pt };
        /* On webrtcbin's sink pad: the packet held by webrtcbin's own blocking probe there is
         * filtered too when the block lifts. */
        webrtc_sink = gst_pad_get_peer(m->queue_src);
        gst_pad_add_probe(webrtc_sink ?: m->queue_src,
                          GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_send_packet, filter,
                          g_free);

        s = g_new0(EncoderSwap, 1);
        s->m = media_ref(m);
        s->format = *f;
        pad = gst_element_get_static_pad(m->volume, "src");
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_IDLE, on_encoder_swap, s, encoder_swap_free);
}

/* ---- construction ---- */

static int media_check_factories(void) {
        for (size_t i = 0; i < ELEMENTSOF(required_factories); i++) {
                g_autoptr(GstElementFactory) f = gst_element_factory_find(required_factories[i].factory);

                if (!f)
                        return log_error_errno(-ENODEV,
                                               "GStreamer element '%s' is missing (package %s).",
                                               required_factories[i].factory,
                                               required_factories[i].package);
        }
        return 0;
}

static void media_connect(Media *m, size_t slot, const char *signal, GCallback callback) {
        assert(slot < ELEMENTSOF(m->handler_ids));
        m->handler_ids[slot] = g_signal_connect_data(m->webrtcbin, signal, callback, media_ref(m),
                                                     media_closure_notify, 0);
}

/* webrtcdsp for the microphone (echo cancelling, noise suppression, gain control), with its echo
 * probe for the speaker side, added to the pipeline; NULL when all three are off or the plugin
 * is missing (calls then go on without, which beats no call). */
static GstElement *media_build_voice_processing(Media *m, const MediaConfig *config) {
        g_autofree char *probe_name = NULL;
        GstElement *dsp;

        if (!config->echo_cancel && !config->noise_suppression && !config->gain_control)
                return NULL;
        dsp = gst_element_factory_make("webrtcdsp", NULL);
        if (!dsp) {
                log_warning("Media: GStreamer element 'webrtcdsp' is missing (package gstreamer1.0-plugins-bad): "
                            "no echo cancelling, noise suppression or gain control.");
                return NULL;
        }
        g_object_set(dsp, "echo-cancel", (gboolean) config->echo_cancel, "noise-suppression",
                     (gboolean) config->noise_suppression, "gain-control", (gboolean) config->gain_control,
                     "high-pass-filter", TRUE, NULL);
        if (config->echo_cancel) {
                /* webrtcdsp looks its probe up by name in a process-wide list when it starts: the
                 * probe exists from the start, with a name unique among the calls, fed by the
                 * speaker stream (on_speaker_played()). */
                GstElement *src = gst_element_factory_make("appsrc", NULL);
                GstElement *probe = NULL, *sink = gst_element_factory_make("fakesink", NULL);
                g_autoptr(GstCaps) caps = gst_caps_from_string(RAW_AUDIO_CAPS);

                probe_name = g_strdup_printf("bwcall-echo-probe-%p", (void *) m);
                probe = gst_element_factory_make("webrtcechoprobe", probe_name);
                if (!src || !probe || !sink) {
                        log_warning("Media: GStreamer element 'webrtcechoprobe' is missing: no echo cancelling.");
                        g_object_set(dsp, "echo-cancel", FALSE, NULL);
                        g_clear_pointer(&src, gst_object_unref);
                        g_clear_pointer(&probe, gst_object_unref);
                        g_clear_pointer(&sink, gst_object_unref);
                } else {
                        g_object_set(src, "caps", caps, "is-live", TRUE, "block", FALSE, "max-bytes",
                                     (guint64) (PW_AUDIO_RATE * sizeof(int16_t) * MIC_QUEUE_MSEC / 1000), NULL);
                        gst_util_set_object_arg(G_OBJECT(src), "format", "time");
                        gst_util_set_object_arg(G_OBJECT(src), "leaky-type", "downstream");
                        g_object_set(sink, "sync", FALSE, "async", FALSE, NULL);
                        gst_bin_add_many(GST_BIN(m->pipeline), src, probe, sink, NULL);
                        if (!gst_element_link_many(src, probe, sink, NULL))
                                log_warning("Media: cannot link the echo reference.");
                        m->echo_src = gst_object_ref(src);
                        m->echo_next_pts = GST_CLOCK_TIME_NONE;
                        g_object_set(dsp, "probe", probe_name, "extended-filter", TRUE, "delay-agnostic", TRUE,
                                     NULL);
                }
        }
        gst_bin_add(GST_BIN(m->pipeline), dsp);
        return dsp;
}

static int media_build(Media *m, const MediaConfig *config) {
        GstElement *src, *convert, *resample, *capsfilter, *mux, *queue, *dsp;
        GstElement *encoder[MEDIA_ENCODER_MAX];
        size_t n_encoder = 0;
        g_autoptr(GstPad) mux_prio = NULL;
        g_autoptr(GstCaps) raw_caps = NULL;
        g_autoptr(GstBus) bus = NULL;
        g_autofree char *preferences = NULL;
        int r;

        r = pw_audio_new("bwcall-pw", &m->pw);
        if (r < 0)
                return log_error_errno(r, "Media: cannot connect to PipeWire (is it running?): %m");

        m->pipeline = gst_pipeline_new("bwcall-media");
        src = make_element("appsrc");
        convert = make_element("audioconvert");
        resample = make_element("audioresample");
        capsfilter = make_element("capsfilter");
        m->volume = make_element("volume");
        mux = make_element("rtpdtmfmux");
        queue = make_element("queue");
        m->dtmfsrc = make_element("rtpdtmfsrc");
        m->dtmfcaps = make_element("capsfilter");
        m->webrtcbin = make_element("webrtcbin");

        {
                GstElement *all[] = { src, convert, resample, capsfilter, m->volume,   mux,
                                      queue, m->dtmfsrc, m->dtmfcaps, m->webrtcbin };
                bool missing = false;

                for (size_t i = 0; i < ELEMENTSOF(all); i++)
                        missing = missing || !all[i];
                if (!m->pipeline || missing) {
                        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                                if (all[i])
                                        gst_object_unref(all[i]);
                        m->volume = m->dtmfsrc = m->dtmfcaps = m->webrtcbin = NULL;
                        return -ENODEV;
                }
                for (size_t i = 0; i < ELEMENTSOF(all); i++)
                        gst_bin_add(GST_BIN(m->pipeline), all[i]);
        }
        r = media_make_encoder(&m->initial, encoder, &n_encoder);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_encoder; i++) {
                gst_bin_add(GST_BIN(m->pipeline), encoder[i]);
                m->encoder[i] = encoder[i];
        }
        m->n_encoder = n_encoder;

        /* The monotonic system clock: rtpdtmfsrc stamps digits from the clock and rtpdtmfmux drops
         * every packet older than the last digit, so the clock must never jump (pipewiresrc's
         * GstPipeWireClock, used before, jumped by ~1600 s once the speaker joined the graph). */
        {
                GstClock *clock = gst_system_clock_obtain();

                gst_pipeline_use_clock(GST_PIPELINE(m->pipeline), clock);
                gst_object_unref(clock);
        }

        /* Live, stamped by mic_stamp() (an encoder linked later, the G.711 swap, needs timestamps
         * or the RTP timestamp never advances). Never blocks the PipeWire thread: when the
         * pipeline stalls, the oldest audio goes. */
        {
                g_autoptr(GstCaps) mic_caps = gst_caps_from_string(RAW_AUDIO_CAPS);

                m->mic_src = gst_object_ref(src);
                g_object_set(src, "caps", mic_caps, "is-live", TRUE, "block", FALSE,
                             "max-bytes", (guint64) (PW_AUDIO_RATE * sizeof(int16_t) * MIC_QUEUE_MSEC / 1000),
                             /* A live source's latency: one 10 ms period, up to what it queues. */
                             "min-latency", (gint64) (10 * GST_MSECOND),
                             "max-latency", (gint64) (MIC_QUEUE_MSEC * GST_MSECOND), NULL);
                gst_util_set_object_arg(G_OBJECT(src), "format", "time");
                gst_util_set_object_arg(G_OBJECT(src), "leaky-type", "downstream");
        }
        r = media_open_microphone(m, config->input_target);
        if (r < 0)
                return log_error_errno(r, "Media: cannot open the microphone stream: %m");

        raw_caps = gst_caps_from_string("audio/x-raw,rate=48000,channels=1");
        g_object_set(capsfilter, "caps", raw_caps, NULL);

        /* RFC 4733 sender, idle until a digit is pushed as a custom upstream event on its src pad.
         * Its caps pass rtpdtmfmux once at start, but the offer (answer) is only created after the
         * first Opus packet, whose caps rtpdtmfmux re-sends first: webrtcbin has seen Opus last. */
        media_set_dtmf_format(m, &m->initial);

        gst_util_set_object_arg(G_OBJECT(m->webrtcbin), "bundle-policy", "max-bundle");
        g_object_set(m->webrtcbin, "latency",
                     config->latency_ms > 0 ? config->latency_ms : MEDIA_DEFAULT_LATENCY_MS, NULL);
        if (config->stun_servers && config->stun_servers[0] && *config->stun_servers[0]) {
                g_object_set(m->webrtcbin, "stun-server", config->stun_servers[0], NULL);
                if (config->stun_servers[1])
                        log_debug("Media: webrtcbin takes one STUN server, using %s.",
                                  config->stun_servers[0]);
        }

        /* Must happen before set-local-description starts gathering (platform-notes §1). */
        r = ice_restrict_webrtcbin(m->webrtcbin, config->ice_addresses, config->upnp);
        if (r < 0)
                return log_error_errno(r, "Media: cannot restrict ICE addresses: %m");

        m->mux_sink = gst_element_request_pad_simple(mux, "sink_%u");
        mux_prio = gst_element_request_pad_simple(mux, "priority_sink_%u");
        if (!m->mux_sink || !mux_prio)
                return log_error_errno(-EINVAL, "Media: rtpdtmfmux gave no request pads.");
        dsp = media_build_voice_processing(m, config);
        if (!gst_element_link_many(src, convert, resample, capsfilter, NULL) ||
            !(dsp ? gst_element_link_many(capsfilter, dsp, m->volume, NULL) : gst_element_link(capsfilter, m->volume)) ||
            !media_link_encoder(m, encoder, n_encoder) ||
            !gst_element_link_many(mux, queue, m->webrtcbin, NULL) ||
            !gst_element_link(m->dtmfsrc, m->dtmfcaps) ||
            !gst_element_link_pads(m->dtmfcaps, "src", mux, GST_PAD_NAME(mux_prio)))
                return log_error_errno(-EINVAL, "Media: cannot link the send pipeline.");

        /* The offerer's preferences list every format the answer may choose; the answerer's only
         * the offer's payload types of the send codec and telephone-event, so that they intersect
         * with the offer when webrtcbin builds the answer. */
        if (!m->answerer)
                r = media_set_codec_preferences(m, offer_codec_preferences);
        else {
                preferences = format_codec_preferences(&m->initial);
                r = media_set_codec_preferences(m, preferences);
        }
        if (r < 0)
                return r;

        m->queue_src = gst_element_get_static_pad(queue, "src");
        gst_pad_add_probe(m->queue_src, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                          on_first_rtp_packet, media_ref(m), media_unref_notify);

        media_connect(m, 0, "on-negotiation-needed", G_CALLBACK(on_negotiation_needed));
        media_connect(m, 1, "notify::ice-gathering-state", G_CALLBACK(on_ice_gathering_state));
        media_connect(m, 2, "notify::ice-connection-state", G_CALLBACK(on_ice_connection_state));
        media_connect(m, 3, "notify::connection-state", G_CALLBACK(on_connection_state));
        media_connect(m, 4, "pad-added", G_CALLBACK(on_pad_added));

        bus = gst_pipeline_get_bus(GST_PIPELINE(m->pipeline));
        m->bus_source = gst_bus_create_watch(bus);
        g_source_set_callback(m->bus_source, (GSourceFunc) (void (*)(void)) on_bus_message, m, NULL);
        g_source_attach(m->bus_source, m->context);
        return 0;
}

static void media_start_async(GstElement *pipeline, gpointer userdata) {
        Media *m = userdata;

        if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
                media_queue(m, DISPATCH_OFFER_ERROR, -EIO,
                            "cannot start the pipeline (microphone or speaker not available?)", 0);
        g_atomic_int_set(&m->starting, 0);
}

static void media_stop_async(GstElement *pipeline, gpointer userdata) {
        gst_element_set_state(pipeline, GST_STATE_NULL);
}

/* Builds the pipeline and brings it to READY. */
static int media_create(const MediaConfig *config, const MediaCallbacks *cb, void *userdata, bool answerer,
                        const MediaFormat *format, Media **ret) {
        static const MediaConfig default_config = {};
        Media *m;
        int r;

        if (!config)
                config = &default_config;

        r = media_check_factories();
        if (r < 0)
                return r;

        m = g_new0(Media, 1);
        m->n_ref = 1;
        m->context = g_main_context_ref_thread_default();
        m->cb = *cb;
        m->userdata = userdata;
        m->answerer = answerer;
        m->initial = *format;
        m->codec = g_strdup(send_codecs[format->codec].name);
        for (size_t i = 0; i + 1 < sizeof(m->tls_id); i++)
                m->tls_id[i] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[g_random_int_range(0, 62)];
        if (config->output_target && *config->output_target)
                m->output_target = g_strdup(config->output_target);
        m->start_usec = g_get_monotonic_time();
        g_mutex_init(&m->lock);
        m->pending = g_ptr_array_new();
        m->play_volumes = g_ptr_array_new_with_free_func(gst_object_unref);
        m->speakers = g_ptr_array_new();
        atomic_init(&m->mic_level_cdb, MEDIA_SILENCE_DBFS * 100);
        atomic_init(&m->mic_sound_usec, 0);
        m->mic_next_pts = GST_CLOCK_TIME_NONE;
        g_mutex_init(&m->speakers_lock);
        g_queue_init(&m->dtmf_queue);

        r = media_build(m, config);
        if (r < 0) {
                media_free(m);
                return r;
        }

        if (gst_element_set_state(m->pipeline, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE) {
                /* The bus usually has the reason. */
                g_autoptr(GstBus) bus = gst_pipeline_get_bus(GST_PIPELINE(m->pipeline));
                g_autoptr(GstMessage) msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
                g_autoptr(GError) error = NULL;

                if (msg)
                        gst_message_parse_error(msg, &error, NULL);
                log_error("Media: cannot start the pipeline (%s: %s).",
                          msg ? GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)) : "pipeline",
                          error ? error->message : "state change failed");
                media_free(m);
                return -EIO;
        }
        *ret = m;
        return 0;
}

static void media_start(Media *m) {
        m->offer_timeout = g_timeout_source_new(MEDIA_OFFER_TIMEOUT_MSEC);
        g_source_set_callback(m->offer_timeout, on_offer_timeout, m, NULL);
        g_source_attach(m->offer_timeout, m->context);

        /* Starting webrtcbin (libnice agent, DTLS certificate) takes a while: a GStreamer worker
         * does it, off the main loop. */
        g_atomic_int_set(&m->starting, 1);
        gst_element_call_async(m->pipeline, media_start_async, media_ref(m), media_unref_notify);
}

int media_new_offer(const MediaConfig *config, const MediaCallbacks *cb, void *userdata, Media **ret) {
        static const MediaFormat opus = {
                .codec = SEND_CODEC_OPUS, .pt = OFFER_PT_OPUS, .te_pt = OFFER_PT_TE_48K, .rx_te_pt = -1
        };
        Media *m;
        int r;

        assert(cb);
        assert(ret);
        if (!gst_is_initialized())
                gst_init(NULL, NULL);

        r = media_create(config, cb, userdata, false, &opus, &m);
        if (r < 0)
                return r;
        media_start(m);
        *ret = m;
        return 0;
}

static GstPromise *media_call_sync(Media *m, const char *action, gpointer arg);

int media_new_answer(const MediaConfig *config, const char *offer_sdp, const MediaCallbacks *cb,
                     void *userdata, Media **ret) {
        GstSDPMessage *msg = NULL;
        GstWebRTCSessionDescription *desc;
        const GstSDPMedia *audio;
        const char *missing, *direction;
        g_autofree char *error = NULL;
        GstPromise *promise;
        MediaFormat format;
        Media *m;
        int r;

        assert(cb);
        assert(ret);
        if (!offer_sdp)
                return log_error_errno(-EINVAL, "Media: no SDP offer given.");
        if (!gst_is_initialized())
                gst_init(NULL, NULL);

        /* Everything that can be seen in the text is checked before anything is built. */
        if (gst_sdp_message_new_from_text(offer_sdp, &msg) != GST_SDP_OK || !msg) {
                if (msg)
                        gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the offer is not SDP.");
        }
        missing = sdp_missing_webrtc(msg);
        if (missing) {
                gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the SDP offer lacks %s.", missing);
        }
        audio = sdp_find_audio(msg);
        if (!sdp_pick_format(audio, true, &format)) {
                gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the SDP offer has no codec we can send "
                                                 "(Opus/48000, PCMU/8000, PCMA/8000).");
        }
        direction = sdp_direction(msg, audio);
        if (format.codec == SEND_CODEC_OPUS)
                offer_drop_sprop((GstSDPMedia *) audio, format.pt);

        r = media_create(config, cb, userdata, true, &format, &m);
        if (r < 0) {
                gst_sdp_message_free(msg);
                return r;
        }
        m->offer_lets_us_send = strcmp(direction, "sendrecv") == 0 || strcmp(direction, "recvonly") == 0;

        /* In READY webrtcbin's thread runs; the transceiver of our sink pad takes the offer's audio
         * m-line. The answer is created once the first packet has brought caps (see
         * media_maybe_create_offer()). */
        desc = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, msg); /* takes msg */
        promise = media_call_sync(m, "set-remote-description", desc);
        gst_webrtc_session_description_free(desc);
        if (!promise) {
                media_free(m);
                return log_error_errno(-ETIMEDOUT, "Media: webrtcbin did not take the offer in time.");
        }
        error = promise_error_message(promise);
        gst_promise_unref(promise);
        if (error) {
                media_free(m);
                return log_error_errno(-EBADMSG, "Media: webrtcbin rejected the SDP offer: %s", error);
        }

        log_debug("Media: answering with %s (payload type %d, telephone-event %d).",
                  send_codecs[format.codec].name, format.pt, format.te_pt);
        media_start(m);
        *ret = m;
        return 0;
}

/* ---- answer (offerer) ---- */

typedef struct PromiseWaiter {
        gint n_ref;
        GMutex lock;
        GCond cond;
        bool done;
} PromiseWaiter;

static void promise_waiter_unref(gpointer p) {
        PromiseWaiter *w = p;

        if (!g_atomic_int_dec_and_test(&w->n_ref))
                return;
        g_mutex_clear(&w->lock);
        g_cond_clear(&w->cond);
        g_free(w);
}

static void promise_waiter_changed(GstPromise *promise, gpointer userdata) {
        PromiseWaiter *w = userdata;

        g_mutex_lock(&w->lock);
        w->done = true;
        g_cond_broadcast(&w->cond);
        g_mutex_unlock(&w->lock);
}

/* Emits a webrtcbin action with a promise and waits (bounded) for its reply. webrtcbin answers
 * from its own thread, so blocking the main thread briefly is fine. Returns the promise (caller
 * unrefs) or NULL on timeout. */
static GstPromise *media_call_sync(Media *m, const char *action, gpointer arg) {
        PromiseWaiter *w = g_new0(PromiseWaiter, 1);
        GstPromise *promise;
        gint64 deadline = g_get_monotonic_time() + MEDIA_PROMISE_TIMEOUT_USEC;
        bool done;

        w->n_ref = 2;
        g_mutex_init(&w->lock);
        g_cond_init(&w->cond);
        promise = gst_promise_new_with_change_func(promise_waiter_changed, w, promise_waiter_unref);

        g_signal_emit_by_name(m->webrtcbin, action, arg, promise);

        g_mutex_lock(&w->lock);
        while (!w->done)
                if (!g_cond_wait_until(&w->cond, &w->lock, deadline))
                        break;
        done = w->done;
        g_mutex_unlock(&w->lock);
        promise_waiter_unref(w);

        if (!done) {
                gst_promise_interrupt(promise);
                gst_promise_unref(promise);
                return NULL;
        }
        return promise;
}

int media_set_answer(Media *m, const char *sdp) {
        GstSDPMessage *msg = NULL;
        GstWebRTCSessionDescription *desc;
        g_autofree char *text = NULL, *error = NULL;
        const char *missing;
        GstPromise *promise;
        MediaFormat format;

        assert(m);
        if (!sdp)
                return log_error_errno(-EINVAL, "Media: no SDP answer given.");
        if (m->answerer)
                return log_error_errno(-EINVAL,
                                       "Media: this end answered the call; there is no answer to apply.");

        if (gst_sdp_message_new_from_text(sdp, &msg) != GST_SDP_OK || !msg) {
                if (msg)
                        gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the answer is not SDP.");
        }
        missing = sdp_missing_webrtc(msg);
        if (missing) {
                gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the SDP answer lacks %s.", missing);
        }
        text = gst_sdp_message_as_text(msg);

        if (m->answer_text) {
                gst_sdp_message_free(msg);
                if (strcmp(text, m->answer_text) == 0) {
                        log_debug("Media: the same SDP answer again, nothing to do.");
                        return 0;
                }
                /* webrtcbin cannot apply a second answer to one offer; the gateway should not send
                 * one (a 200 after a 183 normally repeats the SDP). */
                log_warning("Media: a different SDP answer arrived after the first one was applied; "
                            "keeping the first.");
                return 0;
        }

        if (!sdp_pick_format(sdp_find_audio(msg), false, &format)) {
                gst_sdp_message_free(msg);
                return log_error_errno(-EBADMSG, "Media: the SDP answer selects no codec we offered.");
        }

        desc = gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_ANSWER, msg); /* takes msg */
        promise = media_call_sync(m, "set-remote-description", desc);
        gst_webrtc_session_description_free(desc);
        if (!promise)
                return log_error_errno(-ETIMEDOUT, "Media: webrtcbin did not apply the answer in time.");
        error = promise_error_message(promise);
        gst_promise_unref(promise);
        if (error)
                return log_error_errno(-EPROTO, "Media: webrtcbin rejected the SDP answer: %s", error);

        media_apply_format(m, &format);
        m->format = format;
        m->negotiated = true;
        m->answer_text = TAKE_PTR(text);
        g_free(m->codec);
        m->codec = g_strdup(send_codecs[format.codec].name);
        log_debug("Media: answer applied %" PRIu64 " ms after start: sending %s (payload type %d), "
                  "telephone-event %d.", media_elapsed_msec(m), m->codec, format.pt, format.te_pt);
        return 0;
}

const char *media_get_local_sdp(const Media *m) {
        assert(m);
        return m->local_sdp;
}

int media_ice_restart(Media *m) {
        g_autofree char *ufrag = NULL, *pwd = NULL;
        char *sdp;
        int r;

        assert(m);
        if (!m->webrtcbin || !m->local_sdp)
                return -ESTALE;
        r = ice_restart_local(m->webrtcbin, &ufrag, &pwd);
        if (r < 0)
                return r;
        sdp = ice_sdp_with_credentials(m->local_sdp, ufrag, pwd);
        if (!sdp)
                return -EINVAL;
        /* Later offers (hold, resume) must carry the new credentials, or they restart again. */
        g_free(m->local_sdp);
        m->local_sdp = sdp;
        log_info("Media: ICE restarted (new ufrag %s).", ufrag);
        return 0;
}

char *media_selected_local_address(Media *m) {
        assert(m);
        return m->webrtcbin ? ice_selected_local_address(m->webrtcbin) : NULL;
}

int media_continue_session(Media *m, const Media *previous) {
        GstSDPMessage *prev = NULL, *msg = NULL;
        const GstSDPOrigin *po;
        int r = -EINVAL;

        assert(m);
        assert(previous);
        if (!m->local_sdp || !previous->local_sdp)
                return -ESTALE;
        if (gst_sdp_message_new_from_text(previous->local_sdp, &prev) != GST_SDP_OK ||
            gst_sdp_message_new_from_text(m->local_sdp, &msg) != GST_SDP_OK)
                goto out;
        po = gst_sdp_message_get_origin(prev);
        if (!po || !po->sess_id || !po->sess_version || !gst_sdp_message_get_origin(msg))
                goto out;
        /* + 1 here and + 1 when the re-INVITE is written (sdp_with_direction()): one above the
         * previous description's re-INVITEs, which went out at its version + 1. */
        sdp_set_origin_session(msg, po->sess_id, g_ascii_strtoull(po->sess_version, NULL, 10) + 1);
        g_free(m->local_sdp);
        m->local_sdp = gst_sdp_message_as_text(msg);
        r = 0;
out:
        if (prev)
                gst_sdp_message_free(prev);
        if (msg)
                gst_sdp_message_free(msg);
        return r;
}

/* The RFC 8842 tls-id of an SDP's audio section (or its session level), or NULL. */
static char *sdp_tls_id(const char *text) {
        GstSDPMessage *msg = NULL;
        const GstSDPMedia *audio;
        const char *v = NULL;
        char *r;

        if (!text || gst_sdp_message_new_from_text(text, &msg) != GST_SDP_OK)
                return NULL;
        audio = sdp_find_audio(msg);
        if (audio)
                v = gst_sdp_media_get_attribute_val(audio, "tls-id");
        if (!v)
                v = gst_sdp_message_get_attribute_val(msg, "tls-id");
        r = g_strdup(v);
        gst_sdp_message_free(msg);
        return r;
}

bool media_answer_is_new_association(Media *m, const char *answer_sdp) {
        GstWebRTCSessionDescription *remote = NULL;
        g_autofree char *remote_text = NULL, *old_id = NULL, *new_id = sdp_tls_id(answer_sdp);

        assert(m);
        if (!new_id || !m->webrtcbin)
                return true; /* the far end does not say (no RFC 8842): nothing to tell them apart */
        g_object_get(m->webrtcbin, "current-remote-description", &remote, NULL);
        if (remote) {
                remote_text = gst_sdp_message_as_text(remote->sdp);
                gst_webrtc_session_description_free(remote);
        }
        old_id = sdp_tls_id(remote_text);
        return !old_id || strcmp(old_id, new_id) != 0;
}

int media_ice_apply_remote(Media *m, const char *remote_sdp) {
        int r;

        assert(m);
        if (!m->webrtcbin)
                return -ESTALE;
        r = ice_set_remote_from_sdp(m->webrtcbin, remote_sdp);
        if (r >= 0)
                log_debug("Media: %d remote candidate(s) for the restarted ICE.", r);
        return r;
}

/* ---- DTMF out ---- */

bool media_has_telephone_event(const Media *m) {
        assert(m);
        return m->negotiated && m->format.te_pt >= 0;
}

int media_send_dtmf(Media *m, const char *digits, unsigned duration_ms, unsigned gap_ms) {
        unsigned duration, gap;

        assert(m);
        if (!digits || !*digits)
                return -EINVAL;
        for (const char *p = digits; *p; p++)
                if (*p != ',' && dtmf_event_number(*p) < 0)
                        return -EINVAL;
        if (!m->negotiated || m->failure_reported)
                return -ENOTCONN;
        if (m->format.te_pt < 0)
                return -ENOTSUP;

        /* Like JsSIP: 0 means the default, the rest is clamped (gateway-protocol §7). */
        duration = duration_ms == 0 ? DTMF_DEFAULT_DURATION_MS
                                    : CLAMP(duration_ms, DTMF_MIN_DURATION_MS, DTMF_MAX_DURATION_MS);
        gap = gap_ms == 0 ? DTMF_DEFAULT_GAP_MS : MAX(gap_ms, DTMF_MIN_GAP_MS);

        for (const char *p = digits; *p; p++) {
                DtmfTone *t = g_new(DtmfTone, 1);

                *t = (DtmfTone) { .digit = *p, .duration_ms = duration, .gap_ms = gap };
                g_queue_push_tail(&m->dtmf_queue, t);
        }
        m->dtmf_busy = true;
        log_debug("Media: queued DTMF \"%s\" (%u ms, gap %u ms)%s.", digits, duration, gap,
                  m->connected ? "" : ", sent once connected");
        media_dtmf_next(m);
        return 0;
}

/* ---- hold, mute, stats ---- */

void media_set_active(Media *m, bool active) {
        assert(m);
        if (m->held == !active)
                return;
        m->held = !active;
        log_debug("Media: %s.", active ? "resumed" : "on hold");
        if (m->volume)
                g_object_set(m->volume, "mute", (gboolean) (m->muted || m->held), NULL);

        g_mutex_lock(&m->lock);
        m->play_muted = m->held;
        for (guint i = 0; i < m->play_volumes->len; i++)
                g_object_set(m->play_volumes->pdata[i], "mute", (gboolean) m->play_muted, NULL);
        g_mutex_unlock(&m->lock);
}

void media_get_input_level(Media *m, double *ret_dbfs, uint64_t *ret_sound_usec) {
        assert(m);
        if (ret_dbfs)
                *ret_dbfs = atomic_load(&m->mic_level_cdb) / 100.0;
        if (ret_sound_usec)
                *ret_sound_usec = (uint64_t) atomic_load(&m->mic_sound_usec);
}

int media_set_input(Media *m, const char *node) {
        assert(m);
        return m->mic ? pw_audio_stream_set_target(m->mic, node) : -ENODEV;
}

int media_set_output(Media *m, const char *node) {
        int r = 0;

        assert(m);
        g_mutex_lock(&m->speakers_lock);
        g_free(m->output_target);
        m->output_target = node && *node ? g_strdup(node) : NULL;
        for (guint i = 0; i < m->speakers->len; i++) {
                Speaker *sp = m->speakers->pdata[i];
                int k = pw_audio_stream_set_target(sp->stream, m->output_target);

                if (k < 0 && r == 0)
                        r = k;
        }
        g_mutex_unlock(&m->speakers_lock);
        return r;
}

void media_set_muted(Media *m, bool muted) {
        assert(m);
        m->muted = muted;
        if (m->volume)
                g_object_set(m->volume, "mute", (gboolean) (m->muted || m->held), NULL);
}

bool media_get_muted(const Media *m) {
        assert(m);
        return m->muted;
}

uint64_t media_get_rtp_received(const Media *m) {
        return m ? (uint64_t) (guint) g_atomic_int_get(&m->rtp_received) : 0;
}

uint64_t media_first_audio_usec(const Media *m) {
        assert(m);
        return m->first_audio_usec;
}

static bool structure_get_number(const GstStructure *s, const char *field, double *ret) {
        const GValue *v = gst_structure_get_value(s, field);
        GValue d = G_VALUE_INIT;

        if (!v || !g_value_type_transformable(G_VALUE_TYPE(v), G_TYPE_DOUBLE))
                return false;
        g_value_init(&d, G_TYPE_DOUBLE);
        if (!g_value_transform(v, &d))
                return false;
        *ret = g_value_get_double(&d);
        return true;
}

static bool stats_nested_lost(const GstStructure *s, double *ret) {
        GstStructure *source = NULL;
        bool found;

        if (!gst_structure_get(s, "gst-rtpsource-stats", GST_TYPE_STRUCTURE, &source, NULL))
                return false;
        found = structure_get_number(source, "packets-lost", ret);
        gst_structure_free(source);
        return found;
}

typedef struct StatsAcc {
        double packets_sent, bytes_sent, packets_received, bytes_received, packets_lost, jitter, rtt;
        bool have_sent, have_received, have_lost, have_jitter, have_rtt;
        char *codec;
} StatsAcc;

/* webrtcbin 1.22 points outbound-rtp's codec-id at an empty codec entry; the filled-in one is
 * the codec stats of the sink pad, codec-type "encode". Right after a DTMF digit that pad's caps
 * are telephone-event for a moment; the answer's codec is used then. */
static void stats_codec(StatsAcc *acc, const GstStructure *s) {
        const char *mime = gst_structure_get_string(s, "mime-type");
        const char *name;

        if (acc->codec || !mime || g_strcmp0(gst_structure_get_string(s, "codec-type"), "encode") != 0)
                return;
        name = strchr(mime, '/') ? strchr(mime, '/') + 1 : mime;
        if (g_ascii_strcasecmp(name, "telephone-event") != 0)
                acc->codec = g_ascii_strdown(name, -1);
}

static gboolean stats_visit(GQuark field, const GValue *value, gpointer userdata) {
        StatsAcc *acc = userdata;
        const GstStructure *s;
        GstWebRTCStatsType type;
        double v;

        if (!GST_VALUE_HOLDS_STRUCTURE(value))
                return TRUE;
        s = gst_value_get_structure(value);
        if (!gst_structure_get(s, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, NULL))
                return TRUE;

        switch (type) {
        case GST_WEBRTC_STATS_OUTBOUND_RTP:
                if (structure_get_number(s, "packets-sent", &v)) {
                        acc->packets_sent += v;
                        acc->have_sent = true;
                }
                if (structure_get_number(s, "bytes-sent", &v))
                        acc->bytes_sent += v;
                break;
        case GST_WEBRTC_STATS_INBOUND_RTP:
                if (structure_get_number(s, "packets-received", &v)) {
                        acc->packets_received += v;
                        acc->have_received = true;
                }
                if (structure_get_number(s, "bytes-received", &v))
                        acc->bytes_received += v;
                /* 1.22 has no packets-lost on inbound-rtp itself, only in rtpsource's stats. */
                if (structure_get_number(s, "packets-lost", &v) || stats_nested_lost(s, &v)) {
                        acc->packets_lost += MAX(v, 0); /* negative with duplicates */
                        acc->have_lost = true;
                }
                /* Worst stream; seconds. Garbage (negative) while a stream has no clock-rate yet. */
                if (structure_get_number(s, "jitter", &v) && v >= 0 &&
                    (!acc->have_jitter || v > acc->jitter)) {
                        acc->jitter = v;
                        acc->have_jitter = true;
                }
                break;
        case GST_WEBRTC_STATS_REMOTE_INBOUND_RTP:
                if (structure_get_number(s, "round-trip-time", &v) && v > 0) {
                        acc->rtt = v;
                        acc->have_rtt = true;
                }
                break;
        case GST_WEBRTC_STATS_CODEC:
                stats_codec(acc, s);
                break;
        default:
                break;
        }
        return TRUE;
}

GVariant *media_get_stats(Media *m) {
        GVariantBuilder b;
        GstPromise *promise;
        StatsAcc acc = {};

        assert(m);
        g_variant_builder_init(&b, G_VARIANT_TYPE("a{sv}"));

        promise = media_call_sync(m, "get-stats", NULL);
        if (promise) {
                const GstStructure *reply = NULL;

                if (gst_promise_wait(promise) == GST_PROMISE_RESULT_REPLIED)
                        reply = gst_promise_get_reply(promise);
                if (reply)
                        gst_structure_foreach(reply, stats_visit, &acc);
                gst_promise_unref(promise);
        } else
                log_warning("Media: webrtcbin did not return statistics in time.");

        if (acc.codec || m->codec)
                g_variant_builder_add(&b, "{sv}", "codec", g_variant_new_string(acc.codec ?: m->codec));
        {
                /* Gaps the user hears: the speaker ran dry (jitter beyond the buffer), or delay
                 * trimmed away; in samples for the latter. */
                uint64_t underruns = 0, dropped = 0;

                g_mutex_lock(&m->speakers_lock);
                for (guint i = 0; i < m->speakers->len; i++) {
                        uint64_t u, d;

                        pw_audio_stream_get_stats(((Speaker *) m->speakers->pdata[i])->stream, &u, &d);
                        underruns += u;
                        dropped += d;
                }
                g_mutex_unlock(&m->speakers_lock);
                g_variant_builder_add(&b, "{sv}", "speaker-underruns", g_variant_new_uint64(underruns));
                g_variant_builder_add(&b, "{sv}", "speaker-dropped-samples", g_variant_new_uint64(dropped));
        }
        if (acc.have_sent) {
                g_variant_builder_add(&b, "{sv}", "packets-sent",
                                      g_variant_new_uint64((uint64_t) acc.packets_sent));
                g_variant_builder_add(&b, "{sv}", "bytes-sent",
                                      g_variant_new_uint64((uint64_t) acc.bytes_sent));
        }
        if (acc.have_received) {
                g_variant_builder_add(&b, "{sv}", "packets-received",
                                      g_variant_new_uint64((uint64_t) acc.packets_received));
                g_variant_builder_add(&b, "{sv}", "bytes-received",
                                      g_variant_new_uint64((uint64_t) acc.bytes_received));
        }
        if (acc.have_lost)
                g_variant_builder_add(&b, "{sv}", "packets-lost",
                                      g_variant_new_int64((int64_t) acc.packets_lost));
        if (acc.have_jitter)
                g_variant_builder_add(&b, "{sv}", "jitter", g_variant_new_double(acc.jitter));
        if (acc.have_rtt)
                g_variant_builder_add(&b, "{sv}", "round-trip-time", g_variant_new_double(acc.rtt));
        g_variant_builder_add(&b, "{sv}", "first-audio-usec", g_variant_new_uint64(m->first_audio_usec));
        g_free(acc.codec);
        return g_variant_builder_end(&b);
}


/* ---- teardown ---- */

/* Pipelines being stopped in the background; exit waits for them (media_prewarm_join). */
static GMutex teardown_lock;
static GCond teardown_cond;
static unsigned teardowns;

static gpointer teardown_thread(gpointer pipeline) {
        /* Joins the streaming threads; may take a while when webrtcbin is slow to stop (seen
         * under ASan), which must never stall the daemon's main loop. */
        gst_element_set_state(pipeline, GST_STATE_NULL);
        gst_object_unref(pipeline);
        g_mutex_lock(&teardown_lock);
        teardowns--;
        g_cond_broadcast(&teardown_cond);
        g_mutex_unlock(&teardown_lock);
        return NULL;
}

Media *media_free(Media *m) {
        g_autoptr(GPtrArray) pending = NULL;

        if (!m)
                return NULL;

        g_mutex_lock(&m->lock);
        m->freed = true;
        pending = g_steal_pointer(&m->pending);
        m->pending = g_ptr_array_new();
        g_mutex_unlock(&m->lock);

        /* Queued dispatches: drop them (and their refs) so nothing fires after we return. */
        for (guint i = 0; i < pending->len; i++) {
                g_source_destroy(pending->pdata[i]);
                g_source_unref(pending->pdata[i]);
        }

        if (m->offer_timeout) {
                g_source_destroy(m->offer_timeout);
                g_clear_pointer(&m->offer_timeout, g_source_unref);
        }
        media_dtmf_cancel_timer(m);
        g_queue_clear_full(&m->dtmf_queue, g_free);
        /* No more microphone pushes from here on; the speaker streams go with their appsinks. */
        m->mic = pw_audio_stream_free(m->mic);
        if (m->bus_source) {
                g_source_destroy(m->bus_source);
                g_clear_pointer(&m->bus_source, g_source_unref);
        }
        if (m->webrtcbin)
                for (size_t i = 0; i < ELEMENTSOF(m->handler_ids); i++)
                        if (m->handler_ids[i] != 0)
                                g_signal_handler_disconnect(m->webrtcbin, m->handler_ids[i]);
        if (m->pipeline && g_atomic_int_get(&m->starting)) {
                /* The start is still running (see media_start()); our state change would wait
                 * for it. A worker stops and drops the pipeline instead. The callbacks
                 * are already cut off above, so nothing reaches the user from it. */
                GstElement *pipeline = m->pipeline; /* the worker takes our reference */

                log_debug("Media: pipeline still starting, stopping it in the background.");
                gst_element_call_async(pipeline, media_stop_async, pipeline, gst_object_unref);
        } else if (m->pipeline) {
                /* Stopped on a thread of its own; the callbacks are cut off above, so nothing from
                 * it reaches the user. */
                g_mutex_lock(&teardown_lock);
                teardowns++;
                g_mutex_unlock(&teardown_lock);
                g_thread_unref(g_thread_new("media-teardown", teardown_thread, m->pipeline));
        }
        /* m->pipeline, m->webrtcbin and the other element pointers stay as they are: the stopping
         * thread owns the pipeline now, but streaming threads run until it has stopped, and the
         * ones that passed their media_is_freed() check just before still use them (create-offer,
         * set-local-description, linking a receive branch). They are valid until those threads are
         * joined; nothing on the main context reads them after this point. */
        gst_clear_object(&m->mux_sink);
        gst_clear_object(&m->queue_src);

        media_unref(m);
        return NULL;
}

/* Worker thread: touches no daemon state, only GStreamer's process-wide DTLS certificate. */
static gpointer prewarm_thread(gpointer unused) {
        /* Loading the plugins (dlopen, registry lookups) otherwise lands on the first call too. */
        static const char *const factories[] = {
                "webrtcbin", "opusenc", "opusdec", "rtpopuspay", "rtpopusdepay", "rtpdtmfmux", "rtpdtmfsrc",
                "appsrc", "appsink", "audioconvert", "audioresample", "volume",
        };
        GstElement *e;

        for (size_t i = 0; i < G_N_ELEMENTS(factories); i++) {
                g_autoptr(GstElementFactory) f = gst_element_factory_find(factories[i]);
                GstPluginFeature *loaded = f ? gst_plugin_feature_load(GST_PLUGIN_FEATURE(f)) : NULL;
                if (loaded)
                        gst_object_unref(loaded);
        }

        /* The first DTLS element in a process generates the RSA certificate (100–250 ms) and caches
         * it for the process; doing it here keeps that out of the first call's offer time
         * (platform-notes §1). A call that starts meanwhile waits for the same certificate. */
        e = gst_element_factory_make("dtlsdec", NULL);
        if (!e) {
                log_warning("Media: GStreamer element 'dtlsdec' is missing "
                            "(package gstreamer1.0-plugins-bad).");
                return NULL;
        }
        gst_object_unref(e);
        return NULL;
}

static GThread *prewarm;

void media_prewarm(void) {
        if (!gst_is_initialized())
                gst_init(NULL, NULL);
        /* In a thread so that start-up (READY=1) does not wait for RSA key generation. */
        if (!prewarm)
                prewarm = g_thread_new("dtls-prewarm", prewarm_thread, NULL);
}

void media_prewarm_join(void) {
        gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;

        /* Exiting while the thread is inside OpenSSL's key generation crashes in OpenSSL's
         * atexit teardown: wait for it (at most the key generation time). */
        if (prewarm)
                g_thread_join(g_steal_pointer(&prewarm));
        /* The same for pipelines still stopping in the background, with a bound. */
        g_mutex_lock(&teardown_lock);
        while (teardowns > 0)
                if (!g_cond_wait_until(&teardown_cond, &teardown_lock, deadline)) {
                        log_warning("Media: %u pipeline(s) still stopping after 2 s; exiting anyway.",
                                    teardowns);
                        break;
                }
        g_mutex_unlock(&teardown_lock);
}
