#!/usr/bin/env python3
"""Surviving the network (issue 6): socket drops, outages, failover, keep-alive, network changes.

Usage: test_network.py CASE, CASE one of: socket-drop, outage, failover, keepalive, no-pong-server,
network-change.

bwgw-sim's /control/drop-socket, /control/outage and /control/pong break the connection the way
networks do; network-change runs the whole test in a network namespace of its own (unshare -n)
and changes its addresses. Calls must keep their audio through a drop: checked with the tone the
gateway measures from our microphone and the 880 Hz it sends, recorded from our speaker."""
import os
import shutil
import subprocess
import sys
import time

import bwtest
from bwtest import check, first, near

TONE_NUMBER = "+15550001000"
PHONE = "/org/bwcall/Phone1"


def bring_up(env, extra=""):
    env.harness()
    env.start_gateway()
    env.start_connected(extra=extra)


def logins(env, since=0):
    """LoginStateChanged causes with their monitor times, from item `since` on."""
    return [(x["time"], x["args"]["cause"]) for x in env.monitor_lines.snapshot()[since:]
            if x.get("signal") == "LoginStateChanged"]


def wait_reconnected(env, since, timeout=40):
    """Waits for "disconnected" then "connected" after monitor item `since`; returns both times."""
    def pred(items):
        seq = logins(env, since)
        for i, (t, cause) in enumerate(seq):
            if cause == "disconnected":
                done = [u for u, c in seq[i:] if c == "connected"]
                if done:
                    return (t, done[0])
        return None
    return env.monitor_lines.wait_for(pred, timeout, "LoginStateChanged disconnected, then connected")


def ws_opens(env, since_time=0.0):
    return [e for e in env.events.snapshot() if e.get("event") == "ws-open" and e["time"] >= since_time]


def active_tone_call(env):
    env.play_tone(1000)
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    env.heard(1000)
    return path


def check_two_way_audio(env, what):
    since = time.time()
    env.events.wait_for(lambda it: (lambda got: got if len(got) >= 2 else None)(
        [e for e in it if e.get("event") == "frequency" and e["time"] >= since and near(e.get("hz"), 1000, 15)]),
        15, f"the gateway to hear 1000 Hz {what}")
    rec = env.record("test-sink", seconds=2)
    check(near(rec[-1].get("dominant_hz"), 880, 15),
          f"two-way audio {what}: gateway hears 1000 Hz, we hear {rec[-1].get('dominant_hz')} Hz")


def hangup_over_new_socket(env, path):
    """The BYE goes over the newest socket (the old one is gone)."""
    newest = ws_opens(env)[-1]["conn"]
    since = time.time()
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")
    bye = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE"
                         and e["time"] >= since, 10, "BYE at the gateway")
    check(bye.get("conn") == newest, f"the BYE reached the gateway over the new socket (conn {bye.get('conn')})")


# -- cases --------------------------------------------------------------------------------
def case_socket_drop(env):
    bring_up(env)
    path = active_tone_call(env)
    conn = ws_opens(env)[-1]["conn"]
    mark = len(env.monitor_lines.snapshot())
    dropped_at = time.time()
    env.control("drop-socket", conn=conn)
    t_down, t_up = wait_reconnected(env, mark)
    states = [x["args"]["changed"]["State"] for x in env.monitor_lines.snapshot()[mark:]
              if x.get("signal") == "PropertiesChanged" and x.get("path") == PHONE
              and "State" in x["args"].get("changed", {})]
    check(states[:2] == ["reconnecting", "connected"] or states[:3] == ["reconnecting", "connecting", "connected"]
          or "reconnecting" in states, f"Phone State went through reconnecting: {states}")
    gap = t_up - t_down
    check(1.5 <= gap <= 30 * bwtest.SLOW, f"reconnected within the back-off bounds [2, 30] s: {gap:.1f} s")
    check(env.call_property(path, "State") == "active", "the call outlived the socket")
    # Audio never stopped: every second the gateway measured since the drop is the tone.
    check_two_way_audio(env, "after the socket came back")
    freq = [e for e in env.events.snapshot() if e.get("event") == "frequency" and e["time"] >= dropped_at]
    check(freq and all(near(e.get("hz"), 1000, 15) for e in freq),
          f"no gap while the socket was down: {[round(e.get('hz') or 0) for e in freq]}")
    hangup_over_new_socket(env, path)


