#!/usr/bin/env python3
"""Call control with real media (issue: everything the SDK's Session does): early media, mute,
hold/resume (local and remote), DTMF both ways, G.711 answers, more termination causes, and
wrong-state errors. States and signals are observed by the separate `bwcall monitor` client;
what the far end hears is bwgw-sim's per-second frequency report.

Usage: test_control.py CASE."""
import json

import bwtest
from bwtest import check, first, near

TONE = "+15550001000"


def bring_up(env, extra_config=""):
    env.harness()
    env.start_gateway()
    env.write_config(extra=extra_config)
    env.start_monitor()
    env.start_daemon()
    env.wait_signal("LoginStateChanged", cause="connected")
    env.play_tone(1000)


def active_call(env, number=TONE, *dial_args):
    r = env.bwcall("dial", "--no-wait", *dial_args, number)
    path = r.stdout.strip().split()[-1]
    env.wait_state(path, "active")
    return path


def call_n(path):
    return path.rsplit("/", 1)[1]


def events_len(env):
    return len(env.events.snapshot())


def monitor_len(env):
    return len(env.monitor_lines.snapshot())


def case_early_media(env):
    bring_up(env)
    path = env.dial("+15550001003")
    env.wait_state(path, "early-media")
    rec = env.record("test-sink", seconds=1)
    check(near(rec[-1]["dominant_hz"], 880, 15), f"early media plays before the answer: {rec[-1]}")
    env.wait_state(path, "active")
    seen = env.states_seen(path)
    check(seen == ["dialing", "early-media", "active"], f"states: {seen}")
    env.heard(1000)


def case_mute(env):
    bring_up(env)
    path = active_call(env)
    env.heard(1000)
    mark = events_len(env)
    env.bwcall("mute", call_n(path))
    env.wait_signal("PropertiesChanged", path=path)
    check(env.call_property(path, "Muted") is True, "Muted is true")
    env.heard_silence(after=mark, blocks=2)
    check(not [e for e in env.events.snapshot()[mark + 1:] if e.get("event") == "request"],
          "mute sends nothing over SIP")
    mark = events_len(env)
    env.bwcall("unmute", call_n(path))
    env.heard(1000, after=mark)
    check(env.call_property(path, "Muted") is False, "Muted is false again")


def case_hold(env):
    bring_up(env)
    path = active_call(env)
    env.heard(1000)
    mark, mmark = events_len(env), monitor_len(env)
    env.bwcall("hold", call_n(path))
    inv = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "INVITE"
                         and e.get("direction") == "sendonly", 10, "re-INVITE with a=sendonly", after=mark)
    hdr = dict(inv["headers"])
    check("Authorization" not in hdr, "the re-INVITE carries no Authorization")
    env.wait_signal("HoldStateChanged", path=path, after=mmark, is_hold=True, is_remote=False)
    env.wait_state(path, "held")
    check(env.call_property(path, "LocalHold") is True, "LocalHold is true")
    env.heard_silence(after=mark, blocks=2)
    mark, mmark = events_len(env), monitor_len(env)
    env.bwcall("resume", call_n(path))
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "INVITE"
                   and e.get("direction") == "sendrecv", 10, "re-INVITE with a=sendrecv", after=mark)
    env.wait_signal("HoldStateChanged", path=path, after=mmark, is_hold=False, is_remote=False)
    env.wait_state(path, "active")
    env.heard(1000, after=mark)


def case_hold_491(env):
    bring_up(env)
    path = active_call(env, "+15550001007")
    mark = events_len(env)
    r = env.bwcall("hold", call_n(path), check=False)
    check(r.returncode == 0, f"hold succeeds after one 491 retry ({r.stderr.strip()})")

    def reinvites(items):
        got = [e for e in items[mark:] if e.get("event") == "request" and e.get("method") == "INVITE"]
        return got if len(got) >= 2 else None
    got = env.events.wait_for(reinvites, 5, "two re-INVITEs at the gateway")
    check(got[1]["time"] - got[0]["time"] >= 0.9, f"retried after ~1 s ({got[1]['time'] - got[0]['time']:.2f} s)")
    env.wait_state(path, "held")


