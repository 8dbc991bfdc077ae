#!/usr/bin/env python3
"""The OAuth token lifecycle against bwgw-sim's token endpoints (issue 5).

Usage: test_token.py CASE, CASE one of: refresh-during-call, failures, unreachable, invite-auth,
token-url, secrets, external.

bwgw-sim's /control/token-faults makes its token endpoints slow, failing or garbled;
/control/revoke-tokens and /control/invite-auth make the gateway refuse INVITEs. States come from
`bwcall monitor --json` (a separate D-Bus client), verbs from `bwcall token ...`."""
import json
import os
import re
import subprocess
import time

import bwtest
from bwtest import check, first, near

TONE_NUMBER = "+15550001000"
PHONE = "/org/bwcall/Phone1"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
TOKEN_EVENTS = ("token-minted", "token-rejected", "token-fault")


# -- helpers ------------------------------------------------------------------------------
def bring_up(env, *gateway_args, token_mode="client-credentials", extra="", wait_token=True):
    env.harness()
    env.start_gateway(*gateway_args)
    return start(env, token_mode=token_mode, extra=extra, wait_token=wait_token)


def start(env, token_mode="client-credentials", extra="", wait_token=True):
    env.start_connected(token_mode=token_mode, extra=extra)
    if wait_token:
        token_state(env, "valid")


def phone_changes(env, prop, after=0):
    """Values of a Phone property in PropertiesChanged, in order, from monitor item `after` on."""
    return [x["args"]["changed"][prop] for x in env.monitor_lines.snapshot()[after:]
            if x.get("signal") == "PropertiesChanged" and x.get("path") == PHONE
            and prop in x["args"].get("changed", {})]


def token_state(env, state, after=0, timeout=15):
    """Waits for TokenState == state, in a PropertiesChanged from item `after` on or right now."""
    now = json.loads(env.bwcall("token", "--json").stdout)
    if now.get("TokenState") == state and after == 0:
        return now
    env.monitor_lines.wait_for(lambda it: state in phone_changes(env, "TokenState", after) or None,
                               timeout, f"TokenState {state}")
    return json.loads(env.bwcall("token", "--json").stdout)


def token_info(env):
    return json.loads(env.bwcall("token", "--json").stdout)


# Gateway events are selected by their time, not their position: the events file is read with a
# little lag, so a position taken now may precede events that happened before it.
def token_requests(env, since=0.0):
    return [e for e in env.events.snapshot() if e.get("event") in TOKEN_EVENTS and e["time"] >= since]


def fault(env, **params):
    return env.control("token-faults", **params)


def refresh_fails(env, expect):
    """`bwcall token refresh` fails with TokenUnavailable and a message containing expect."""
    r = env.bwcall("--json", "token", "refresh", check=False)
    out = json.loads(r.stdout or "{}")
    check(r.returncode != 0 and out.get("error") == "org.bwcall.Phone1.Error.TokenUnavailable"
          and expect.lower() in out.get("message", "").lower(),
          f"token refresh fails with TokenUnavailable '{expect}': {out.get('message')!r} (exit {r.returncode})")
    return out


def dial_refused(env, expect):
    since = time.time()
    r = env.bwcall("--json", "dial", "--no-wait", TONE_NUMBER, check=False)
    out = json.loads(r.stdout or "{}")
    check(r.returncode != 0 and out.get("error") == "org.bwcall.Phone1.Error.TokenUnavailable"
          and expect.lower() in out.get("message", "").lower(),
          f"Dial without a token: TokenUnavailable '{expect}': {out.get('message')!r}")
    # The refusal came after the token fetch failed; an INVITE would have been sent before.
    check(not invites(env, since), "no INVITE doomed to fail went to the gateway")


def invites(env, since=0.0):
    return [e for e in env.events.snapshot()
            if e.get("event") == "request" and e.get("method") == "INVITE" and e["time"] >= since]


def wait_invites(env, n, since=0.0, timeout=15):
    return env.events.wait_for(lambda it: (lambda got: got if len(got) >= n else None)(invites(env, since)),
                               timeout, f"{n} INVITE(s) at the gateway")


def tone_call(env):
    """Dials the tone number; returns (path, INVITE event) once the call is active."""
    since = time.time()
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    inv = [i for i in wait_invites(env, 1, since) if i.get("authorized")][-1]
    return path, inv


def hang_up(env, path):
    env.bwcall("hangup", path)
    env.wait_state(path, "terminated")


