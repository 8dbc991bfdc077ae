#!/usr/bin/env python3
"""Real calls through bwgw-sim: bwcalld + private D-Bus + PipeWire + webrtcbin on both ends.

Usage: test_call.py CASE, CASE one of: tone, busy, cancel, remote-bye, bad-token.
States are observed by `bwcall monitor --json`, a separate D-Bus client process."""
import base64
import json
import time

import bwtest
from bwtest import check, first, near

TONE_NUMBER = "+15550001000"
# SDK header order of the initial INVITE (reference/gateway-protocol.md §3).
SDK_INVITE_ORDER = ["Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Authorization", "Contact",
                    "Content-Type", "Allow", "Supported", "User-Agent", "Content-Length"]


def bring_up(env, token_mode="client-credentials"):
    env.harness()
    env.start_gateway()
    env.write_config(token_mode=token_mode)
    env.start_monitor()
    env.start_daemon()
    if token_mode == "client-credentials":
        # Ready means connected: the daemon connects at start-up.
        env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                    and x["args"].get("cause") == "connected"),
                                   10, "LoginStateChanged(false, connected)")


def invite_event(env, number):
    return env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "INVITE"
                          and e.get("number") == number, 15, f"INVITE to {number} at the gateway")


def check_invite_layout(inv):
    names = [h[0] for h in inv["headers"]]
    check(names == SDK_INVITE_ORDER, f"INVITE headers in the SDK's order: {names}")
    hdr = {h[0]: h[1] for h in inv["headers"]}
    # bwgw-sim never writes a token to its events; it names the token it verified by its jti.
    check(hdr["Authorization"].startswith("Bearer ") and inv.get("token_jti"),
          f"INVITE carries Authorization: Bearer <the JWT minted as jti {inv.get('token_jti')}>")
    check(hdr["Contact"].endswith(".invalid;transport=ws;ob>"), f"Contact is .invalid with ;ob: {hdr['Contact']}")
    check(hdr["Max-Forwards"] == "69" and hdr["User-Agent"] == "JsSIP 3.10.0", "Max-Forwards 69, JsSIP UA")
    check(hdr["Supported"] == "ice,replaces,outbound", "Supported: ice,replaces,outbound")
    check(hdr["Via"].startswith("SIP/2.0/WSS ") and ";branch=z9hG4bK" in hdr["Via"], f"Via WSS: {hdr['Via']}")
    check(f"<sip:{bwtest.CALLER_ID}@gw.webrtc-app.bandwidth.com>;tag=" in hdr["From"],
          f"From has our caller id and a tag: {hdr['From']}")
    check(inv.get("authorized") is True, "the gateway accepted the token it minted")


def case_tone(env):
    bring_up(env)
    env.play_tone(1000)
    path = env.dial(TONE_NUMBER)
    inv = invite_event(env, TONE_NUMBER)
    check_invite_layout(inv)
    env.wait_state(path, "ringing")
    env.wait_state(path, "active")

    # The far end hears our microphone: 1 kHz for at least two consecutive seconds.
    def heard_1k(items):
        hz = [e for e in items if e.get("event") == "frequency" and near(e.get("hz"), 1000, 15)]
        return hz if len(hz) >= 2 else None
    heard = env.events.wait_for(heard_1k, 15, "the gateway to hear 1000 Hz from our microphone")
    check(True, f"gateway heard {heard[-1]['hz']:.0f} Hz at {heard[-1]['dbfs']:.1f} dBFS")

    # We hear the far end: 880 Hz on the test speaker's monitor.
    rec = env.record("test-sink", seconds=3)
    dominant = rec[-1].get("dominant_hz")
    check(near(dominant, 880, 15), f"test speaker played {dominant} Hz from the far end (want 880)")

    env.bwcall("hangup", path.rsplit("/", 1)[1])
    env.wait_state(path, "terminated")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE", 10, "BYE at the gateway")
    seen = env.states_seen(path)
    check(seen == ["dialing", "ringing", "active", "terminated"], f"states in order: {seen}")
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Terminated", f"cause Terminated: {sc['args']}")
    env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "CallRemoved"), 10,
                               "CallRemoved after the linger time")


def case_busy(env):
    bring_up(env)
    path = env.dial("+15550000486")
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Busy", f"cause Busy: {sc['args']}")
    check(env.call_property(path, "SipCode") == 486, "SipCode 486")
    check(env.call_property(path, "Cause") == "Busy", "Cause property Busy")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "ACK", 10,
                   "ACK for the 486 at the gateway")


def case_cancel(env):
    bring_up(env)
    path = env.dial("+15550001002")
    env.wait_state(path, "ringing")
    env.bwcall("hangup", path)
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Canceled", f"cause Canceled: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "CANCEL", 10, "CANCEL at the gateway")
    env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "ACK", 10,
                   "ACK for the 487 at the gateway")


def case_remote_bye(env):
    bring_up(env)
    path = env.dial("+15550001004")
    env.wait_state(path, "active")
    sc = env.wait_state(path, "terminated", timeout=20)
    check(sc["args"]["cause"] == "Terminated", f"remote BYE ends the call with cause Terminated: {sc['args']}")
    env.wait_event(lambda e: e.get("event") == "call-ended" and e.get("cause") == "bye-from-gateway", 10,
                   "the gateway ended the call with its BYE")


def forged_jwt():
    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return ".".join([b64({"alg": "HS256", "typ": "JWT"}),
                     b64({"iss": "somebody-else", "exp": int(time.time()) + 3600, "jti": "forged"}),
                     "c2lnbmF0dXJl"])


def case_bad_token(env):
    bring_up(env, token_mode="external")
    env.bwcall("token", "set", "-", input=forged_jwt())
    path = env.dial(TONE_NUMBER)
    sc = env.wait_state(path, "terminated")
    check(sc["args"]["cause"] == "Authentication Error", f"cause Authentication Error: {sc['args']}")
    check(env.call_property(path, "SipCode") == 401, "SipCode 401")
    inv = invite_event(env, TONE_NUMBER)
    check(inv.get("authorized") is False, f"the gateway refused the token: {inv.get('auth_error')}")


CASES = {"tone": case_tone, "busy": case_busy, "cancel": case_cancel, "remote-bye": case_remote_bye,
         "bad-token": case_bad_token}


if __name__ == "__main__":
    bwtest.run_cases(CASES)