def case_hold_refused(env):
    bring_up(env)
    path = active_call(env, "+15550001008")
    env.heard(1000)
    r = env.bwcall("hold", call_n(path), check=False)
    check(r.returncode == 1 and "488" in r.stderr, f"refused hold reported to the caller: {r.stderr.strip()}")
    mark = events_len(env)
    r = env.bwcall("calls", "--json")
    state = [c for c in json.loads(r.stdout)["calls"] if c["path"] == path][0]
    check(state["State"] == "active" and state["LocalHold"] is False, f"the call stays up and active: {state['State']}")
    env.heard(1000, after=mark)


def case_remote_hold(env):
    bring_up(env)
    path = active_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    mmark = monitor_len(env)
    r = env.control("hold", call_id=cid)
    check(r.get("ok"), f"gateway holds the call: {r}")
    env.wait_signal("HoldStateChanged", path=path, after=mmark, is_hold=True, is_remote=True)
    env.wait_state(path, "held")
    check(env.call_property(path, "RemoteHold") is True, "RemoteHold is true")
    resp = env.wait_event(lambda e: e.get("event") == "response-received" and e.get("status") == 200
                          and e.get("method") == "INVITE", 10, "our 200 to the hold re-INVITE")
    check("recvonly" in resp.get("body", "recvonly"), "we answer a=recvonly to a=sendonly")
    mmark = monitor_len(env)
    env.control("resume", call_id=cid)
    env.wait_signal("HoldStateChanged", path=path, after=mmark, is_hold=False, is_remote=True)
    env.wait_state(path, "active")


def case_dtmf_rfc4733(env):
    bring_up(env)
    path = active_call(env)
    mark = events_len(env)
    env.bwcall("dtmf", call_n(path), "123#*,a")

    def digits(items):
        got = [e for e in items[mark:] if e.get("event") == "dtmf"]
        return got if len(got) >= 6 else None
    got = env.events.wait_for(digits, 20, "six digits at the gateway")
    check("".join(e["digit"] for e in got) == "123#*A", f"digits in order: {[e['digit'] for e in got]}")
    check(all(e["method"] == "rfc4733" for e in got), "sent as RFC 4733 telephone-events")
    gap = got[5]["time"] - got[4]["time"]
    check(gap > 1.8, f"',' paused about 2 s ({gap:.2f} s)")
    env.heard(1000, after=events_len(env) - 1)  # audio flows again after the tones


def case_dtmf_info(env):
    bring_up(env)
    path = active_call(env, TONE, "--dtmf-method", "info")
    mark = events_len(env)
    env.bwcall("dtmf", call_n(path), "9#")
    got = env.events.wait_for(lambda it: [e for e in it[mark:] if e.get("event") == "dtmf"][1:] and
                              [e for e in it[mark:] if e.get("event") == "dtmf"], 10, "two INFO digits")
    check([e["digit"] for e in got] == ["9", "#"] and all(e["method"] == "info" for e in got),
          f"INFO dtmf-relay digits: {[(e['digit'], e['method']) for e in got]}")
    info = first(env.events.snapshot()[mark:], lambda e: e.get("event") == "request" and e.get("method") == "INFO")
    check(info["body"] == "Signal=9\r\nDuration=250", f"INFO body as the SDK: {info['body']!r}")


def case_dtmf_received(env):
    bring_up(env)
    path = active_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    env.wait_event(lambda e: e.get("event") == "media-connected" and e.get("call_id") == cid, 10, "media up")
    mmark = monitor_len(env)
    env.control("dtmf", call_id=cid, digits="7", method="rfc4733")
    env.wait_signal("DtmfReceived", path=path, after=mmark, digit="7")
    env.control("dtmf", call_id=cid, digits="*", method="info")
    env.wait_signal("DtmfReceived", path=path, after=mmark, digit="*")


def case_codecs(env):
    bring_up(env)
    for number, codec in (("+15550001005", "PCMU"), ("+15550001006", "PCMA")):
        mark = events_len(env)
        path = active_call(env, number)
        env.heard(1000, after=mark)
        rec = env.record("test-sink", seconds=2)
        check(near(rec[-1]["dominant_hz"], 880, 15), f"{codec} answer: we hear the far end ({rec[-1]})")
        env.bwcall("hangup", call_n(path))
        env.wait_state(path, "terminated")