# -- cases --------------------------------------------------------------------------------
def case_refresh_during_call(env):
    """Tokens that live 4 s are refreshed again and again during a call whose audio never stops;
    the connection is not touched and the next call uses a new token."""
    bring_up(env, "--token-lifetime", "4")
    env.play_tone(1000)
    path, inv1 = tone_call(env)
    active_at = len(env.monitor_lines.snapshot())
    env.heard(1000)
    since = time.time()

    refreshed = env.monitor_lines.wait_for(
        lambda it: (lambda got: got if len(got) >= 4 else None)(
            [x for x in it[active_at:] if x.get("signal") == "TokenRefreshed"]),
        30, "four TokenRefreshed signals during the call")
    expiries = [x["args"]["expires_at"] for x in refreshed]
    check(all(b > a for a, b in zip(expiries, expiries[1:])),
          f"each TokenRefreshed carries a later expiry: {expiries}")
    minted = env.events.wait_for(lambda it: (lambda got: got if len(got) >= 4 else None)(
        [e for e in it if e.get("event") == "token-minted" and e["time"] >= since]), 10,
        "four tokens minted during the call")
    check(len(minted) >= 4, f"bwcalld asked the token endpoint again and again ({len(minted)} tokens)")
    check("refreshing" in phone_changes(env, "TokenState", active_at)
          and "expired" not in phone_changes(env, "TokenState"),
          "TokenState went valid → refreshing → valid, never expired")

    # The audio never stopped: every second the gateway measured since is the tone.
    freq = [e for e in env.events.snapshot() if e.get("event") == "frequency" and e["time"] >= since]
    check(len(freq) >= 5 and all(near(e.get("hz"), 1000, 15) and e.get("dbfs", -99) > -40 for e in freq),
          f"the gateway heard 1000 Hz in all {len(freq)} seconds while tokens were refreshed: "
          f"{[e.get('hz') for e in freq]}")
    check(env.states_seen(path)[-1] == "active", "the call stayed active")
    logins = [x for x in env.monitor_lines.snapshot() if x.get("signal") == "LoginStateChanged"]
    check(len(logins) == 1, f"the gateway connection was not touched ({len(logins)} LoginStateChanged)")
    hang_up(env, path)

    path2, inv2 = tone_call(env)
    check(inv2.get("token_jti") and inv2["token_jti"] != inv1["token_jti"],
          f"the next call's INVITE carries a new token (jti {inv1['token_jti']} → {inv2['token_jti']})")
    hang_up(env, path2)
    env.finish()


def case_failures(env):
    """Each failure of the token endpoint: state, readable reason, back-off, recovery."""
    env.harness()
    env.start_gateway()
    fault(env, status=503)
    # A second [Token] group merges into the first (GKeyFile).
    start(env, extra="[Token]\nTimeoutMSec=1500\n", wait_token=False)

    # No token at all: error with the reason, Dial refused, retried with growing gaps.
    info = token_state(env, "error")
    check("HTTP 503" in info.get("TokenError", ""), f"TokenError says why: {info.get('TokenError')!r}")
    reqs = env.events.wait_for(lambda it: (lambda got: got if len(got) >= 4 else None)(
        [e for e in it if e.get("event") == "token-fault"]), 30, "four attempts at the token endpoint")
    # The delays bwcalld chose (its log) double with ±20 % jitter; the gaps the gateway saw
    # are never shorter than them (a request also takes its own time, slower under ASan).
    with open(env.daemon.errpath) as f:
        delays = [float(d) for d in re.findall(r"Retrying in ([0-9.]+) s", f.read())][:3]
    gaps = [b["time"] - a["time"] for a, b in zip(reqs, reqs[1:])][:3]
    check(len(delays) == 3 and all(b >= a * 1.3 for a, b in zip(delays, delays[1:]))
          and 0.7 <= delays[0] <= 1.3, f"retries back off exponentially with jitter: {delays} s")
    check(all(g >= d - 0.1 for g, d in zip(gaps, delays)),
          f"the gateway saw no retry earlier than that: gaps {[round(g, 2) for g in gaps]} s")
    dial_refused(env, "HTTP 503")

    # The endpoint recovers: so does bwcalld, on its own.
    mark = len(env.monitor_lines.snapshot())
    fault(env)
    env.wait_signal("TokenRefreshed", PHONE, timeout=30, after=mark)
    info = token_state(env, "valid")
    check(info.get("TokenError") == "", f"TokenError cleared after recovery: {info.get('TokenError')!r}")

    # With a valid token: each transient failure is reported, the old token keeps working, and
    # the retry after it (the fault applies once) recovers.
    for params, expect in (({"status": 500}, "HTTP 500"),
                           ({"body": "garbage"}, "not a JSON object"),
                           ({"body": "no-token"}, "no access_token"),
                           ({"body": "bad-expiry"}, "invalid expires_in"),
                           ({"delay_ms": 4000}, "timed out")):
        mark = len(env.monitor_lines.snapshot())
        fault(env, count=1, **params)
        refresh_fails(env, expect)
        info = token_info(env)
        check(info["TokenState"] == "valid" and expect.lower() in info["TokenError"].lower(),
              f"{params}: the old token stays valid, TokenError {info['TokenError']!r}")
        env.wait_signal("TokenRefreshed", PHONE, timeout=20, after=mark)
        check(token_info(env)["TokenError"] == "", f"{params}: the retry recovered")

    # 429 with Retry-After: the next attempt waits that long, not the 1 s back-off step.
    # (Event times, not positions: the events file is read with a little lag.)
    fault(env, count=1, status=429, retry_after=3)
    asked_at = time.time()
    refresh_fails(env, "HTTP 429")
    failed = env.events.wait_for(lambda it: first(it, lambda e: e.get("event") == "token-fault"
                                                  and e.get("status") == 429 and e["time"] >= asked_at), 10, "the 429")
    nxt = env.events.wait_for(lambda it: first(it, lambda e: e.get("event") == "token-minted"
                                               and e["time"] > failed["time"]), 20, "the retry after Retry-After")
    check(nxt["time"] - failed["time"] >= 2.7,
          f"the retry honoured Retry-After: 3 ({nxt['time'] - failed['time']:.1f} s)")

    # 401 invalid_client is not retried on its own: nothing for a while, then a user refresh works.
    fault(env, status=401)
    asked_at = time.time()
    refresh_fails(env, "invalid_client")
    refused = env.events.wait_for(lambda it: first(it, lambda e: e.get("event") == "token-fault"
                                                   and e.get("status") == 401 and e["time"] >= asked_at), 10, "the 401")
    deadline = time.monotonic() + 5 * bwtest.SLOW
    later = []
    while time.monotonic() < deadline and not later:  # an observation window, not a synchronisation
        later = [e for e in token_requests(env) if e["time"] > refused["time"]]
        time.sleep(0.2)
    check(not later, "no retries in the 5 s after 401 invalid_client")
    fault(env)
    r = env.bwcall("--json", "token", "refresh")
    check(json.loads(r.stdout).get("TokenExpiresAt", 0) > time.time() * 1e6,
          "bwcall token refresh works once the endpoint accepts us again")
    env.finish()


