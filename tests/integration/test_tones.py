#!/usr/bin/env python3
"""Local tones (issue 7): ringback, the ring on the ringer device, the call-waiting beep; each
heard on the right virtual speaker's monitor and nowhere else.

Usage: test_tones.py CASE, CASE one of: ringback, ring, call-waiting, dtmf-feedback."""
import bwtest
from bwtest import check, near
from test_control import active_call, bring_up, call_n, monitor_len
from test_incoming import incoming

RINGS_FOREVER = "+15550001002"
EARLY_MEDIA = "+15550001003"
SILENT_FAR_END = "+15550001009"
# The tones' frequencies: ringback and ring are 440+480 Hz, call waiting 440 Hz.
TONE_HZ = (440, 480)


def is_tone(block):
    return any(near(block.get("hz"), hz, 8) for hz in TONE_HZ) and (block.get("dbfs") or -99) > -40


def seconds(rec):
    return [b for b in rec if "second" in b]


def case_ringback(env):
    """Ringback while the far end rings without early media; gone at the CANCEL; none when the far
    end sends early media (we hear theirs)."""
    bring_up(env)
    r = env.bwcall("dial", "--no-wait", RINGS_FOREVER)
    path = r.stdout.strip().split()[-1]
    env.wait_state(path, "ringing")
    rec = env.record("test-sink", seconds=2)
    check(is_tone(seconds(rec)[0]), f"ringback (440+480 Hz) on the call's speaker while ringing: {rec}")
    check(all(not is_tone(b) for b in seconds(env.record("test-sink2", seconds=1))), "and not on another speaker")
    env.bwcall("hangup", call_n(path))
    env.wait_state(path, "terminated")
    rec = env.record("test-sink", seconds=1)
    check(all((b.get("dbfs") or -99) < -50 for b in seconds(rec)), f"silence once the call is cancelled: {rec}")

    r = env.bwcall("dial", "--no-wait", EARLY_MEDIA)
    path = r.stdout.strip().split()[-1]
    env.wait_state(path, "early-media")
    rec = env.record("test-sink", seconds=1)
    check(near(rec[-1].get("dominant_hz"), 880, 15), f"early media is the far end's 880 Hz, no ringback: {rec}")
    env.wait_state(path, "active")
    env.bwcall("hangup", call_n(path))
    env.wait_state(path, "terminated")


def case_ring(env):
    """An incoming call rings on the ringer (test-sink2), not on the call speaker (test-sink);
    answering stops it."""
    bring_up(env, extra_config="[Media]\nRinger=test-sink2\n")
    path, cid = incoming(env)
    rec = env.record("test-sink2", seconds=3)
    check(any(is_tone(b) for b in seconds(rec)), f"the ring on the ringer speaker: {rec}")
    rec = env.record("test-sink", seconds=1)
    check(all((b.get("dbfs") or -99) < -50 for b in seconds(rec)), f"nothing on the call speaker: {rec}")
    env.bwcall("answer", call_n(path))
    env.wait_state(path, "active")
    rec = env.record("test-sink2", seconds=3)
    check(all((b.get("dbfs") or -99) < -50 for b in seconds(rec)), f"the ring stops when answered: {rec}")
    env.bwcall("hangup", call_n(path))
    env.wait_state(path, "terminated")


def case_call_waiting(env):
    """A second incoming call during a call: a 440 Hz beep on the call's speaker, no ring."""
    bring_up(env, extra_config="[Media]\nRinger=test-sink2\n")
    first_call = active_call(env)
    env.bwcall("hold", call_n(first_call))  # the far end's 880 Hz stops: the beep stands alone
    env.wait_state(first_call, "held")
    speaker = env.start_record("test-sink", seconds=2)
    ringer = env.start_record("test-sink2", seconds=2)
    second, cid = incoming(env)
    rec = env.finish_record(speaker, seconds=2)
    check(any(near(b.get("hz"), 440, 8) and b.get("dbfs", -99) > -45 for b in seconds(rec)),
          f"the call-waiting beep (440 Hz) on the call's speaker: {rec}")
    rec = env.finish_record(ringer, seconds=2)
    check(all((b.get("dbfs") or -99) < -50 for b in seconds(rec)), f"no ring on the ringer during a call: {rec}")
    env.bwcall("hangup-all")
    env.wait_state(first_call, "terminated")
    env.wait_state(second, "terminated")


def case_dtmf_feedback(env):
    """The digits we send are heard quietly on our speaker (here from a far end that sends no
    audio, so nothing else plays there)."""
    bring_up(env)
    path = active_call(env, SILENT_FAR_END)
    speaker = env.start_record("test-sink", seconds=2)
    env.bwcall("dtmf", call_n(path), "555")
    rec = seconds(env.finish_record(speaker, seconds=2))
    check(any(near(b.get("hz"), 770, 10) or near(b.get("hz"), 1336, 10) for b in rec)
          and max(b.get("dbfs", -99) for b in rec) > -45, f"the digit 5 (770+1336 Hz) on our speaker: {rec}")
    env.wait_event(lambda e: e.get("event") == "dtmf" and e.get("digit") == "5", 10, "the far end got the digit")
    env.bwcall("hangup", call_n(path))
    env.wait_state(path, "terminated")


bwtest.run_cases({"ringback": case_ringback, "ring": case_ring, "call-waiting": case_call_waiting,
                  "dtmf-feedback": case_dtmf_feedback})
