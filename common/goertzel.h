/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Tone detection used wherever a test or a tool has to prove that audio really crossed:
 * bwgw-sim (what the caller sends), bwaudio-probe (what reached the speaker), benchmarks. */

/* Power of one frequency bin over the block (Goertzel). */
double goertzel_power(const int16_t *samples, size_t n, double rate, double freq);

/* Dominant frequency between 50 Hz and 4000 Hz, found with a coarse 10 Hz scan refined to 1 Hz.
 * Writes the frequency and the block's RMS level in dBFS (-100 for digital silence).
 * Returns 0, or -EINVAL for blocks too short to say anything (< 10 ms). A block whose level is
 * below -60 dBFS reports 0 Hz: silence has no frequency. */
int dominant_frequency(const int16_t *samples, size_t n, double rate, double *ret_hz, double *ret_dbfs);
