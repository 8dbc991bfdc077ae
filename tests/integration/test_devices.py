#!/usr/bin/env python3
"""Audio devices (issue 7): CheckAvailableDevices as the SDK, live device lists, per-call and
mid-call device choice, unplugged devices.

Usage: test_devices.py CASE, CASE one of: check, no-microphone, configured-missing, lists,
select-output, hotplug, switch-output, switch-input, unplug-output, muted-speaking,
silent-microphone, echo-cancel, pipewire-gone.
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


def tone_call(env):
    """Harness, gateway and daemon; a call to the 880 Hz far end with our 1000 Hz reaching it."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    env.play_tone(1000)
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    env.heard(1000)
    return path


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
    r = env.bwcall("devices", "--json")
    cli = json.loads(r.stdout)
    check({"node": "test-mic2", "description": "Second test microphone", "default": False} in cli["inputs"]
          and cli["output"] == "", f"bwcall devices --json: {r.stdout.strip()}")
    check(env.bwcall("device", "output", "test-sink2").returncode == 0
          and json.loads(env.bwcall("devices", "--json").stdout)["output"] == "test-sink2",
          "bwcall device output test-sink2 chooses it for new calls")
    r = env.bwcall("devices")
    check("* test-sink2" in r.stdout and "Test speaker (system default)" in r.stdout, f"bwcall devices: {r.stdout}")


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


def create_sink(env, name, description):
    subprocess.run(["pw-cli", "create-node", "adapter",
                    f'{{ factory.name=support.null-audio-sink node.name={name} node.description="{description}" '
                    'media.class=Audio/Sink object.linger=true audio.position=[MONO] }'],
                   env=env.env, capture_output=True, text=True, timeout=30, check=True)


def destroy_node(env, name):
    nid = node_id(env, name)
    check(nid is not None, f"pw-dump knows {name} ({nid})")
    subprocess.run(["pw-cli", "destroy", str(nid)], env=env.env, capture_output=True, timeout=30, check=True)


def wait_devices_changed(env, mark, what):
    """DevicesChanged after monitor item `mark`, and the Outputs that came with it."""
    return env.monitor_lines.wait_for(lambda it: first(it[mark:], lambda x: x.get("signal") == "DevicesChanged"),
                                      10, f"DevicesChanged ({what})")


