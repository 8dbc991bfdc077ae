/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

/* Local tones, played through a PipeWire stream of their own (common/pw-audio.h), never sent
 * to the far end. The patterns are the North American ones (Bandwidth's network): ringback
 * 440+480 Hz 2 s on / 4 s off; a ring burst 440+480 Hz 0.4 s, 0.2 s, 0.4 s every 3 s; call
 * waiting 440 Hz 0.3 s every 10 s (ITU-T E.180, Telcordia GR-506); DTMF feedback the digit's
 * own pair of frequencies, quietly. */

typedef enum ToneKind {
        TONE_RINGBACK,     /* an outgoing call rings at the far end and sends no early media */
        TONE_RING,         /* an incoming call, on the ringer device */
        TONE_CALL_WAITING, /* an incoming call while another one is up, on that call's speaker */
        TONE_DTMF,         /* feedback for a digit we send, on the call's speaker (tone_new_dtmf()) */
        _TONE_MAX,
} ToneKind;

typedef struct Tone Tone;

const char *tone_kind_to_string(ToneKind kind);

/* Starts playing kind on PipeWire node target (NULL or "" = the system default) until
 * tone_free(). Returns 0 or negative errno (-EHOSTDOWN when PipeWire is not running). */
int tone_new(ToneKind kind, const char *target, Tone **ret);
/* DTMF feedback: the digit's two frequencies (0-9 A-D * #) for duration_ms, then silence until
 * tone_free(). -EINVAL for another character. */
int tone_new_dtmf(char digit, unsigned duration_ms, const char *target, Tone **ret);
Tone *tone_free(Tone *t);
ToneKind tone_get_kind(const Tone *t);
