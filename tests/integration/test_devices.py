#!/usr/bin/env python3
"""Audio devices (issue 7, first part): CheckAvailableDevices as the SDK.

Usage: test_devices.py CASE, CASE one of: check, no-microphone, configured-missing.
The harness' virtual devices, or a device set without a microphone (BWCALL_HARNESS_DEVICES)."""
import os
import subprocess

import bwtest
from bwtest import check

NO_MIC_DEVICES = """context.objects = [
  { factory = adapter
    args = { factory.name = support.null-audio-sink
             node.name = "test-sink" node.description = "Test speaker"
             media.class = "Audio/Sink" priority.session = 3000
             audio.position = [ MONO ] audio.rate = 48000 } }
]
"""


def check_devices(env):
    """CheckAvailableDevices from a second, independent D-Bus client (gdbus)."""
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.bwcall.Phone1", "--object-path",
                           "/org/bwcall/Phone1", "--method", "org.bwcall.Phone1.CheckAvailableDevices"],
                          env=env.env, capture_output=True, text=True, timeout=30)


def case_check(env):
    env.harness()
    env.start_gateway()
    env.start_connected()
    r = check_devices(env)
    check(r.returncode == 0 and "'microphone': 'Test microphone'" in r.stdout and "'speaker': 'Test speaker'" in r.stdout,
          f"microphone and speaker found: {r.stdout.strip()} {r.stderr.strip()}")


def case_no_microphone(env):
    path = os.path.join(env.dir, "no-mic.conf")
    with open(path, "w") as f:
        f.write(NO_MIC_DEVICES)
    env.env["BWCALL_HARNESS_DEVICES"] = path
    env.harness()
    env.start_gateway()
    env.start_connected()
    r = check_devices(env)
    check(r.returncode != 0 and "org.bwcall.Phone1.Error.NoDevice" in r.stderr
          and "Missing a microphone! Please connect one and reload" in r.stderr,
          f"NoDevice with the SDK's message: {r.stderr.strip()}")
    check(env.bwcall("status").returncode == 0, "the daemon keeps serving")


def case_configured_missing(env):
    env.harness()
    env.start_gateway()
    env.start_connected(extra="[Media]\nInput=no-such-microphone\n")
    r = check_devices(env)
    check(r.returncode != 0 and "NoDevice" in r.stderr and "'no-such-microphone' is not connected" in r.stderr,
          f"the configured microphone is named as missing: {r.stderr.strip()}")


bwtest.run_cases({"check": case_check, "no-microphone": case_no_microphone,
                  "configured-missing": case_configured_missing})
