/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "macro.h"

/* PipeWire's audio devices, watched live through the registry (common/pw-audio.h). The lists
 * are a snapshot owned by the main context; `changed` fires there after each burst of changes
 * (a plugged headset adds several nodes at once). When PipeWire is not there (yet, or any
 * more) the lists are empty and a connection is tried again every few seconds. */

typedef struct AudioDevice {
        char *node;        /* PipeWire node.name: what Input=/Output= and SetInput()/SetOutput() take */
        char *description; /* for people */
        gint64 priority;   /* priority.session */
        bool is_default;   /* the one WirePlumber picks: highest priority.session of its class */
} AudioDevice;

#define AUDIO_CLASS_SOURCE "Audio/Source"
#define AUDIO_CLASS_SINK "Audio/Sink"

typedef struct AudioDevices AudioDevices;
typedef void (*AudioDevicesChangedFunc)(AudioDevices *d, void *userdata);

/* Starts watching; waits (at most 1 s) for PipeWire's current devices so that the first
 * answers are right. Never fails for want of PipeWire. */
AudioDevices *audio_devices_new(AudioDevicesChangedFunc changed, void *userdata);
AudioDevices *audio_devices_free(AudioDevices *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(AudioDevices *, audio_devices_free);

/* Whether PipeWire is connected and has told us its devices. */
bool audio_devices_available(const AudioDevices *d);
/* The devices of class_name (AUDIO_CLASS_*), AudioDevice*, sorted by node name. Owned by d,
 * valid until the next main-loop iteration. */
const GPtrArray *audio_devices_get(const AudioDevices *d, const char *class_name);
/* Whether a device of class_name with this node name is there. */
bool audio_devices_has(const AudioDevices *d, const char *class_name, const char *node);

/* The SDK's checkAvailableDevices(): is there a microphone (`input`, or the default source) and
 * a speaker (`output`, or the default sink)? On success ret_microphone and ret_speaker get the
 * devices' descriptions. -ENODEV with the SDK's message ("Missing a microphone! Please connect
 * one and reload") or a message naming the chosen device that is missing; -ENOTSUP when
 * PipeWire cannot be asked. */
int audio_devices_check(const AudioDevices *d, const char *input, const char *output, char **ret_microphone,
                        char **ret_speaker, char **ret_message);
