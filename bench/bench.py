#!/usr/bin/env python3
"""./do bench: call set-up speed and cost of bwcalld against bwgw-sim, on loopback.

Runs N calls (default 10) to +15550001001 (answers at once and echoes) and prints medians and
p95 of: Dial → INVITE on the wire, Dial → active, Dial → first audio heard at the far end,
CPU seconds per call-minute, bwcalld RSS idle and in a call, and start-up → READY.
The ratio column compares with the browser SDK measured against the same kind of gateway
(reference/gateway-protocol.md, "Later findings": makeCall → INVITE 147–168 ms because the SDK
waits for ICE gathering); "-" where the SDK has no comparable figure.

Timestamps: "Dial" is when the separate monitor client saw the call object appear
(InterfacesAdded), the INVITE time is the gateway's receive time, both CLOCK_REALTIME on the
same machine. Benchmarks print figures; no test asserts on them."""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import bwtest  # noqa: E402
from bwtest import first  # noqa: E402

NUMBER = "+15550001001"
SDK_INVITE_MS = (147 + 168) / 2  # browser SDK makeCall → INVITE, median of the measured range
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def p95(values):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))]


def one_call(env, hold_seconds):
    mon = env.monitor_lines
    before = len(mon.snapshot())
    ev_before = len(env.events.snapshot())
    path = env.dial(NUMBER)
    added = mon.wait_for(lambda it: first(it[before:], lambda x: x.get("signal") == "InterfacesAdded"
                                          and x["args"].get("object") == path), 10, "call object")
    t0 = added["time"]
    inv = env.events.wait_for(lambda it: first(it[ev_before:], lambda e: e.get("event") == "request"
                                               and e.get("method") == "INVITE"), 10, "INVITE")
    active = env.wait_state(path, "active")
    heard = env.events.wait_for(
        lambda it: first(it[ev_before:], lambda e: e.get("event") in ("first-audio", "media-first-audio")
                         or (e.get("event") == "frequency" and e.get("dbfs", -100) > -50)), 10, "far-end audio")
    cpu0, w0 = cpu_seconds(env.daemon.pid), time.monotonic()
    rss_call = rss_mib(env.daemon.pid)
    env.record("test-sink", seconds=hold_seconds)  # stay in the call with audio flowing both ways
    cpu1, w1 = cpu_seconds(env.daemon.pid), time.monotonic()
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")
    return {
        "invite_ms": (inv["time"] - t0) * 1000,
        "active_ms": (active["time"] - t0) * 1000,
        "far_audio_ms": (heard["time"] - t0) * 1000,
        "far_audio_granular": heard.get("event") == "frequency",
        "cpu_per_min": (cpu1 - cpu0) / (w1 - w0) * 60,
        "rss_call": rss_call,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=bwtest.BUILD)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--hold", type=int, default=3, help="seconds in each call")
    args = ap.parse_args()
    os.environ["BWCALL_BUILDDIR"] = args.build

    rows = []
    with bwtest.Env("bench") as env:
        env.harness()
        env.start_gateway()
        env.write_config()
        env.start_monitor(echo=False)
        env.play_tone(1000)
        startups = []
        for i in range(3):
            t = time.monotonic()
            env.start_daemon()
            startups.append((time.monotonic() - t) * 1000)
            if i < 2:
                env.stop(env.daemon)
        env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                    and x["args"].get("cause") == "connected"), 10, "connected")
        rss_idle = rss_mib(env.daemon.pid)
        for i in range(args.calls):
            r = one_call(env, args.hold)
            rows.append(r)
            print(f"call {i + 1:2d}: INVITE {r['invite_ms']:6.1f} ms, active {r['active_ms']:6.1f} ms, "
                  f"far-end audio {r['far_audio_ms']:7.1f} ms, {r['cpu_per_min']:.2f} CPU s/min", flush=True)

    def stat(key):
        v = [r[key] for r in rows]
        return statistics.median(v), p95(v)

    table = [
        ("Dial → INVITE on the wire", "ms", *stat("invite_ms"), SDK_INVITE_MS),
        ("Dial → active", "ms", *stat("active_ms"), None),
        ("Dial → first audio at far end" + (" (1 s blocks)" if rows[0]["far_audio_granular"] else ""), "ms",
         *stat("far_audio_ms"), None),
        ("CPU per call-minute", "s", *stat("cpu_per_min"), None),
        ("RSS in a call", "MiB", *stat("rss_call"), None),
        ("RSS idle", "MiB", rss_idle, rss_idle, None),
        ("start-up → READY", "ms", statistics.median(startups), p95(startups), None),
    ]
    print(f"\nbwcalld on loopback, {len(rows)} calls to {NUMBER}\n")
    print(f"{'metric':<42} {'unit':>4} {'median':>9} {'p95':>9} {'SDK':>8} {'SDK/bwcalld':>12}")
    print("-" * 90)
    for name, unit, med, p, sdk in table:
        ratio = f"{sdk / med:11.1f}x" if sdk and med > 0 else f"{'-':>12}"
        sdk_s = f"{sdk:8.0f}" if sdk else f"{'-':>8}"
        print(f"{name:<42} {unit:>4} {med:9.1f} {p:9.1f} {sdk_s} {ratio}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bwtest.TestFailure as e:
        print(f"bench failed: {e}")
        sys.exit(1)