def case_causes(env):
    bring_up(env)
    for number, cause, code in (("+15550000484", "Address Incomplete", 484),
                                ("+15550000488", "Incompatible SDP", 488),
                                ("+15550000404", "Not Found", 404),
                                ("+15550000480", "Unavailable", 480),
                                ("+15550000603", "Rejected", 603),
                                ("+15550000503", "SIP Failure Code", 503),
                                ("+15550001010", "Redirected", 302)):
        path = env.dial(number)
        sc = env.wait_state(path, "terminated")
        check(sc["args"]["cause"] == cause and env.call_property(path, "SipCode") == code,
              f"{number}: cause {sc['args']['cause']!r} SipCode {code}")


def bye_reason(env, path_number, after):
    bye = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE"
                         and e.get("number") == path_number, 30, f"our BYE to {path_number}", after=after)
    return dict(bye["headers"]).get("Reason")


def case_bad_media(env):
    bring_up(env)
    for number, reason in (("+15550001011", 'SIP ;cause=400; text="Missing SDP"'),
                           ("+15550001012", 'SIP ;cause=488; text="Not Acceptable Here"')):
        mark = events_len(env)
        path = env.dial(number)
        sc = env.wait_state(path, "terminated")
        check(sc["args"]["cause"] == "Bad Media Description", f"{number}: cause {sc['args']['cause']!r}")
        env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "ACK" and e.get("number") == number,
                       10, "the 200 was ACKed first", after=mark)
        got = bye_reason(env, number, mark)
        check(got == reason, f"{number}: BYE with Reason {got!r}")


def case_rtp_timeout(env):
    env.expect_media_loss = True
    bring_up(env, extra_config="RtpTimeoutMSec=3000\n")
    path = active_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    env.wait_event(lambda e: e.get("event") == "media-connected" and e.get("call_id") == cid, 10, "media up")
    # A healthy call outlives the watchdog many times over (the watchdog must see RTP arrive).
    rec = env.record("test-sink", seconds=7)
    check(env.call_property(path, "State") == "active" and near(rec[-1]["dominant_hz"], 880, 15),
          "a call with audio flowing stays up past twice the RTP timeout")
    mark = events_len(env)
    env.control("media-stop", call_id=cid)
    sc = env.wait_state(path, "terminated", timeout=40)
    check(sc["args"]["cause"] == "RTP Timeout", f"losing the far end's media ends the call with RTP Timeout: {sc['args']}")
    got = bye_reason(env, TONE, mark)
    check(got == 'SIP ;cause=408; text="RTP Timeout"', f"BYE Reason as the SDK: {got!r}")


def case_wrong_state(env):
    bring_up(env)
    path = env.dial("+15550001002")
    env.wait_state(path, "ringing")
    for verb in (["hold", call_n(path)], ["dtmf", call_n(path), "1"], ["answer", call_n(path)],
                 ["transfer", call_n(path), "+15550001001"]):
        r = env.bwcall(*verb, "--json", check=False)
        check(r.returncode == 1 and "InvalidState" in r.stdout, f"{verb[0]} on a ringing outgoing call: "
              f"InvalidState ({r.stderr.strip()})")
    env.bwcall("hangup", call_n(path))
    path = active_call(env)
    r = env.bwcall("dtmf", call_n(path), "12x", "--json", check=False)
    check(r.returncode == 1 and "InvalidDtmf" in r.stdout, f"invalid DTMF: {r.stderr.strip()}")
    r = env.bwcall("reject", call_n(path), "--json", check=False)
    check(r.returncode == 1 and "InvalidState" in r.stdout, f"reject on an active call: {r.stderr.strip()}")


CASES = {"early-media": case_early_media, "mute": case_mute, "hold": case_hold, "hold-491": case_hold_491,
         "hold-refused": case_hold_refused, "remote-hold": case_remote_hold, "dtmf-rfc4733": case_dtmf_rfc4733,
         "dtmf-info": case_dtmf_info, "dtmf-received": case_dtmf_received, "codecs": case_codecs,
         "causes": case_causes, "wrong-state": case_wrong_state, "bad-media": case_bad_media,
         "rtp-timeout": case_rtp_timeout}

if __name__ == "__main__":
    bwtest.run_cases(CASES)
