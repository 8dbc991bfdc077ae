/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "config.h"

/* PipeWire audio devices as GStreamer's PipeWire device provider sees them. */

/* The SDK's checkAvailableDevices(): is there a microphone (the configured [Media] Input=, or
 * any source) and a speaker? On success ret_microphone and ret_speaker get the devices' display
 * names. -ENODEV with the SDK's message ("Missing a microphone! Please connect one and
 * reload") or a message naming the configured device that is missing; -ENOTSUP when PipeWire
 * cannot be asked. */
int audio_devices_check(const Config *config, char **ret_microphone, char **ret_speaker, char **ret_message);