def case_remote_bye_after_drop(env):
    """After a reconnect the gateway can reach the call again: its BYE ends it."""
    bring_up(env)
    path = active_tone_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    mark = len(env.monitor_lines.snapshot())
    env.control("drop-socket")
    wait_reconnected(env, mark)
    # bwcalld tells the gateway where the call lives now (an in-dialog OPTIONS on the new socket).
    opts = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "OPTIONS"
                          and e.get("call_id", cid) == cid, 10, "in-dialog OPTIONS over the new socket")
    check(opts.get("conn") == ws_opens(env)[-1]["conn"], f"the OPTIONS came over the new socket (conn {opts.get('conn')})")
    env.control("bye", call_id=cid)
    ended = env.wait_state(path, "terminated")
    check(ended["args"]["cause"] == "Terminated", f"the gateway's BYE reached the call: {ended['args']}")


def call_changes(env, path, prop, since=0):
    return [(x["time"], x["args"]["changed"][prop]) for x in env.monitor_lines.snapshot()[since:]
            if x.get("signal") == "PropertiesChanged" and x.get("path") == path
            and prop in x["args"].get("changed", {})]


def blocked_tone_call(env, until):
    """A tone call whose RTP bwgw-sim then drops until `until`; returns the call's path, its
    Call-ID, the monitor mark and the time of the block."""
    env.expect_media_loss = True
    bring_up(env, extra="[Calls]\nRtpTimeoutMSec=15000\n")
    path = active_tone_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    mark = len(env.monitor_lines.snapshot())
    blocked_at = time.time()
    env.control("media-block", call_id=cid, until=until)
    return path, cid, mark, blocked_at


def case_ice_restart(env):
    """The media path breaks (bwgw-sim drops all RTP of the call until an ICE restart): the
    watchdog notices, shows Reconnecting, restarts ICE with a re-INVITE, and audio comes back
    both ways without ending the call."""
    path, cid, mark, blocked_at = blocked_tone_call(env, "ice-restart")
    env.monitor_lines.wait_for(lambda it: True in [v for _, v in call_changes(env, path, "Reconnecting", mark)]
                               or None, 10, "Reconnecting true")
    restart = env.wait_event(lambda e: e.get("event") == "ice-restart" and e.get("call_id") == cid
                             and e["time"] >= blocked_at, 15, "an ICE restart re-INVITE at the gateway")
    check(restart.get("new_ufrag") and restart.get("new_ufrag") != restart.get("old_ufrag"),
          f"the re-INVITE carried new ICE credentials ({restart.get('old_ufrag')} → {restart.get('new_ufrag')})")
    env.monitor_lines.wait_for(lambda it: [v for _, v in call_changes(env, path, "Reconnecting", mark)][-1:] == [False]
                               or None, 15, "Reconnecting false again")
    check_two_way_audio(env, "after the ICE restart")
    check(env.call_property(path, "State") == "active" and "terminated" not in env.states_seen(path),
          "the call stayed up through the media outage")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_media_renewal(env):
    """The old media path is dead for good (bwgw-sim drops its RTP until the client renews its
    media, as when the address it used went away): an ICE restart cannot help, so bwcalld builds
    new media (new candidates, new DTLS session) offered in a re-INVITE, and two-way audio comes
    back on the same call."""
    path, cid, mark, blocked_at = blocked_tone_call(env, "renewal")
    env.wait_event(lambda e: e.get("event") == "ice-restart" and e.get("call_id") == cid
                   and e["time"] >= blocked_at, 15, "an ICE restart first")
    renewed = env.wait_event(lambda e: e.get("event") == "media-renewed" and e.get("call_id") == cid
                             and e["time"] >= blocked_at, 15, "the media renewal at the gateway")
    invites = [e for e in env.events.snapshot() if e.get("event") == "request" and e.get("method") == "INVITE"
               and e.get("call_id") == cid and e["time"] >= blocked_at]
    check(len(invites) >= 2, f"an ICE restart and a renewal re-INVITE ({len(invites)} re-INVITEs)")
    env.monitor_lines.wait_for(lambda it: [v for _, v in call_changes(env, path, "Reconnecting", mark)][-1:] == [False]
                               or None, 15, "Reconnecting false again")
    check_two_way_audio(env, "after the media renewal")
    check(env.call_property(path, "State") == "active" and "terminated" not in env.states_seen(path),
          f"the call stayed up through the renewal ({renewed['time'] - blocked_at:.1f} s after the block)")
    env.bwcall("dtmf", path.rsplit("/", 1)[1], "7")
    env.wait_event(lambda e: e.get("event") == "dtmf" and e.get("digit") == "7" and e["time"] >= renewed["time"],
                   10, "DTMF over the renewed media")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_silent_far_end(env):
    """Media that never comes back: ICE restarts first, then RTP Timeout with the SDK's Reason."""
    env.expect_media_loss = True
    bring_up(env, extra="[Calls]\nRtpTimeoutMSec=8000\n")
    path = active_tone_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    blocked_at = time.time()
    env.control("media-block", call_id=cid, until="none")
    ended = env.wait_state(path, "terminated", timeout=30)
    check(ended["args"]["cause"] == "RTP Timeout", f"cause RTP Timeout: {ended['args']}")
    restarts = [e for e in env.events.snapshot() if e.get("event") == "ice-restart" and e["time"] >= blocked_at]
    check(len(restarts) >= 1, f"ICE was restarted before giving up ({len(restarts)} restarts)")
    bye = env.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "BYE"
                         and e["time"] >= blocked_at, 10, "the BYE")
    reason = dict(bye["headers"]).get("Reason")
    check(reason == 'SIP ;cause=408; text="RTP Timeout"', f"BYE Reason as the SDK: {reason!r}")


