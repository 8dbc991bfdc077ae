/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "config.h"
#include "macro.h"

/* PipeWire audio devices, read afresh from PipeWire's registry at every query (one round trip,
 * at most 1 s). */

typedef struct AudioDevice {
        char *node;        /* PipeWire node.name: what Input=/Output= and SetInput()/SetOutput() take */
        char *description; /* for people */
        gint64 priority;   /* priority.session */
        bool is_default;   /* the one WirePlumber picks: highest priority.session of its class */
} AudioDevice;

#define AUDIO_CLASS_SOURCE "Audio/Source"
#define AUDIO_CLASS_SINK "Audio/Sink"

/* The devices of class_name (AUDIO_CLASS_*), an array of AudioDevice*, sorted by node name. */
GPtrArray *audio_devices_list(const char *class_name);
/* Whether a device of class_name with this node name is there. */
bool audio_devices_has(const char *class_name, const char *node);

/* The SDK's checkAvailableDevices(): is there a microphone (the configured [Media] Input=, or
 * the default source) and a speaker? On success ret_microphone and ret_speaker get the
 * devices' descriptions. -ENODEV with the SDK's message ("Missing a microphone! Please connect
 * one and reload") or a message naming the configured device that is missing; -ENOTSUP when
 * PipeWire cannot be asked. */
int audio_devices_check(const Config *config, char **ret_microphone, char **ret_speaker, char **ret_message);