def case_unreachable(env):
    env.harness()
    env.start_gateway()
    env.urls["token"] = "https://localhost:9/api/v1/oauth2/token"  # nothing listens there
    start(env, wait_token=False)
    info = token_state(env, "error")
    check("unreachable" in info.get("TokenError", ""), f"TokenError: {info.get('TokenError')!r}")
    dial_refused(env, "unreachable")
    env.finish()


def case_invite_auth(env):
    """A gateway 401/403 to an INVITE: one forced refresh and one transparent retry, then cause
    Authentication Error."""
    bring_up(env)
    path, inv1 = tone_call(env)
    hang_up(env, path)

    env.control("revoke-tokens")
    since, mon = time.time(), len(env.monitor_lines.snapshot())
    path = env.dial(TONE_NUMBER)
    env.wait_state(path, "active")
    first_inv, retry = wait_invites(env, 2, since)[:2]
    check(first_inv.get("authorized") is False and first_inv.get("token_jti") == inv1.get("token_jti"),
          "the first INVITE carried the revoked token and was refused")
    check(retry.get("authorized") is True and retry.get("token_jti") != first_inv.get("token_jti"),
          f"the retry carried a new token (jti {retry.get('token_jti')})")
    h1 = dict(first_inv["headers"])
    h2 = dict(retry["headers"])
    c1, c2 = h1["CSeq"].split()[0], h2["CSeq"].split()[0]
    check(h1["Call-ID"] == h2["Call-ID"] and int(c2) == int(c1) + 1 and ";tag=" not in h2["To"],
          f"the retry is the same request again: same Call-ID, CSeq {c1} → {c2}, no To tag")
    check(env.states_seen(path)[:2] == ["dialing", "ringing"] and "terminated" not in env.states_seen(path),
          f"the user saw no failure: {env.states_seen(path)}")
    env.wait_signal("TokenRefreshed", PHONE, after=mon)
    hang_up(env, path)

    env.control("invite-auth", status=403, count=2)
    since = time.time()
    path = env.dial(TONE_NUMBER)
    ended = env.wait_state(path, "terminated")
    check(ended["args"]["cause"] == "Authentication Error", f"cause Authentication Error: {ended['args']}")
    check(env.call_property(path, "SipCode") == 403, "SipCode 403")
    refused = wait_invites(env, 2, since)
    check(all(i.get("auth_error") == "injected 403" for i in refused), "both INVITEs were refused with 403")
    env.wait_signal("CallRemoved", PHONE, call=path)  # a while later: still no third attempt
    check(len(invites(env, since)) == 2, f"exactly one retry ({len(invites(env, since))} INVITEs)")
    env.finish()