def case_outage(env):
    # Tight back-off bounds make the test quick and check that they are honoured.
    bring_up(env, extra="[Network]\nReconnectMinSec=1\nReconnectMaxSec=3\n")
    mark = len(env.monitor_lines.snapshot())
    outage_at = time.time()
    env.control("outage", ms=10000)
    t_down, t_up = wait_reconnected(env, mark, timeout=40)
    check(t_up - outage_at >= 9.5, f"no connection during the 10 s outage ({t_up - outage_at:.1f} s)")
    check(t_up - outage_at <= 10 + 3 + 2 * bwtest.SLOW,
          f"reconnected within ReconnectMaxSec=3 of the outage's end ({t_up - outage_at:.1f} s)")
    fails = [t for t, c in logins(env, mark) if c == "disconnected"]
    gaps = [b - a for a, b in zip(fails, fails[1:])]
    check(len(fails) >= 3 and all(g <= 3 + 1.5 * bwtest.SLOW for g in gaps),
          f"attempts during the outage, each at most ReconnectMaxSec apart: {[round(g, 1) for g in gaps]}")
    path = active_tone_call(env)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_failover(env):
    """Two gateways, the preferred one dead: the other is used, and Server says so."""
    env.harness()
    env.start_gateway()
    dead = "wss://localhost:9/"  # nothing listens on the discard port
    live = env.urls["wss"]
    env.start_connected(server=f"{dead} 10;{live} 5")
    status = env.bwcall("status", "--json").stdout
    import json
    server = json.loads(status).get("Server")
    check(server == live, f"Server is the live gateway: {server}")
    with open(env.daemon.errpath) as f:
        text = f.read()
    check(f"Connecting to gateway {dead}" in text and text.index(f"Connecting to gateway {dead}")
          < text.index(f"Connecting to gateway {live}"),
          "the higher-weight gateway was tried first, then the other")
    path = active_tone_call(env)
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_keepalive(env):
    """CRLF pings every KeepAliveSec; a gateway that answered pongs and stops is left."""
    bring_up(env, extra="[Network]\nKeepAliveSec=1\n")
    pings = env.events.wait_for(lambda it: (lambda got: got if len(got) >= 2 else None)(
        [e for e in it if e.get("event") == "ws-ping"]), 10, "two CRLF pings")
    check(all(e.get("answered") for e in pings), "the gateway answered them")
    gap = pings[1]["time"] - pings[0]["time"]
    check(near(gap, 1.0, 0.5), f"pings every KeepAliveSec=1 ({gap:.2f} s)")
    mark = len(env.monitor_lines.snapshot())
    stopped_at = time.time()
    env.control("pong", mode="off")
    t_down, t_up = wait_reconnected(env, mark, timeout=20)
    check(t_down - stopped_at <= 3 * bwtest.SLOW, f"a missing pong dropped the socket ({t_down - stopped_at:.1f} s)")
    with open(env.daemon.errpath) as f:
        check("no keep-alive pong" in f.read(), "the log says why")