def case_hotplug(env):
    """A speaker that appears and goes: DevicesChanged each time, Outputs follows."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    mark = len(env.monitor_lines.snapshot())
    create_sink(env, "hotplug-sink", "Hot-plugged speaker")
    wait_devices_changed(env, mark, "speaker plugged in")
    check(("hotplug-sink", "Hot-plugged speaker", False) in devices(env, "Outputs"), "the new speaker is listed")
    check(gdbus(env, "--method", f"{AUDIO}.SetOutput", "hotplug-sink").returncode == 0, "and can be chosen")
    mark = len(env.monitor_lines.snapshot())
    destroy_node(env, "hotplug-sink")
    wait_devices_changed(env, mark, "speaker unplugged")
    check(all(d[0] != "hotplug-sink" for d in devices(env, "Outputs")), "the speaker is gone from Outputs")
    r = gdbus(env, "--method", f"{AUDIO}.SetOutput", "hotplug-sink")
    check(r.returncode != 0 and "NoDevice" in r.stderr, "and can no longer be chosen")


def call_gdbus(env, path, *args):
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.bwcall.Phone1", "--object-path", path,
                           *args], env=env.env, capture_output=True, text=True, timeout=30)


def wait_device_signal(env, path, mark, kind, node, reason):
    return env.monitor_lines.wait_for(
        lambda it: first(it[mark:], lambda x: x.get("signal") == "AudioDeviceChanged" and x.get("path") == path
                         and x["args"] == {"kind": kind, "node": node, "reason": reason}),
        10, f"AudioDeviceChanged({kind}, {node!r}, {reason})")


def call_prop(env, path, prop):
    r = subprocess.run(["busctl", "--user", "--json=short", "get-property", "org.bwcall.Phone1", path,
                        "org.bwcall.Phone1.Call", prop], env=env.env, capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"{prop} of {path} readable: {r.stderr.strip()}")
    return json.loads(r.stdout)["data"]


def plays_on(env, sink, hz=880):
    """The far end's tone is on `sink`'s monitor (2 s recorded)."""
    got = env.record(sink, seconds=2)
    check(near(got[-1].get("dominant_hz"), hz, 15), f"the far end's {hz} Hz plays on {sink}: {got}")


def silent_on(env, sink):
    got = env.record(sink, seconds=1)
    check(all((s.get("dbfs") or -99) < -50 for s in got if "second" in s), f"and nothing on {sink}: {got}")


def invites(env):
    return [e for e in env.events.snapshot() if e.get("event") == "request" and e.get("method") == "INVITE"]


def case_switch_output(env):
    """Call.SetOutput mid-call: the far end moves to the other speaker, no SIP, the call stays."""
    path = tone_call(env)
    plays_on(env, "test-sink")
    r = call_gdbus(env, path, "--method", "org.bwcall.Phone1.Call.SetOutput", "nope")
    check(r.returncode != 0 and "NoDevice" in r.stderr, f"an unknown speaker is refused: {r.stderr.strip()}")
    n_invites = len(invites(env))
    mark = len(env.monitor_lines.snapshot())
    r = call_gdbus(env, path, "--method", "org.bwcall.Phone1.Call.SetOutput", "test-sink2")
    check(r.returncode == 0, f"Call.SetOutput('test-sink2'): {r.stderr.strip()}")
    wait_device_signal(env, path, mark, "output", "test-sink2", "requested")
    check(call_prop(env, path, "Output") == "test-sink2", "the call's Output says test-sink2")
    plays_on(env, "test-sink2")
    silent_on(env, "test-sink")
    mark_events = len(env.events.snapshot())
    env.heard(1000, after=mark_events)
    check(len(invites(env)) == n_invites, "no re-INVITE for the switch")
    check(call_prop(env, path, "State") == "active", "the call stays up")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_switch_input(env):
    """Call.SetInput mid-call: the far end hears the second microphone instead."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    env.play_tone(1000)
    env.play_tone(1300, target="mic2-feed")
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    env.heard(1000)
    mark = len(env.monitor_lines.snapshot())
    r = call_gdbus(env, path, "--method", "org.bwcall.Phone1.Call.SetInput", "test-mic2")
    check(r.returncode == 0, f"Call.SetInput('test-mic2'): {r.stderr.strip()}")
    wait_device_signal(env, path, mark, "input", "test-mic2", "requested")
    after = len(env.events.snapshot())
    env.heard(1300, after=after)
    check(len(invites(env)) == 1, "no re-INVITE for the switch")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_unplug_output(env):
    """The speaker a call uses is unplugged: the call moves to the default at once and says so;
    plugged in again, the call goes back to it."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    create_sink(env, "headset-sink", "Test headset")
    env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "DevicesChanged"), 10,
                               "the headset to be listed")
    env.play_tone(1000)
    r = env.bwcall("dial", "--no-wait", "--output", "headset-sink", TONE_NUMBER)
    path = r.stdout.strip().split()[-1]
    check(path.startswith("/org/bwcall/Phone1/Call/"), f"dial --output: {r.stdout!r} {r.stderr!r}")
    env.wait_state(path, "active")
    env.heard(1000)
    plays_on(env, "headset-sink")
    silent_on(env, "test-sink")
    mark = len(env.monitor_lines.snapshot())
    destroy_node(env, "headset-sink")
    wait_device_signal(env, path, mark, "output", "", "unplugged")
    check(call_prop(env, path, "Output") == "", "the call's Output is the system default")
    plays_on(env, "test-sink")
    check(call_prop(env, path, "State") == "active", "the call stays up")
    mark = len(env.monitor_lines.snapshot())
    create_sink(env, "headset-sink", "Test headset")
    wait_device_signal(env, path, mark, "output", "headset-sink", "returned")
    plays_on(env, "headset-sink")
    silent_on(env, "test-sink")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def wait_call_flag(env, path, mark, prop, value, timeout=10):
    return env.monitor_lines.wait_for(
        lambda it: first(it[mark:], lambda x: x.get("signal") == "PropertiesChanged" and x.get("path") == path
                         and x["args"]["changed"].get(prop) == value),
        timeout, f"{prop}={value}")


def case_muted_speaking(env):
    """Talking into a muted call is reported, and stops being reported when the talking stops."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    tone = env.play_tone(1000)
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    env.heard(1000)
    check(call_prop(env, path, "SpeakingWhileMuted") is False, "not reported while unmuted")
    mark = len(env.monitor_lines.snapshot())
    check(env.bwcall("mute", path).returncode == 0, "muted")
    wait_call_flag(env, path, mark, "SpeakingWhileMuted", True)
    mark = len(env.monitor_lines.snapshot())
    env.stop(tone)
    wait_call_flag(env, path, mark, "SpeakingWhileMuted", False)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_silent_microphone(env):
    """A microphone that delivers only digital silence on an answered call is reported; sound
    clears it."""
    env.harness()
    env.start_gateway()
    env.start_connected()
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    mark = len(env.monitor_lines.snapshot())
    wait_call_flag(env, path, 0, "MicrophoneSilent", True, timeout=12)
    env.play_tone(1000)
    wait_call_flag(env, path, mark, "MicrophoneSilent", False)
    env.heard(1000)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def echo_level(env, echo_cancel):
    """One call to the 880 Hz far end with our speaker looped into our microphone: the level
    (dBFS, median of 4 s after 6 s for the canceller to converge) at which the far end hears its own tone back."""
    env.restart_daemon(extra=f"[Media]\nEchoCancellation={'true' if echo_cancel else 'false'}\n"
                             "NoiseSuppression=false\nGainControl=false\n")
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    start = len(env.events.snapshot())

    def blocks(items):
        got = [e for e in items[start:] if e.get("event") == "frequency"]
        return got if len(got) >= 10 else None
    got = env.events.wait_for(blocks, 20, "10 s of what the far end hears")[6:10]
    levels = sorted(e.get("dbfs", -100) for e in got)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")
    bwtest.log(f"echo at the far end with EchoCancellation={echo_cancel}: {[(e.get('hz'), e.get('dbfs')) for e in got]}")
    return (levels[1] + levels[2]) / 2


