#!/usr/bin/env python3
"""Incoming calls, several calls at once and blind transfer, with real media.
The gateway (bwgw-sim) calls us through its control endpoint.

Usage: test_incoming.py CASE."""
import json

import bwtest
from bwtest import check, first, near
from test_control import active_call, bring_up, call_n, events_len, monitor_len

CALLER = "+15557770001"


def incoming(env, **params):
    mmark = monitor_len(env)
    r = env.control("call", to=bwtest.CALLER_ID, **{"from": CALLER}, **params)
    sig = env.wait_signal("IncomingCall", after=mmark)
    check(sig["args"]["from"] == CALLER, f"IncomingCall from {CALLER}: {sig['args']}")
    path = sig["args"]["call"]
    env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 180
                   and e.get("call_id") == r["call_id"], 10, "180 Ringing at the gateway")
    return path, r["call_id"]


def case_answer(env):
    bring_up(env)
    path, cid = incoming(env)
    check(env.call_property(path, "State") == "incoming" and env.call_property(path, "Direction") == "incoming",
          "the call object is an incoming call in state incoming")
    mark = events_len(env)
    env.bwcall("answer", call_n(path))
    env.wait_state(path, "active")
    env.heard(1000, after=mark)
    rec = env.record("test-sink", seconds=2)
    check(near(rec[-1]["dominant_hz"], 880, 15), f"we hear the caller: {rec[-1]}")
    env.bwcall("hangup", call_n(path))
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE" and e.get("call_id") == cid,
                   10, "our BYE at the gateway")


def case_reject(env):
    bring_up(env)
    path, cid = incoming(env)
    env.bwcall("reject", call_n(path), "--code", "603")
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Rejected", f"cause Rejected: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 603
                   and e.get("call_id") == cid, 10, "603 at the gateway")


def case_redirect(env):
    bring_up(env)
    path, cid = incoming(env)
    env.bwcall("redirect", call_n(path), "+15550001001")
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Redirected", f"cause Redirected: {sc['args']}")
    resp = env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 302
                          and e.get("call_id") == cid, 10, "302 at the gateway")
    check("+15550001001@" in resp.get("contact", ""), f"302 Contact names the target: {resp.get('contact')}")


def case_not_ours(env):
    bring_up(env)
    mmark = monitor_len(env)
    r = env.control("call", to="+19999999999", **{"from": CALLER})
    env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 404
                   and e.get("call_id") == r["call_id"], 10, "404 for a number that is not ours")
    check(not first(env.monitor_lines.snapshot()[mmark:], lambda x: x.get("signal") == "CallAdded"),
          "no call object for somebody else's call")


def case_timeout(env):
    bring_up(env, extra_config="IncomingTimeoutMSec=1500\n")
    path, cid = incoming(env)
    sc = env.wait_state(path, "terminated", timeout=10)
    check(sc["args"]["cause"] == "No Answer", f"cause No Answer: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 408
                   and e.get("call_id") == cid, 10, "408 at the gateway")


def case_cancel(env):
    bring_up(env)
    path, cid = incoming(env)
    env.control("cancel", call_id=cid)
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Canceled", f"cause Canceled: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 487
                   and e.get("call_id") == cid, 10, "487 at the gateway")


def case_waiting(env):
    bring_up(env)
    first_call = active_call(env)
    second, cid = incoming(env)
    # Hold the first, answer the second, then swap back.
    env.bwcall("hold", call_n(first_call))
    env.wait_state(first_call, "held")
    env.bwcall("answer", call_n(second))
    env.wait_state(second, "active")
    env.bwcall("hold", call_n(second))
    env.wait_state(second, "held")
    env.bwcall("resume", call_n(first_call))
    env.wait_state(first_call, "active")
    r = env.bwcall("calls", "--json")
    states = {c["path"]: c["State"] for c in json.loads(r.stdout)["calls"]}
    check(states == {first_call: "active", second: "held"}, f"two calls, one held: {states}")
    env.bwcall("hangup-all")
    env.wait_state(first_call, "terminated")
    env.wait_state(second, "terminated")


def case_transfer(env):
    bring_up(env)
    path = active_call(env)
    r = env.bwcall("transfer", call_n(path), "+15550000486", check=False)
    check(r.returncode == 1 and "486" in r.stderr, f"a busy target: error and the call stays ({r.stderr.strip()})")
    check(env.call_property(path, "State") == "active", "call still active after a failed transfer")
    env.bwcall("transfer", call_n(path), "+15550001001")
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Transferred", f"cause Transferred: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "REFER", 5, "REFER at the gateway")


def case_refer_in(env):
    bring_up(env)
    path = active_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    mmark = monitor_len(env)
    env.control("refer", call_id=cid, target="+15550009999")
    env.wait_signal("TransferRequested", path=path, after=mmark, target="+15550009999")
    notify = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "NOTIFY", 10,
                            "NOTIFY from us")
    check("603" in notify.get("body", ""), f"we decline in the sipfrag like the SDK: {notify.get('body')!r}")
    check(env.call_property(path, "State") == "active", "the call stays up")


def case_no_ack(env):
    bring_up(env)
    path, cid = incoming(env, ack="0")
    # The gateway never ACKs: after 32 s (64·T1) we give up with BYE, and Answer() says so.
    r = env.bwcall("answer", call_n(path), "--timeout", "60", check=False, timeout=70)
    check(r.returncode == 1, f"Answer reports the missing ACK: {r.stderr.strip()}")
    sc = env.wait_state(path, "terminated", timeout=5)
    check(sc["args"]["cause"] == "No ACK", f"cause No ACK: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE" and e.get("call_id") == cid,
                   10, "our BYE after giving up")


CASES = {"answer": case_answer, "no-ack": case_no_ack, "reject": case_reject, "redirect": case_redirect, "not-ours": case_not_ours,
         "timeout": case_timeout, "cancel": case_cancel, "waiting": case_waiting, "transfer": case_transfer,
         "refer-in": case_refer_in}

if __name__ == "__main__":
    bwtest.run_cases(CASES)