def case_no_pong_server(env):
    """A gateway that never pongs is not expected to (the SDK's rule): no reconnects."""
    env.harness()
    env.start_gateway()
    env.control("pong", mode="off")
    env.start_connected(extra="[Network]\nKeepAliveSec=1\n")
    since = time.time()
    env.events.wait_for(lambda it: (lambda got: got if len(got) >= 5 else None)(
        [e for e in it if e.get("event") == "ws-ping" and e["time"] >= since]), 15, "five unanswered pings")
    check([c for _, c in logins(env)] == ["connected"], f"still on the first connection: {logins(env)}")


def in_own_netns():
    """Re-runs this test in a network namespace of its own, so that it may change addresses."""
    if os.environ.get("BWCALL_TEST_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        # Not a pass: meson reports it as skipped, and ./do test prints the count.
        print("SKIP: cannot create a network namespace here (unshare -n needs CAP_SYS_ADMIN)", flush=True)
        sys.exit(77)
    env = dict(os.environ, BWCALL_TEST_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, *sys.argv], env)


def case_network_change(env):
    """An address change: the daemon checks its socket at once (not at the next keep-alive) and
    reconnects when it is dead; a change during a back-off reconnects without waiting."""
    # A long back-off shows that a change is acted on at once, not after the next wait.
    bring_up(env, extra="[Network]\nKeepAliveSec=30\nReconnectMinSec=10\nReconnectMaxSec=30\n")
    path = active_tone_call(env)
    # No keep-alive was answered yet (KeepAliveSec=30), so nothing tells whether the socket
    # survived the change: the daemon leaves it and connects again right away.
    mark = len(env.monitor_lines.snapshot())
    changed_at = time.time()
    subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
    t_down, t_up = wait_reconnected(env, mark, timeout=20)
    check(t_up - changed_at < 3.0 * bwtest.SLOW, f"reconnected right after the change ({t_up - changed_at:.1f} s)")
    check(env.call_property(path, "State") == "active", "the call outlived the reconnect")
    restart = env.wait_event(lambda e: e.get("event") == "ice-restart" and e["time"] >= changed_at, 10,
                             "an ICE restart re-INVITE after the change")
    check(restart.get("new_ufrag") != restart.get("old_ufrag"), "the call's ICE was restarted with new credentials")
    check_two_way_audio(env, "after the network change")
    hangup_over_new_socket(env, path)

    # During a back-off (10 s here): a network change cuts the wait short.
    mark = len(env.monitor_lines.snapshot())
    env.control("outage", ms=1500)
    env.monitor_lines.wait_for(lambda it: first(it[mark:], lambda x: x.get("signal") == "LoginStateChanged"
                                                and x["args"]["cause"] == "disconnected"), 10, "the drop")
    env.events.wait_for(lambda it: first(it, lambda e: e.get("event") == "outage-end"), 10, "the outage's end")
    changed_at = time.time()
    subprocess.run(["ip", "addr", "add", "10.77.1.1/24", "dev", "lo"], check=True)
    _, t_up = wait_reconnected(env, mark, timeout=20)
    check(t_up - changed_at < 2.0 * bwtest.SLOW, f"reconnected right after the change ({t_up - changed_at:.1f} s)")