def case_echo_cancel(env):
    """What our speaker plays is looped into our microphone (test-sink's monitor → mic-feed): with
    echo cancelling on, the far end hears its own tone at least 20 dB weaker than with it off."""
    env.harness()
    env.start_gateway()
    env.write_config()
    env.start_monitor()
    env.daemon = None
    r = subprocess.run(["pw-link", "test-sink:monitor_MONO", "mic-feed:playback_MONO"], env=env.env,
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"the harness loops the speaker into the microphone: {r.stderr.strip()}")
    off = echo_level(env, False)
    on = echo_level(env, True)
    print(f"echo level at the far end: AEC off {off:.1f} dBFS, AEC on {on:.1f} dBFS, "
          f"attenuation {off - on:.1f} dB", flush=True)
    check(off > -40, f"without echo cancelling the far end hears itself ({off:.1f} dBFS): the loop works")
    check(off - on >= 20, f"echo cancelling takes at least 20 dB off the echo ({off - on:.1f} dB)")


def case_pipewire_gone(env):
    """PipeWire dies mid-call: the call ends at once with a cause (not a silent call that looks up),
    bwcalld stays, and the device checks say PipeWire is not there."""
    path = tone_call(env)
    with open(os.path.join(env.harness_dir, "pids")) as f:
        pids = [int(x) for x in f.read().split()]
    pipewire = pids[1]  # harness.sh records dbus-daemon, pipewire, wireplumber in that order
    with open(f"/proc/{pipewire}/comm") as f:
        check(f.read().strip() == "pipewire", "the second recorded PID is our PipeWire")
    os.kill(pipewire, 15)
    sc = env.wait_state(path, "terminated", timeout=10)
    check(sc["args"]["cause"] == "RTP Timeout", f"the call ends like a call without media: {sc['args']}")
    check(env.bwcall("status").returncode == 0, "bwcalld keeps serving")
    env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "DevicesChanged"), 10,
                               "DevicesChanged when PipeWire went away")
    r = check_devices(env)
    check(r.returncode != 0 and "PipeWire" in r.stderr, f"CheckAvailableDevices says why: {r.stderr.strip()}")


bwtest.run_cases({"check": case_check, "no-microphone": case_no_microphone,
                  "configured-missing": case_configured_missing, "lists": case_lists,
                  "select-output": case_select_output, "hotplug": case_hotplug,
                  "switch-output": case_switch_output, "switch-input": case_switch_input,
                  "unplug-output": case_unplug_output, "muted-speaking": case_muted_speaking,
                  "silent-microphone": case_silent_microphone, "echo-cancel": case_echo_cancel,
                  "pipewire-gone": case_pipewire_gone})
