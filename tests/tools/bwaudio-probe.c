/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwaudio-probe: puts a tone into a PipeWire node, or records one and says which tone it heard.
 *
 *   bwaudio-probe play --freq HZ [--target NODE] [--volume V]
 *        Plays a sine into NODE (e.g. mic-feed, the harness's microphone feed) until SIGINT or
 *        SIGTERM. Prints "PLAYING" once the pipeline is playing.
 *   bwaudio-probe record [--target NODE] --seconds N [--monitor]
 *        Records from NODE (with --monitor: the monitor of the sink NODE) and prints one JSON line
 *        per second of received audio, {"second":i,"hz":..,"dbfs":..}, then
 *        {"dominant_hz":..,"seconds":N}. Gives up after N+5 s of wall clock (exit 1).
 *
 * Used by the integration tests and the demo against the private PipeWire of
 * tests/harness/harness.sh. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include "goertzel.h"
#include "log.h"

#define RATE 48000
#define SLACK_SECONDS 5

typedef struct Probe {
        GMainLoop *loop;
        GstElement *pipeline;
        int exit_code;
        bool playing_announced;
        gint starting; /* atomic: the state change to PLAYING is still running */

        /* record mode */
        unsigned seconds_wanted;
        unsigned seconds_done;    /* main thread */
        int *hz_per_second;       /* main thread */
        int16_t *block;           /* streaming thread only */
        size_t block_fill;        /* streaming thread only */
} Probe;

typedef struct Block {
        Probe *probe;
        int16_t *samples;
} Block;

static void probe_quit(Probe *p, int exit_code) {
        p->exit_code = exit_code;
        g_main_loop_quit(p->loop);
}

static gboolean on_signal(gpointer userdata) {
        Probe *p = userdata;

        /* play: SIGTERM/SIGINT is the normal way to stop. record: stopped before N seconds. */
        if (p->seconds_wanted > 0) {
                log_error("Interrupted after %u of %u seconds.", p->seconds_done, p->seconds_wanted);
                probe_quit(p, 1);
        } else
                probe_quit(p, 0);
        return G_SOURCE_CONTINUE;
}

static gboolean on_bus_message(GstBus *bus, GstMessage *message, gpointer userdata) {
        Probe *p = userdata;

        switch (GST_MESSAGE_TYPE(message)) {
        case GST_MESSAGE_ERROR: {
                g_autoptr(GError) error = NULL;
                g_autofree char *debug = NULL;

                gst_message_parse_error(message, &error, &debug);
                log_error("%s: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(message)),
                          error ? error->message : "error");
                probe_quit(p, 1);
                break;
        }
        case GST_MESSAGE_EOS:
                log_error("Unexpected end of stream.");
                probe_quit(p, 1);
                break;
        case GST_MESSAGE_STATE_CHANGED: {
                GstState new_state;

                if (GST_MESSAGE_SRC(message) != GST_OBJECT(p->pipeline))
                        break;
                gst_message_parse_state_changed(message, NULL, &new_state, NULL);
                if (new_state == GST_STATE_PLAYING && !p->playing_announced && p->seconds_wanted == 0) {
                        p->playing_announced = true;
                        printf("PLAYING\n");
                        fflush(stdout);
                }
                break;
        }
        default:
                break;
        }
        return G_SOURCE_CONTINUE;
}

static int most_common_hz(const int *hz, unsigned n) {
        int best = 0;
        unsigned best_count = 0;

        /* Refined frequencies wobble by a hertz between blocks (879/880): count within ±2 Hz. */
        for (unsigned i = 0; i < n; i++) {
                unsigned count = 0;

                if (hz[i] == 0)
                        continue;
                for (unsigned j = 0; j < n; j++)
                        if (hz[j] != 0 && abs(hz[j] - hz[i]) <= 2)
                                count++;
                if (count > best_count) {
                        best = hz[i];
                        best_count = count;
                }
        }
        return best;
}

/* Main thread: one full second of audio. */
static gboolean on_block(gpointer userdata) {
        Block *b = userdata;
        Probe *p = b->probe;
        double hz = 0, dbfs = -100;

        if (p->seconds_done >= p->seconds_wanted)
                return G_SOURCE_REMOVE;
        if (dominant_frequency(b->samples, RATE, RATE, &hz, &dbfs) < 0)
                hz = 0;
        p->hz_per_second[p->seconds_done] = (int) lround(hz);
        printf("{\"second\":%u,\"hz\":%d,\"dbfs\":%.1f}\n", p->seconds_done,
               p->hz_per_second[p->seconds_done], dbfs);
        p->seconds_done++;
        if (p->seconds_done == p->seconds_wanted) {
                printf("{\"dominant_hz\":%d,\"seconds\":%u}\n",
                       most_common_hz(p->hz_per_second, p->seconds_done), p->seconds_done);
                probe_quit(p, 0);
        }
        fflush(stdout);
        return G_SOURCE_REMOVE;
}

static void block_free(gpointer userdata) {
        Block *b = userdata;

        g_free(b->samples);
        g_free(b);
}

/* Streaming thread: cut the S16LE mono stream into one-second blocks for the main thread. */
static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer userdata) {
        Probe *p = userdata;
        g_autoptr(GstSample) sample = gst_app_sink_pull_sample(sink);
        GstBuffer *buffer = sample ? gst_sample_get_buffer(sample) : NULL;
        GstMapInfo map;
        size_t n, off = 0;

        if (!buffer || !gst_buffer_map(buffer, &map, GST_MAP_READ))
                return GST_FLOW_OK;
        n = map.size / sizeof(int16_t);
        while (off < n) {
                size_t take = MIN(n - off, (size_t) RATE - p->block_fill);

                memcpy(p->block + p->block_fill, map.data + off * sizeof(int16_t), take * sizeof(int16_t));
                p->block_fill += take;
                off += take;
                if (p->block_fill == RATE) {
                        Block *b = g_new0(Block, 1);

                        b->probe = p;
                        b->samples = g_memdup2(p->block, RATE * sizeof(int16_t));
                        /* Always queued: invoke() could run on_block here while the loop is idle. */
                        g_idle_add_full(G_PRIORITY_DEFAULT, on_block, b, block_free);
                        p->block_fill = 0;
                }
        }
        gst_buffer_unmap(buffer, &map);
        return GST_FLOW_OK;
}

