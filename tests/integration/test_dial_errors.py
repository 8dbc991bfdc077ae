#!/usr/bin/env python3
"""Dial() with bad input and in bad conditions: clear errors, and the daemon keeps serving.

Usage: test_dial_errors.py CASE, CASE one of: invalid-number, not-connected, connect-first."""
import json
import os
import socket
import subprocess

import bwtest
from bwtest import check, first


def gdbus(env, method, *args):
    """A second, independent D-Bus client (GLib's gdbus) so errors are checked by their names."""
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.bwcall.Phone1", "--object-path",
                           "/org/bwcall/Phone1", "--method", method, *args],
                          env=env.env, capture_output=True, text=True, timeout=30)


def still_serving(env):
    r = env.bwcall("status", "--json")
    check(r.returncode == 0 and env.daemon.poll() is None, "daemon still serving after bad input")


def case_invalid_number(env):
    env.harness()
    env.start_gateway()
    env.write_config()
    env.start_daemon()
    for bad in ["", "abc", "1" * 40, "+1555abc0000", "+", "12;x=y", "+1 (555) 000\n1000"]:
        r = env.bwcall("dial", "--no-wait", "--json", bad, check=False)
        check(r.returncode == 1, f"dial {bad!r} fails with exit code 1 (got {r.returncode})")
        check("org.bwcall.Phone1.Error.InvalidNumber" in r.stdout and r.stderr.strip(),
              f"dial {bad!r}: InvalidNumber with a message: {r.stderr.strip()}")
    r = gdbus(env, "org.bwcall.Phone1.Dial", "letters", "{}")
    check("org.bwcall.Phone1.Error.InvalidNumber" in r.stderr, f"gdbus Dial('letters'): {r.stderr.strip()}")
    # Wrong argument types are refused by the bus layer with InvalidArgs.
    r = gdbus(env, "org.bwcall.Phone1.Dial", "5")
    check(r.returncode != 0 and "InvalidArgs" in r.stderr, f"Dial(int32) → InvalidArgs: {r.stderr.strip()}")
    r = subprocess.run(["busctl", "--user", "call", "org.bwcall.Phone1", "/org/bwcall/Phone1", "org.bwcall.Phone1",
                        "Dial", "sa{sv}", "+15550001000", "1", "bogus", "s", "x"],
                       env=env.env, capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "Unknown Dial option" in r.stderr, f"unknown Dial option refused: {r.stderr.strip()}")
    r = gdbus(env, "org.bwcall.Phone1.SetOAuthToken", "not-a-jwt")
    check(r.returncode != 0 and "not a JWT" in r.stderr, f"SetOAuthToken('not-a-jwt') refused: {r.stderr.strip()}")
    still_serving(env)


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here any more
    return port


def case_not_connected(env):
    env.harness()
    env.start_gateway()
    env.write_config(server=f"ws://127.0.0.1:{dead_port()}/")
    env.start_monitor()
    env.start_daemon()
    r = env.bwcall("dial", "--no-wait", "--json", "+15550001000", check=False)
    check(r.returncode == 1 and "org.bwcall.Phone1.Error.NotConnected" in r.stdout,
          f"Dial with the gateway unreachable → NotConnected: {r.stderr.strip()}")
    env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                and x["args"].get("cause") == "disconnected"),
                               10, "LoginStateChanged(false, disconnected)")
    r = env.bwcall("status", "--json")
    check(json.loads(r.stdout)["State"] == "reconnecting", f"State reconnecting: {r.stdout.strip()}")
    # It keeps trying in the background with the SDK's back-off (2 s, then 2–4 s, ...): after the
    # start-up attempt and the one the Dial made at once, the next comes only after a back-off.
    def attempts(items):
        got = [x for x in items if x.get("signal") == "LoginStateChanged" and x["args"].get("cause") == "disconnected"]
        return got if len(got) >= 3 else None
    got = env.monitor_lines.wait_for(attempts, 15, "a third connection attempt in the background")
    gap = got[2]["time"] - got[1]["time"]
    check(1.5 <= gap <= 9, f"retried after a back-off of {gap:.1f} s")
    still_serving(env)


def case_connect_first(env):
    env.harness()
    env.start_gateway()
    env.write_config()
    env.start_monitor()
    env.start_daemon("--no-auto-connect")
    r = env.bwcall("status", "--json")
    check('"idle"' in r.stdout, f"not connected before the first Dial: {r.stdout.strip()}")
    path = env.dial("+15550001001")
    env.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                and x["args"].get("cause") == "connected"),
                               10, "Dial connects first")
    env.wait_state(path, "active")
    env.bwcall("hangup")
    env.wait_state(path, "terminated")
    still_serving(env)


CASES = {"invalid-number": case_invalid_number, "not-connected": case_not_connected,
         "connect-first": case_connect_first}


if __name__ == "__main__":
    bwtest.run_cases(CASES)
