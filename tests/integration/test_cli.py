#!/usr/bin/env python3
"""The bwcall CLI as a user meets it: human output, exit codes and messages.

Usage: test_cli.py CASE, CASE one of: no-daemon, follow."""
import json

import bwtest
from bwtest import check


def case_no_daemon(env):
    env.harness()
    # (monitor is the exception: it waits for the daemon to appear, by design.)
    for verb in (["status"], ["calls"], ["dial", "+15550001000"], ["hangup"], ["connect"]):
        r = env.bwcall(*verb, check=False)
        check(r.returncode == 3 and "bwcalld is not running" in r.stderr,
              f"bwcall {verb[0]} without a daemon: exit 3 and says so ({r.returncode}, {r.stderr.strip()})")
    r = env.bwcall("status", "--json", check=False)
    err = json.loads(r.stdout)
    check(r.returncode == 3 and err.get("error") and err.get("message"), f"--json error object: {err}")
    r = env.bwcall("frobnicate", check=False)
    check(r.returncode == 2 and r.stderr.strip(), f"unknown verb: exit 2 with usage ({r.stderr.strip()[:60]}…)")
    r = env.bwcall("dial", check=False)
    check(r.returncode == 2, "dial without a number: exit 2")


def case_follow(env):
    env.harness()
    env.start_gateway()
    env.write_config()
    env.start_daemon()
    # Default dial follows the call until it is answered or fails, printing each state.
    r = env.bwcall("dial", "+15550000486", check=False)
    check(r.returncode == 1 and "Busy" in r.stderr and "486" in r.stderr,
          f"a busy number: exit 1 and 'Busy (SIP 486)' ({r.stderr.strip()})")
    r = env.bwcall("dial", "+15550001000", check=False)
    check(r.returncode == 0, f"dial until active: exit 0 ({r.stderr.strip()})")
    out = r.stdout
    check(out.index("dialing") < out.index("ringing") < out.index("active"),
          f"live states printed in order:\n{out.strip()}")
    r = env.bwcall("calls")
    check("active" in r.stdout and "+15550001000" in r.stdout, f"bwcall calls lists the active call:\n{r.stdout}")
    r = env.bwcall("mute")
    r = env.bwcall("calls", "--json")
    calls = [c for c in json.loads(r.stdout)["calls"] if c["State"] == "active"]
    check(len(calls) == 1 and calls[0]["Muted"] is True, "bwcall mute sets Muted on the only active call")
    r = env.bwcall("hangup")
    check(r.returncode == 0, "bwcall hangup with one call up picks it")
    r = env.bwcall("hangup", check=False)
    check(r.returncode == 1 and r.stderr.strip(), f"hangup with no call up: exit 1 ({r.stderr.strip()})")
    r = env.bwcall("status")
    check("connected" in r.stdout and bwtest.CALLER_ID in r.stdout, f"status shows the phone:\n{r.stdout}")
    check(bwtest.CLIENT_SECRET not in r.stdout, "status never shows the client secret")


CASES = {"no-daemon": case_no_daemon, "follow": case_follow}


if __name__ == "__main__":
    bwtest.run_cases(CASES)