static gboolean on_deadline(gpointer userdata) {
        Probe *p = userdata;

        log_error("Received only %u of %u seconds of audio within %u s%s.", p->seconds_done,
                  p->seconds_wanted, p->seconds_wanted + SLACK_SECONDS,
                  g_atomic_int_get(&p->starting) ? " (the stream was never linked: does the node exist?)"
                                                 : "");
        probe_quit(p, 1);
        return G_SOURCE_REMOVE;
}

static gboolean on_start_failed(gpointer userdata) {
        Probe *p = userdata;

        log_error("Cannot start the pipeline (is PipeWire running, does the node exist?).");
        probe_quit(p, 1);
        return G_SOURCE_REMOVE;
}

/* pipewiresrc 0.3.65 blocks its READY -> PAUSED change until PipeWire links the stream, for up to
 * 30 s when it cannot: done on a worker so that the deadline still works. */
static void start_async(GstElement *pipeline, gpointer userdata) {
        Probe *p = userdata;

        /* READY connects to PipeWire: fails right away when it is not running, but the core sync
         * after connecting has been seen to stall under load, so it is off the main thread too. */
        if (gst_element_set_state(pipeline, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE ||
            gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
                g_idle_add(on_start_failed, p);
        g_atomic_int_set(&p->starting, 0);
}

static GstElement *make(GstElement *bin, const char *factory) {
        GstElement *e = gst_element_factory_make(factory, NULL);

        if (!e) {
                log_error("GStreamer element '%s' is missing.", factory);
                return NULL;
        }
        gst_bin_add(GST_BIN(bin), e);
        return e;
}

static int build_play(Probe *p, double freq, double volume, const char *target) {
        GstElement *src, *convert, *resample, *sink;

        if (!(src = make(p->pipeline, "audiotestsrc")) || !(convert = make(p->pipeline, "audioconvert")) ||
            !(resample = make(p->pipeline, "audioresample")) || !(sink = make(p->pipeline, "pipewiresink")))
                return -ENODEV;
        g_object_set(src, "is-live", TRUE, "freq", freq, "volume", volume, NULL);
        gst_util_set_object_arg(G_OBJECT(src), "wave", "sine");
        if (target)
                g_object_set(sink, "target-object", target, NULL);
        if (!gst_element_link_many(src, convert, resample, sink, NULL))
                return log_error_errno(-EINVAL, "Cannot link the play pipeline.");
        return 0;
}

static int build_record(Probe *p, const char *target, bool monitor) {
        GstElement *src, *convert, *resample, *sink;
        g_autoptr(GstCaps) caps = NULL;
        GstAppSinkCallbacks callbacks = { .new_sample = on_new_sample };

        if (!(src = make(p->pipeline, "pipewiresrc")) || !(convert = make(p->pipeline, "audioconvert")) ||
            !(resample = make(p->pipeline, "audioresample")) || !(sink = make(p->pipeline, "appsink")))
                return -ENODEV;
        /* pipewiresrc stalls after 16 buffers in 0.3.65 unless it copies (platform-notes §3). */
        g_object_set(src, "always-copy", TRUE, NULL);
        if (target)
                g_object_set(src, "target-object", target, NULL);
        if (monitor) {
                GstStructure *props = gst_structure_new_from_string("props,stream.capture.sink=true");

                g_object_set(src, "stream-properties", props, NULL);
                gst_structure_free(props);
        }
        caps = gst_caps_from_string("audio/x-raw,format=S16LE,channels=1,rate=48000,layout=interleaved");
        g_object_set(sink, "caps", caps, "sync", FALSE, NULL);
        gst_app_sink_set_callbacks(GST_APP_SINK(sink), &callbacks, p, NULL);
        if (!gst_element_link_many(src, convert, resample, sink, NULL))
                return log_error_errno(-EINVAL, "Cannot link the record pipeline.");
        return 0;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: bwaudio-probe play --freq HZ [--target NODE] [--volume V]\n"
                "       bwaudio-probe record [--target NODE] --seconds N [--monitor]\n");
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "freq", required_argument, NULL, 'f' },   { "target", required_argument, NULL, 't' },
                { "volume", required_argument, NULL, 'v' }, { "seconds", required_argument, NULL, 's' },
                { "monitor", no_argument, NULL, 'm' },      { "help", no_argument, NULL, 'h' },
                {},
        };
        Probe p = { .exit_code = 1 };
        const char *mode, *target = NULL;
        double freq = 1000, volume = 0.5;
        long seconds = 0;
        bool monitor = false, play;
        g_autoptr(GstBus) bus = NULL;
        char *end;
        int c, r;

        log_setup("bwaudio-probe");
        gst_init(&argc, &argv);

        if (argc < 2 || (strcmp(argv[1], "play") != 0 && strcmp(argv[1], "record") != 0)) {
                usage(stderr);
                return 2;
        }
        mode = argv[1];
        play = strcmp(mode, "play") == 0;
        optind = 2;
        while ((c = getopt_long(argc, argv, "f:t:v:s:mh", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        freq = strtod(optarg, &end);
                        if (*end || !(freq > 0 && freq < RATE / 2)) {
                                log_error("Invalid --freq '%s'.", optarg);
                                return 2;
                        }
                        break;
                case 't':
                        target = *optarg ? optarg : NULL;
                        break;
                case 'v':
                        volume = strtod(optarg, &end);
                        if (*end || !(volume >= 0 && volume <= 1)) {
                                log_error("Invalid --volume '%s' (0..1).", optarg);
                                return 2;
                        }
                        break;
                case 's':
                        seconds = strtol(optarg, &end, 10);
                        if (*end || seconds < 1 || seconds > 3600) {
                                log_error("Invalid --seconds '%s'.", optarg);
                                return 2;
                        }
                        break;
                case 'm':
                        monitor = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }
        if (!play && seconds == 0) {
                log_error("record needs --seconds N.");
                return 2;
        }

        p.loop = g_main_loop_new(NULL, FALSE);
        p.pipeline = gst_pipeline_new(mode);
        if (play)
                r = build_play(&p, freq, volume, target);
        else {
                p.seconds_wanted = (unsigned) seconds;
                p.hz_per_second = g_new0(int, p.seconds_wanted);
                p.block = g_new0(int16_t, RATE);
                r = build_record(&p, target, monitor);
        }
        if (r < 0)
                goto finish;

        bus = gst_pipeline_get_bus(GST_PIPELINE(p.pipeline));
        gst_bus_add_watch(bus, on_bus_message, &p);
        g_unix_signal_add(SIGINT, on_signal, &p);
        g_unix_signal_add(SIGTERM, on_signal, &p);
        if (!play)
                g_timeout_add_seconds(p.seconds_wanted + SLACK_SECONDS, on_deadline, &p);

        g_atomic_int_set(&p.starting, 1);
        gst_element_call_async(p.pipeline, start_async, &p, NULL);
        g_main_loop_run(p.loop);

        if (g_atomic_int_get(&p.starting)) {
                /* Stopping would wait for the blocked start; never hang, leave now. */
                fflush(stdout);
                _exit(p.exit_code);
        }
        gst_element_set_state(p.pipeline, GST_STATE_NULL);
        gst_bus_remove_watch(bus);
finish:
        gst_object_unref(p.pipeline);
        g_main_loop_unref(p.loop);
        g_free(p.hz_per_second);
        g_free(p.block);
        return p.exit_code;
}