def case_address_move(env):
    """The address the call's media uses goes away and another one comes (Wi-Fi to Ethernet),
    inside a network namespace of the test's own: the daemon sees that an ICE restart cannot help
    (its candidates' address is gone), renews the media at once (new candidates on the new
    address, new DTLS session) and two-way audio comes back on the same call."""
    old, new = "10.77.5.1", "10.77.6.1"
    subprocess.run(["ip", "addr", "add", f"{old}/32", "dev", "lo"], check=True)
    # Media only on the addresses that come and go (the base config allows 127.0.0.1).
    bring_up(env, extra=f"[Media]\nIceAddresses={old};{new}\n")
    path = active_tone_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    moved_at = time.time()
    subprocess.run(["ip", "addr", "del", f"{old}/32", "dev", "lo"], check=True)
    subprocess.run(["ip", "addr", "add", f"{new}/32", "dev", "lo"], check=True)
    renewed = env.wait_event(lambda e: e.get("event") == "media-renewed" and e.get("call_id") == cid
                             and e["time"] >= moved_at, 15, "a media renewal after the address moved")
    check(renewed["time"] - moved_at < 3.0 * bwtest.SLOW,
          f"renewed right after the change ({renewed['time'] - moved_at:.1f} s), not after the RTP watchdog")
    reinvite = [e for e in env.events.snapshot() if e.get("event") == "request" and e.get("method") == "INVITE"
                and e.get("call_id") == cid and e["time"] >= moved_at]
    udp = [l.split()[4] for l in (reinvite[-1].get("body") or "").splitlines() if l.startswith("a=candidate:")
           and l.split()[2].upper() == "UDP"] if reinvite else []
    check(udp and set(udp) == {new}, f"the renewal's UDP candidates are on {new} only: {udp}")
    check_two_way_audio(env, "after the address moved")
    check(env.call_property(path, "State") == "active", "the call stayed up")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


def case_resume(env):
    """Resume from suspend (logind's PrepareForSleep(false), from a stand-in on the test bus):
    a call whose media path died while asleep restarts ICE at once, not after the 3 s the media
    watchdog would wait."""
    env.expect_media_loss = True
    env.harness()
    env.env["DBUS_SYSTEM_BUS_ADDRESS"] = env.env["DBUS_SESSION_BUS_ADDRESS"]  # logind's bus, for the daemon
    logind = env.spawn([bwtest.BWFAKE_LOGIND], "fake-logind", stdin=subprocess.PIPE)
    said = bwtest.Lines("fake-logind", stream=logind.stdout)
    said.wait_for(lambda it: "READY" in it, 10, "the logind stand-in")
    env.start_gateway()
    env.start_connected(extra="[Calls]\nRtpTimeoutMSec=15000\n")
    path = active_tone_call(env)
    cid = env.wait_event(lambda e: e.get("event") == "answered", 5, "answered")["call_id"]
    env.control("media-block", call_id=cid, until="ice-restart")  # the path died while asleep
    for what in ("sleep", "resume"):
        resumed_at = time.time()
        logind.stdin.write(what + "\n")
        logind.stdin.flush()
        said.wait_for(lambda it: f"SENT {what}" in it, 10, f"PrepareForSleep({what == 'sleep'})")
    restart = env.wait_event(lambda e: e.get("event") == "ice-restart" and e.get("call_id") == cid
                             and e["time"] >= resumed_at, 10, "an ICE restart after the resume")
    check(restart["time"] - resumed_at < 1.5 * bwtest.SLOW,
          f"ICE restarted at the resume ({restart['time'] - resumed_at:.2f} s), before the media watchdog")
    check_two_way_audio(env, "after the resume")
    check(env.call_property(path, "State") == "active", "the call stayed up")
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")
    logind.stdin.close()


CASES = {"socket-drop": case_socket_drop, "remote-bye-after-drop": case_remote_bye_after_drop,
         "ice-restart": case_ice_restart, "media-renewal": case_media_renewal, "silent-far-end": case_silent_far_end, "outage": case_outage, "failover": case_failover,
         "keepalive": case_keepalive, "no-pong-server": case_no_pong_server, "network-change": case_network_change,
         "address-move": case_address_move, "resume": case_resume}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("network-change", "address-move"):
        in_own_netns()
    bwtest.run_cases(CASES)
