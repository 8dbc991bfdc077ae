/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib.h>

#include "pw-audio.h"
#include "tones.h"

/* One step of a cadence: up to two frequencies (0 = none) for duration_ms. */
typedef struct ToneStep {
        double hz[2];
        unsigned duration_ms;
} ToneStep;

#define TONE_MAX_STEPS 4

static const struct {
        const char *name;
        const char *role;     /* media.role, for WirePlumber's policies */
        double amplitude;     /* per frequency, of full scale */
        ToneStep steps[TONE_MAX_STEPS];
} tone_patterns[_TONE_MAX] = {
        [TONE_RINGBACK] = { "ringback", "Communication", 0.1, { { { 440, 480 }, 2000 }, { { 0, 0 }, 4000 } } },
        [TONE_RING] = { "ring", "Notification", 0.25,
                        { { { 440, 480 }, 400 }, { { 0, 0 }, 200 }, { { 440, 480 }, 400 }, { { 0, 0 }, 2000 } } },
        [TONE_CALL_WAITING] = { "call-waiting", "Communication", 0.1, { { { 440, 0 }, 300 }, { { 0, 0 }, 9700 } } },
        /* The steps are the digit's (tone_new_dtmf()). */
        [TONE_DTMF] = { "dtmf", "Communication", 0.05, {} },
};

/* RFC 4733 / Q.23 keypad: row and column frequencies. */
static const char dtmf_keys[] = "123A456B789C*0#D";
static const double dtmf_rows[4] = { 697, 770, 852, 941 };
static const double dtmf_cols[4] = { 1209, 1336, 1477, 1633 };

struct Tone {
        ToneKind kind;
        ToneStep steps[TONE_MAX_STEPS]; /* the pattern's, or a digit's */
        PwAudio *audio;
        PwAudioStream *stream;
        /* PipeWire's data thread only. */
        uint64_t position; /* samples since the start */
};

const char *tone_kind_to_string(ToneKind kind) {
        return kind < _TONE_MAX ? tone_patterns[kind].name : NULL;
}

ToneKind tone_get_kind(const Tone *t) {
        return t->kind;
}

/* PipeWire's data thread: the cadence, computed from the sample position so that it never
 * drifts and each step starts at phase 0 (no clicks at the step edges). */
static void on_fill(int16_t *samples, size_t n, void *userdata) {
        Tone *t = userdata;
        const ToneStep *steps = t->steps;
        double amplitude = tone_patterns[t->kind].amplitude * 32767.0;
        uint64_t cycle = 0;

        for (size_t s = 0; s < TONE_MAX_STEPS; s++)
                cycle += (uint64_t) steps[s].duration_ms * PW_AUDIO_RATE / 1000;
        for (size_t i = 0; i < n; i++, t->position++) {
                uint64_t at = t->position % cycle, start = 0;
                double v = 0;

                for (size_t s = 0; s < TONE_MAX_STEPS; s++) {
                        uint64_t len = (uint64_t) steps[s].duration_ms * PW_AUDIO_RATE / 1000;

                        if (at < start + len) {
                                double seconds = (double) (at - start) / PW_AUDIO_RATE;

                                for (size_t f = 0; f < 2; f++)
                                        if (steps[s].hz[f] > 0)
                                                v += sin(2 * M_PI * steps[s].hz[f] * seconds);
                                break;
                        }
                        start += len;
                }
                samples[i] = (int16_t) lround(v * amplitude);
        }
}

static int tone_start(ToneKind kind, const ToneStep steps[TONE_MAX_STEPS], const char *target, Tone **ret) {
        g_autofree char *name = NULL;
        PwAudioStreamConfig config;
        Tone *t;
        int r;

        t = g_new0(Tone, 1);
        t->kind = kind;
        memcpy(t->steps, steps, sizeof(t->steps));
        r = pw_audio_new("bwcall-tone", &t->audio);
        if (r < 0) {
                g_free(t);
                return r;
        }
        name = g_strdup_printf("bwcall %s", tone_patterns[kind].name);
        config = (PwAudioStreamConfig) {
                .direction = PW_AUDIO_PLAYBACK,
                .name = name,
                .target = target,
                .role = tone_patterns[kind].role,
                .fill = on_fill,
                .userdata = t,
        };
        r = pw_audio_stream_new(t->audio, &config, &t->stream);
        if (r < 0) {
                tone_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int tone_new(ToneKind kind, const char *target, Tone **ret) {
        assert(kind < _TONE_MAX && kind != TONE_DTMF);
        assert(ret);
        return tone_start(kind, tone_patterns[kind].steps, target, ret);
}

int tone_new_dtmf(char digit, unsigned duration_ms, const char *target, Tone **ret) {
        const char *key = digit ? strchr(dtmf_keys, g_ascii_toupper(digit)) : NULL;
        ToneStep steps[TONE_MAX_STEPS] = {};
        size_t i;

        assert(ret);
        if (!key)
                return -EINVAL;
        i = (size_t) (key - dtmf_keys);
        steps[0] = (ToneStep) { { dtmf_rows[i / 4], dtmf_cols[i % 4] }, duration_ms };
        steps[1] = (ToneStep) { { 0, 0 }, 60000 }; /* silent until freed */
        return tone_start(TONE_DTMF, steps, target, ret);
}

Tone *tone_free(Tone *t) {
        if (!t)
                return NULL;
        pw_audio_stream_free(t->stream); /* no fill call after this */
        pw_audio_unref(t->audio);
        g_free(t);
        return NULL;
}
