#!/usr/bin/env python3
"""./do bench latency: which jitter-buffer latency ([Media] LatencyMSec) plays the far end's
audio without gaps on loopback.

For each latency, one call to +15550001000 (880 Hz); over --seconds (default 20) after 3 s of
warm-up, the call's Stats: speaker-underruns (the speaker ran dry: an audible gap) and
speaker-dropped-samples (delay trimmed away). The ratio column compares the underruns with those at 200 ms, GStreamer's
default (platform-notes §1). Benchmarks print figures; no test asserts on them."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import bwtest  # noqa: E402

NUMBER = "+15550001000"
WARMUP_SECONDS = 3


def one(env, latency, seconds):
    env.restart_daemon(extra=f"[Media]\nLatencyMSec={latency}\n")
    path = env.dial(NUMBER)
    env.wait_state(path, "active")

    def after(n):
        start = len(env.events.snapshot())
        env.events.wait_for(lambda items: len([e for e in items[start:] if e.get("event") == "frequency"]) >= n,
                            n + 10, f"{n} s of call")
        r = env.bwcall("calls", "--json", "--stats")
        stats = next(c for c in json.loads(r.stdout)["calls"] if c["path"] == path).get("Stats", {})
        return stats.get("speaker-underruns", 0), stats.get("speaker-dropped-samples", 0)

    # The first seconds hold the start-up (audio queued before PipeWire linked the speaker):
    # counted from WARMUP_SECONDS on.
    u0, d0 = after(WARMUP_SECONDS)
    u1, d1 = after(seconds)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")
    return u1 - u0, d1 - d0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=bwtest.BUILD)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--latencies", default="20,40,80,200")
    args = ap.parse_args()
    os.environ["BWCALL_BUILDDIR"] = args.build
    latencies = [int(x) for x in args.latencies.split(",")]
    rows = []
    with bwtest.Env("bench-latency") as env:
        env.harness()
        env.start_gateway()
        env.write_config()
        env.start_monitor(echo=False)
        env.daemon = None
        env.play_tone(1000)
        for latency in latencies:
            rows.append((latency, *one(env, latency, args.seconds)))
    base = next((r[1] for r in rows if r[0] == 200), None)
    print(f"\n{'LatencyMSec':>11} {'underruns':>10} {'per minute':>11} {'dropped ms':>11} {'ratio vs 200':>13}")
    for latency, underruns, dropped in rows:
        per_min = underruns * 60 / args.seconds
        ratio = "-" if not base else f"{underruns / base:.2f}"
        print(f"{latency:>11} {underruns:>10} {per_min:>11.1f} {dropped / 48:>11.1f} {ratio:>13}")


if __name__ == "__main__":
    main()
