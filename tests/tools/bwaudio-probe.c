/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bwaudio-probe: puts a tone into a PipeWire node, or records one and says which tone it heard.
 *
 *   bwaudio-probe play --freq HZ [--target NODE] [--volume V]
 *        Plays a sine into NODE (e.g. mic-feed, the harness's microphone feed) until SIGINT or
 *        SIGTERM. Prints "PLAYING" once PipeWire pulls audio from it (the stream is linked).
 *   bwaudio-probe record [--target NODE] --seconds N [--monitor]
 *        Records from NODE (with --monitor: the monitor of the sink NODE) and prints one JSON line
 *        per second of received audio, {"second":i,"hz":..,"dbfs":..}, then
 *        {"dominant_hz":..,"seconds":N}. Gives up after N+5 s of wall clock (exit 1).
 *
 * Used by the integration tests and the demo against the private PipeWire of
 * tests/harness/harness.sh. PipeWire streams of our own (common/pw-audio.h), like bwcalld: the
 * GStreamer plugin's pipewiresink stalled in its READY change here under load. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <glib.h>

#include "goertzel.h"
#include "log.h"
#include "pw-audio.h"

#define RATE PW_AUDIO_RATE
#define SLACK_SECONDS 5

typedef struct Probe {
        GMainLoop *loop;
        int exit_code;

        /* play mode: data thread only, but for the flag */
        double phase, phase_step, amplitude;
        gint playing; /* atomic: PipeWire pulled audio once */

        /* record mode */
        unsigned seconds_wanted;
        unsigned seconds_done;    /* main thread */
        int *hz_per_second;       /* main thread */
        int16_t *block;           /* data thread only */
        size_t block_fill;        /* data thread only */
        gint samples_seen;        /* atomic */
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

static gboolean on_failed_main(gpointer userdata) {
        Probe *p = userdata;

        probe_quit(p, 1);
        return G_SOURCE_REMOVE;
}

/* PipeWire's loop thread. */
static void on_failed(const char *message, void *userdata) {
        log_error("PipeWire stream failed: %s", message);
        g_idle_add(on_failed_main, userdata);
}

static gboolean on_playing(gpointer userdata) {
        printf("PLAYING\n");
        fflush(stdout);
        return G_SOURCE_REMOVE;
}

/* PipeWire's data thread: the next n samples of the sine. */
static void on_fill(int16_t *samples, size_t n, void *userdata) {
        Probe *p = userdata;

        for (size_t i = 0; i < n; i++) {
                samples[i] = (int16_t) lround(p->amplitude * 32767.0 * sin(p->phase));
                p->phase += p->phase_step;
                if (p->phase >= 2 * M_PI)
                        p->phase -= 2 * M_PI;
        }
        if (g_atomic_int_compare_and_exchange(&p->playing, 0, 1))
                g_idle_add(on_playing, p);
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

/* PipeWire's data thread: cut the stream into one-second blocks for the main thread. */
static void on_captured(const int16_t *samples, size_t n, void *userdata) {
        Probe *p = userdata;
        size_t off = 0;

        g_atomic_int_set(&p->samples_seen, 1);
        while (off < n) {
                size_t take = MIN(n - off, (size_t) RATE - p->block_fill);

                memcpy(p->block + p->block_fill, samples + off, take * sizeof(int16_t));
                p->block_fill += take;
                off += take;
                if (p->block_fill == RATE) {
                        Block *b = g_new0(Block, 1);

                        b->probe = p;
                        b->samples = g_memdup2(p->block, RATE * sizeof(int16_t));
                        g_idle_add_full(G_PRIORITY_DEFAULT, on_block, b, block_free);
                        p->block_fill = 0;
                }
        }
}

static gboolean on_deadline(gpointer userdata) {
        Probe *p = userdata;

        log_error("Received only %u of %u seconds of audio within %u s%s.", p->seconds_done,
                  p->seconds_wanted, p->seconds_wanted + SLACK_SECONDS,
                  g_atomic_int_get(&p->samples_seen) ? ""
                                                     : " (the stream was never linked: does the node exist?)");
        probe_quit(p, 1);
        return G_SOURCE_REMOVE;
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
        PwAudio *audio = NULL;
        PwAudioStream *stream = NULL;
        const char *mode, *target = NULL;
        double freq = 1000, volume = 0.5;
        long seconds = 0;
        bool monitor = false, play;
        char *end;
        int c, r;

        log_setup("bwaudio-probe");

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
        r = pw_audio_new("bwaudio-probe", &audio);
        if (r < 0) {
                log_error_errno(r, "Cannot connect to PipeWire: %m");
                goto finish;
        }
        if (play) {
                const PwAudioStreamConfig config = {
                        .direction = PW_AUDIO_PLAYBACK,
                        .name = "bwaudio-probe tone",
                        .target = target,
                        .fill = on_fill,
                        .failed = on_failed,
                        .userdata = &p,
                };

                p.phase_step = 2 * M_PI * freq / RATE;
                p.amplitude = volume;
                r = pw_audio_stream_new(audio, &config, &stream);
        } else {
                const PwAudioStreamConfig config = {
                        .direction = PW_AUDIO_CAPTURE,
                        .name = "bwaudio-probe recorder",
                        .target = target,
                        .monitor = monitor,
                        .captured = on_captured,
                        .failed = on_failed,
                        .userdata = &p,
                };

                p.seconds_wanted = (unsigned) seconds;
                p.hz_per_second = g_new0(int, p.seconds_wanted);
                p.block = g_new0(int16_t, RATE);
                r = pw_audio_stream_new(audio, &config, &stream);
        }
        if (r < 0) {
                log_error_errno(r, "Cannot create the PipeWire stream: %m");
                goto finish;
        }

        g_unix_signal_add(SIGINT, on_signal, &p);
        g_unix_signal_add(SIGTERM, on_signal, &p);
        if (!play)
                g_timeout_add_seconds(p.seconds_wanted + SLACK_SECONDS, on_deadline, &p);
        g_main_loop_run(p.loop);

finish:
        /* The stream first: its callbacks use p. */
        pw_audio_stream_free(stream);
        pw_audio_unref(audio);
        g_main_loop_unref(p.loop);
        g_free(p.hz_per_second);
        g_free(p.block);
        return p.exit_code;
}
