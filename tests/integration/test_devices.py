#!/usr/bin/env python3
"""Audio devices (issue 7, first part): CheckAvailableDevices as the SDK.

Usage: test_devices.py CASE, CASE one of: check, no-microphone, configured-missing, lists,
select-output, hotplug.
The harness' virtual devices, or a device set without a microphone (BWCALL_HARNESS_DEVICES)."""
import json
import os
import subprocess

import bwtest
from bwtest import check, first, near

TONE_NUMBER = "+15550001000"
PHONE = "/org/bwcall/Phone1"
AUDIO = "org.bwcall.Phone1.Audio"

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


def gdbus(env, *args):
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.bwcall.Phone1", "--object-path", PHONE,
                           *args], env=env.env, capture_output=True, text=True, timeout=30)


def devices(env, prop):
    """Inputs/Outputs as [(node, description, is_default)], read with busctl's JSON output."""
    r = subprocess.run(["busctl", "--user", "--json=short", "get-property", "org.bwcall.Phone1", PHONE, AUDIO, prop],
                       env=env.env, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"{prop} readable: {r.stderr.strip()}")
    return [tuple(d) for d in json.loads(r.stdout)["data"]]


def case_lists(env):
    env.harness()
    env.start_gateway()
    env.start_connected()
    inputs, outputs = devices(env, "Inputs"), devices(env, "Outputs")
    check(("test-mic", "Test microphone", True) in inputs, f"Inputs has the default test microphone: {inputs}")
    check(("test-sink", "Test speaker", True) in outputs and ("test-sink2", "Second test speaker", False) in outputs,
          f"Outputs has both test speakers, the first as default: {outputs}")
    check(sum(1 for d in outputs if d[2]) == 1 and sum(1 for d in inputs if d[2]) == 1, "one default each")


def case_select_output(env):
    """SetOutput: new calls play on the chosen speaker, not on the default one."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    r = gdbus(env, "--method", f"{AUDIO}.SetOutput", "nope")
    check(r.returncode != 0 and "NoDevice" in r.stderr and "'nope'" in r.stderr, f"unknown speaker refused: {r.stderr.strip()}")
    mark = len(env.monitor_lines.snapshot())
    r = gdbus(env, "--method", f"{AUDIO}.SetOutput", "test-sink2")
    check(r.returncode == 0, f"SetOutput('test-sink2'): {r.stderr.strip()}")
    env.monitor_lines.wait_for(lambda it: first(it[mark:], lambda x: x.get("signal") == "PropertiesChanged"
                                                and x["args"].get("interface") == AUDIO
                                                and x["args"]["changed"].get("Output") == "test-sink2"), 10,
                               "PropertiesChanged Output=test-sink2")
    env.play_tone(1000)
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    env.heard(1000)
    on_new = env.record("test-sink2", seconds=2)
    check(near(on_new[-1].get("dominant_hz"), 880, 15), f"the far end plays on test-sink2: {on_new[-1]}")
    on_old = env.record("test-sink", seconds=1)
    check(all((s.get("dbfs") or -99) < -50 for s in on_old if "second" in s),
          f"and not on the default speaker: {on_old}")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def node_id(env, name):
    r = subprocess.run(["pw-dump"], env=env.env, capture_output=True, text=True, timeout=30)
    for o in json.loads(r.stdout or "[]"):
        if (o.get("info") or {}).get("props", {}).get("node.name") == name:
            return o["id"]
    return None


def case_hotplug(env):
    """A speaker that appears and goes: the Outputs list follows (read afresh every time)."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    subprocess.run(["pw-cli", "create-node", "adapter",
                    '{ factory.name=support.null-audio-sink node.name=hotplug-sink node.description="Hot-plugged '
                    'speaker" media.class=Audio/Sink object.linger=true audio.position=[MONO] }'],
                   env=env.env, capture_output=True, text=True, timeout=30, check=True)
    check(("hotplug-sink", "Hot-plugged speaker", False) in devices(env, "Outputs"), "the new speaker is listed")
    check(gdbus(env, "--method", f"{AUDIO}.SetOutput", "hotplug-sink").returncode == 0, "and can be chosen")
    nid = node_id(env, "hotplug-sink")
    check(nid is not None, f"pw-dump knows the node ({nid})")
    subprocess.run(["pw-cli", "destroy", str(nid)], env=env.env, capture_output=True, timeout=30, check=True)
    check(all(d[0] != "hotplug-sink" for d in devices(env, "Outputs")), "the speaker is gone from Outputs")
    r = gdbus(env, "--method", f"{AUDIO}.SetOutput", "hotplug-sink")
    check(r.returncode != 0 and "NoDevice" in r.stderr, "and can no longer be chosen")


bwtest.run_cases({"check": case_check, "no-microphone": case_no_microphone,
                  "configured-missing": case_configured_missing, "lists": case_lists,
                  "select-output": case_select_output, "hotplug": case_hotplug})