def case_token_url(env):
    """token-url mode: tokens from the customer's backend, with an API key header."""
    env.harness()
    key = "customer-api-key-7f3a"
    key_file = os.path.join(env.dir, "customer-key")
    with open(key_file, "w") as f:
        f.write(key + "\n")
    env.start_gateway("--customer-key-file", key_file)
    env.write_config(token_mode="token-url", extra=f"[Token]\nUrl={env.urls['customer']}\n")
    cred = os.path.join(env.dir, "credentials")
    fd = os.open(cred, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"token_url_header=X-Api-Key: {key}\n")
    env.start_monitor()
    env.start_daemon()
    info = token_state(env, "valid")
    check(info.get("TokenMode") == "token-url", f"TokenMode token-url: {info}")
    minted = env.wait_event(lambda e: e.get("event") == "token-minted", 10, "a token from the customer URL")
    check(minted.get("client_id") == "customer-backend", f"the token came from the customer backend: {minted}")
    env.play_tone(1000)
    path, inv = tone_call(env)
    check(inv.get("token_jti") == minted.get("jti"), "the INVITE carried the customer backend's token")
    env.heard(1000)
    hang_up(env, path)

    # A wrong key: the backend's 401 is reported and not retried on its own.
    fd = os.open(cred, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as f:
        f.write("token_url_header=X-Api-Key: wrong\n")
    refresh_fails(env, "HTTP 401")
    env.finish()
    with open(env.daemon.errpath) as f:
        log_text = f.read()
    check(key not in log_text, "the API key is not in the daemon's log")


def case_secrets(env):
    """A world-readable secrets file is refused; nothing on the bus or in the logs carries the
    secret or the token."""
    env.harness()
    env.start_gateway()
    env.write_config()
    cred = os.path.join(env.dir, "credentials")
    os.chmod(cred, 0o644)
    env.start_monitor()
    env.start_daemon()
    info = token_state(env, "error")
    check("credentials" in info.get("TokenError", ""), f"TokenError: {info.get('TokenError')!r}")
    env.daemon_log = open(env.daemon.errpath).read()
    check(f"Refusing credentials file {cred}" in env.daemon_log and "chmod 600" in env.daemon_log,
          "the log says which file was refused and how to fix it")
    check(not token_requests(env), "no token request went out with a refused secret")
    dial_refused(env, "credentials")

    os.chmod(cred, 0o600)
    env.bwcall("token", "refresh")
    env.play_tone(1000)
    path, inv = tone_call(env)

    # Everything a bus client can read during a call.
    outputs = {}
    for name, args in (("introspect phone", ["busctl", "--user", "introspect", "org.bwcall.Phone1", PHONE]),
                       ("introspect call", ["busctl", "--user", "introspect", "org.bwcall.Phone1", path]),
                       ("GetManagedObjects", ["busctl", "--user", "--json=short", "call", "org.bwcall.Phone1",
                                              PHONE, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"]),
                       ("bwcall status", [bwtest.BWCALL, "status", "--json"]),
                       ("bwcall calls", [bwtest.BWCALL, "calls", "--json"]),
                       ("bwcall token", [bwtest.BWCALL, "token", "--json"])):
        r = subprocess.run(args, env=env.env, capture_output=True, text=True, timeout=20)
        check(r.returncode == 0 and r.stdout, f"{name} answered")
        outputs[name] = r.stdout
    for name, text in outputs.items():
        check(bwtest.CLIENT_SECRET not in text and not JWT.search(text),
              f"{name}: neither the client secret nor a token")
    check("TokenRefreshed" in outputs["introspect phone"] and "RefreshToken" in outputs["introspect phone"],
          "introspection lists RefreshToken and TokenRefreshed")
    hang_up(env, path)
    env.finish()  # also scans the daemon's and the gateway's whole logs (debug level)


def case_external(env):
    """external mode: nothing to fetch; SetOAuthToken validates."""
    bring_up(env, token_mode="external", wait_token=False)
    info = token_info(env)
    check(info.get("TokenMode") == "external" and info.get("TokenState") == "none", f"bwcall token: {info}")
    r = env.bwcall("--json", "token", "refresh", check=False)
    out = json.loads(r.stdout or "{}")
    check(r.returncode != 0 and out.get("error") == "org.bwcall.Phone1.Error.InvalidState"
          and "SetOAuthToken" in out.get("message", ""), f"RefreshToken in external mode: {out}")
    dial_refused(env, "SetOAuthToken")
    env.finish()


bwtest.run_cases({"refresh-during-call": case_refresh_during_call, "failures": case_failures,
                  "unreachable": case_unreachable, "invite-auth": case_invite_auth, "token-url": case_token_url,
                  "secrets": case_secrets, "external": case_external})
