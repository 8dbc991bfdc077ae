#!/usr/bin/env python3
"""./do demo: a real call through the built-in test gateway, with live state shown.

Brings up a private session bus + headless PipeWire with virtual devices (so it never touches
your real microphone or speakers), bwgw-sim with a test CA, and bwcalld; feeds 1 kHz into the
test microphone, dials +15550001000 (rings once, answers, plays 880 Hz), shows every state
change as `bwcall monitor` sees it, reports what each side heard, hangs up, prints a verdict."""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bwtest  # noqa: E402
from bwtest import first, near  # noqa: E402

NUMBER = "+15550001000"


def say(msg):
    print(f"  {time.strftime('%H:%M:%S')}  {msg}", flush=True)


def show_states(env, stop):
    """Prints call signals live from the separate monitor client."""
    shown = 0
    while not stop.is_set():
        items = env.monitor_lines.snapshot()
        for x in items[shown:]:
            sig = x.get("signal")
            if sig == "StateChanged":
                a = x["args"]
                cause = f"  (cause: {a['cause']})" if a.get("cause") else ""
                say(f"call state: {a['old']} → {a['new']}{cause}")
            elif sig == "InterfacesAdded" and "/Call/" in x.get("args", {}).get("object", ""):
                st = x["args"]["interfaces"].get("org.bwcall.Phone1.Call", {}).get("State")
                say(f"call created: {x['args']['object']} state {st}")
            elif sig == "LoginStateChanged":
                say(f"gateway: {x['args']['cause']}")
        shown = len(items)
        with env.monitor_lines.cond:
            env.monitor_lines.cond.wait(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=bwtest.BUILD)
    ap.add_argument("--seconds", type=int, default=4, help="how long to stay in the call")
    args = ap.parse_args()
    os.environ["BWCALL_BUILDDIR"] = args.build

    print("bwcall demo: a real WebRTC call through bwgw-sim, audio through a private PipeWire\n", flush=True)
    verdict_ok = False
    stop = threading.Event()
    with bwtest.Env("demo") as env:
        say("starting private dbus-daemon + pipewire + wireplumber (virtual mic and speaker)")
        env.harness()
        say("starting bwgw-sim (test gateway, test CA, OAuth token endpoint)")
        env.start_gateway()
        env.write_config()
        env.start_monitor(echo=False)
        threading.Thread(target=show_states, args=(env, stop), daemon=True).start()
        say("starting bwcalld")
        env.start_daemon()
        env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                    and x["args"].get("cause") == "connected"), 15, "connection")
        say("feeding a 1000 Hz tone into the test microphone")
        env.play_tone(1000)
        say(f"bwcall dial {NUMBER}")
        path = env.dial(NUMBER)
        env.wait_state(path, "active", timeout=20)
        heard = env.events.wait_for(
            lambda it: [e for e in it if e.get("event") == "frequency" and e.get("dbfs", -100) > -50][-2:]
            if len([e for e in it if e.get("event") == "frequency" and e.get("dbfs", -100) > -50]) >= 2 else None,
            15, "audio at the far end")
        far_hz = heard[-1]["hz"]
        say(f"the far end hears our microphone at {far_hz:.0f} Hz ({heard[-1]['dbfs']:.1f} dBFS)")
        rec = env.record("test-sink", seconds=args.seconds)
        our_hz = rec[-1].get("dominant_hz")
        say(f"our speaker plays the far end at {our_hz} Hz")
        env.bwcall("hangup", path)
        env.wait_state(path, "terminated")
        env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE", 10, "BYE at the gateway")
        say("the gateway received our BYE")
        stop.set()
        verdict_ok = near(far_hz, 1000, 15) and near(our_hz, 880, 15)
    print()
    if verdict_ok:
        print(f"VERDICT: OK — two-way audio: far end heard {far_hz:.0f} Hz (sent 1000), we heard {our_hz} Hz (sent 880)")
        return 0
    print(f"VERDICT: FAILED — far end heard {far_hz} Hz (want 1000), we heard {our_hz} Hz (want 880)")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bwtest.TestFailure as e:
        print(f"\nVERDICT: FAILED — {e}")
        sys.exit(1)
