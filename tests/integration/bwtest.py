"""bwtest: the integration test kit for bwcall.

Everything here starts real processes and stops exactly those, by PID:
  - a private dbus-daemon + PipeWire + WirePlumber (tests/harness/harness.sh),
  - bwgw-sim (the test gateway) with a test CA, its events file tailed,
  - bwcalld with sd_notify readiness,
  - `bwcall monitor --json` as the separate D-Bus client that observes states and signals,
  - bwaudio-probe to feed the test microphone and record the test speaker.
Waiting is always "until a condition holds, with a deadline" -- never a fixed sleep.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("BWCALL_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("BWCALL_BUILDDIR", os.path.join(SRC, "build"))


def binary(env_name, rel):
    return os.environ.get(env_name) or os.path.join(BUILD, rel)


BWCALLD = binary("BWCALLD", "daemon/bwcalld")
BWCALL = binary("BWCALL", "client/bwcall")
BWGW_SIM = binary("BWGW_SIM", "tests/gateway/bwgw-sim")
BWAUDIO_PROBE = binary("BWAUDIO_PROBE", "tests/tools/bwaudio-probe")
BWFAKE_LOGIND = binary("BWFAKE_LOGIND", "tests/tools/bwfake-logind")
HARNESS = os.path.join(SRC, "tests/harness/harness.sh")
GEN_CA = os.path.join(SRC, "tests/gateway/gen-test-ca.sh")

CLIENT_ID = "bwcall-test-client"
CLIENT_SECRET = "s3cr3t-" + base64.b32encode(os.urandom(10)).decode().lower()
CALLER_ID = "+19195550100"

# Sanitizer builds are several times slower; deadlines scale, assertions do not.
SLOW = 3.0 if os.environ.get("BWCALL_TEST_SANITIZED") else 1.0


class TestFailure(Exception):
    pass


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


class Lines:
    """Collects lines from a pipe or a growing file in a thread; wait_for() blocks on a
    condition over the collected lines until it holds or a deadline passes."""

    on_item = None  # called from the reader thread with each new item

    def __init__(self, name, stream=None, path=None, parse_json=False, echo=False):
        self.name, self.parse_json, self.echo = name, parse_json, echo
        self.items = []
        self.cond = threading.Condition()
        self.closed = False
        self._stop = threading.Event()
        target = self._read_stream if stream is not None else self._tail_file
        self._src = stream if stream is not None else path
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def _add(self, line):
        line = line.rstrip("\n")
        if not line:
            return
        item = line
        if self.parse_json:
            try:
                item = json.loads(line)
            except ValueError:
                item = {"unparsed": line}
        if self.echo:
            log(f"[{self.name}]", line)
        if self.on_item:
            self.on_item(item)
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def _read_stream(self):
        for line in iter(self._src.readline, ""):
            self._add(line)
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _tail_file(self):
        pos, buf = 0, ""
        while not self._stop.is_set():
            try:
                with open(self._src) as f:
                    f.seek(pos)
                    data = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                data = ""
            if data:
                buf += data
                *lines, buf = buf.split("\n")
                for line in lines:
                    self._add(line)
            else:
                # A file has no readiness notification without inotify; poll briefly.
                self._stop.wait(0.02)

    def stop(self):
        self._stop.set()

    def snapshot(self):
        with self.cond:
            return list(self.items)

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout * SLOW
        with self.cond:
            while True:
                found = pred(self.items)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.closed and not found):
                    raise TestFailure(f"timed out after {timeout * SLOW:.0f}s waiting for {what} ({self.name}); "
                                      f"last items: {self.items[-8:]}")
                self.cond.wait(min(left, 0.5))


def first(items, match):
    for it in items:
        if match(it):
            return it
    return None


class Env:
    """One private world per test: harness, gateway, daemon, monitor."""

    def __init__(self, name):
        tmp_root = os.path.join(BUILD, "test-tmp")
        os.makedirs(tmp_root, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root)
        self.procs = []
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env["GST_DEBUG"] = self.env.get("GST_DEBUG", "*:1")
        self.env["GIO_USE_PROXY_RESOLVER"] = "dummy"
        self.env["NO_AT_BRIDGE"] = "1"
        self.harness_dir = os.path.join(self.dir, "harness")
        self.gateway = None
        self.daemon = None
        self.monitor = None
        log(f"test state in {self.dir}")

    # -- processes --------------------------------------------------------------------
    def spawn(self, args, name, stdout=subprocess.PIPE, **kw):
        errpath = os.path.join(self.dir, f"{name}.log")
        err = open(errpath, "w")
        p = subprocess.Popen(args, stdout=stdout, stderr=err, env=kw.pop("env", self.env),
                             text=True, start_new_session=True, **kw)
        p.name, p.errpath = name, errpath
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                log(f"{p.name} (pid {p.pid}) did not stop on {sig.name}; killing it")
                p.kill()
                p.wait()
        return p.returncode

    def finish(self):
        """After a passing test: our own services must stop cleanly on SIGTERM, without sanitizer
        reports, and their logs must never contain the client secret or a JWT."""
        import re
        jwt = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")
        for p in (self.daemon, self.gateway):
            if p is None:
                continue
            rc = self.stop(p)
            with open(p.errpath, errors="replace") as f:
                text = f.read()
            if rc != 0:
                raise TestFailure(f"{p.name} exited with {rc} on SIGTERM")
            for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "CRITICAL **"):
                if marker in text:
                    raise TestFailure(f"{p.name} log contains {marker!r}")
            if CLIENT_SECRET in text:
                raise TestFailure(f"{p.name} logged the client secret")
            if jwt.search(text):
                raise TestFailure(f"{p.name} logged a JWT")
        log("ok: services stopped cleanly; no sanitizer report, secret or token in their logs")

    def close(self):
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep tearing down
                log(f"stopping {p.name}: {e}")
        for lines in (self.monitor_lines, self.events):
            if lines:
                lines.stop()
        subprocess.run(["bash", HARNESS, "down", self.harness_dir], env=self.env, check=False)

    monitor_lines = None
    events = None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.dump_stacks()
            self.dump_logs()
        self.close()
        return False

    # A call losing its media when the test did not ask for that is the intermittent stall under
    # ASan (both directions stop ~1 s into a call): take the stacks at that moment, once, while
    # the stalled threads are still stuck. Tests that cut the media on purpose set this.
    expect_media_loss = False
    _stall_stacks_taken = False

    def _watch_for_media_stall(self, item):
        if (self.expect_media_loss or self._stall_stacks_taken or not isinstance(item, dict)
                or item.get("signal") != "PropertiesChanged"
                or item.get("args", {}).get("changed", {}).get("Reconnecting") is not True):
            return
        self._stall_stacks_taken = True
        log("a call lost its media unexpectedly: taking thread stacks now")
        self.dump_stacks(suffix="at-media-loss")

    def dump_stacks(self, suffix=None):
        """On a failure, the threads of our own services as they are now (a stalled main loop or
        streaming thread shows up here), into the test directory."""
        import shutil
        if not shutil.which("gdb"):
            return
        for p in (self.daemon, self.gateway):
            if p is None or p.poll() is not None:
                continue
            path = os.path.join(self.dir, f"{p.name}.stacks{'-' + suffix if suffix else ''}.txt")
            with open(path, "w") as f:
                subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "thread apply all bt 15"],
                               stdout=f, stderr=subprocess.STDOUT, timeout=60, check=False)
            print(f"----- {p.name} (pid {p.pid}) thread stacks: {path}", flush=True)

    def dump_logs(self):
        for p in self.procs:
            try:
                with open(p.errpath) as f:
                    data = f.read()
            except OSError:
                continue
            if data.strip():
                tail = data[-6000:]
                print(f"----- {p.name} (pid {p.pid}, exit {p.poll()}) log tail -----\n{tail}", flush=True)

    # -- bring-up ---------------------------------------------------------------------
    def harness(self):
        r = subprocess.run(["bash", HARNESS, "up", self.harness_dir], env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"harness failed: {r.stderr}")
        with open(os.path.join(self.harness_dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    self.env[k] = v
        return self

    def test_ca(self):
        cadir = os.path.join(self.dir, "ca")
        r = subprocess.run(["bash", GEN_CA, cadir], capture_output=True, text=True)
        if r.returncode != 0:
            raise TestFailure(f"gen-test-ca failed: {r.stderr}")
        self.ca = os.path.join(cadir, "ca.pem")
        self.cert = os.path.join(cadir, "server.pem")
        self.key = os.path.join(cadir, "server.key")

    def start_gateway(self, *extra):
        self.test_ca()
        secret_file = os.path.join(self.dir, "gw-client-secret")
        with open(secret_file, "w") as f:
            f.write(CLIENT_SECRET + "\n")
        self.events_path = os.path.join(self.dir, "gateway-events.jsonl")
        args = [BWGW_SIM, "--cert", self.cert, "--key", self.key, "--client-id", CLIENT_ID,
                "--client-secret-file", secret_file, "--events", self.events_path,
                "--ice-address", "127.0.0.1", *extra]
        self.gateway = self.spawn(args, "bwgw-sim")
        deadline = time.monotonic() + 10 * SLOW
        line = ""
        while time.monotonic() < deadline:
            line = self.gateway.stdout.readline()
            if line.startswith("READY") or not line:
                break
        if not line.startswith("READY"):
            raise TestFailure(f"bwgw-sim did not become ready: {line!r}")
        self.urls = dict(kv.split("=", 1) for kv in line.split()[1:])
        self.events = Lines("gateway-events", path=self.events_path, parse_json=True)
        log("gateway", self.urls)
        return self

    def write_config(self, token_mode="client-credentials", server=None, extra=""):
        cred = os.path.join(self.dir, "credentials")
        fd = os.open(cred, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"client_id={CLIENT_ID}\nclient_secret={CLIENT_SECRET}\n")
        self.config_path = os.path.join(self.dir, "bwcall.conf")
        with open(self.config_path, "w") as f:
            f.write(f"""[Network]
Servers={server or self.urls['wss']}
Domain=gw.webrtc-app.bandwidth.com
CAFile={self.ca}
ConnectTimeoutMSec=5000
[Account]
CallerId={CALLER_ID}
DisplayName=bwcall test
[Token]
Mode={token_mode}
Endpoint={self.urls.get('token', '')}
CredentialsFile={cred}
[Media]
IceAddresses=127.0.0.1
UPnP=false
[Calls]
LingerMSec=3000
{extra}""")
        return self.config_path

    def start_daemon(self, *extra, config=None):
        if config is None:
            config = self.config_path
        sock_path = os.path.join(self.dir, "notify.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)  # left by an earlier daemon of this test
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        env = dict(self.env, NOTIFY_SOCKET=sock_path)
        self.daemon = self.spawn([BWCALLD, "-c", config, "--log-level=debug", *extra], "bwcalld",
                                 stdout=subprocess.DEVNULL, env=env)
        ns.settimeout(15 * SLOW)
        try:
            while True:
                msg = ns.recv(4096).decode()
                if "READY=1" in msg:
                    break
        except socket.timeout:
            raise TestFailure("bwcalld did not send READY=1")
        finally:
            ns.close()
        log("bwcalld ready (pid %d)" % self.daemon.pid)
        return self.daemon

    def restart_daemon(self, extra=""):
        """A daemon (again) with a new config; returns once it is connected to the gateway."""
        if self.daemon:
            self.stop(self.daemon)
        self.write_config(extra=extra)
        mark = len(self.monitor_lines.snapshot())
        self.start_daemon()
        self.monitor_lines.wait_for(lambda it: first(it[mark:], lambda x: x.get("signal") == "LoginStateChanged"
                                                     and x["args"].get("cause") == "connected"), 15, "connected")

    def start_connected(self, token_mode="client-credentials", extra="", server=None):
        """Config, monitor and daemon; returns once the daemon reported its gateway connection."""
        self.write_config(token_mode=token_mode, server=server, extra=extra)
        self.start_monitor()
        self.start_daemon()
        self.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("signal") == "LoginStateChanged"
                                                     and x["args"].get("cause") == "connected"),
                                    15, "LoginStateChanged(false, connected)")

    def start_monitor(self, echo=True):
        p = self.spawn([BWCALL, "monitor", "--json"], "bwcall-monitor")
        self.monitor_lines = Lines("monitor", stream=p.stdout, parse_json=True, echo=echo)
        self.monitor_lines.on_item = self._watch_for_media_stall
        self.monitor_lines.wait_for(lambda it: first(it, lambda x: x.get("event") == "monitoring"), 10,
                                    "monitor to subscribe")
        return self.monitor_lines

    def play_tone(self, freq, target="mic-feed"):
        """Starts a tone into `target`; returns once PipeWire pulls it (the stream is linked)."""
        name = f"tone-{freq}"
        p = self.spawn([BWAUDIO_PROBE, "play", "--freq", str(freq), "--target", target], name)
        Lines(name, stream=p.stdout).wait_for(lambda it: "PLAYING" in it, 20, "tone playback")
        return p

    def record(self, target="test-sink", seconds=3):
        r = subprocess.run([BWAUDIO_PROBE, "record", "--target", target, "--monitor", "--seconds", str(seconds)],
                           env=self.env, capture_output=True, text=True, timeout=(seconds + 20) * SLOW)
        return self._recorded(r.returncode, r.stdout, r.stderr)

    def start_record(self, target="test-sink", seconds=3):
        """A recording that runs while the test does something; finish_record() collects it."""
        return self.spawn([BWAUDIO_PROBE, "record", "--target", target, "--monitor", "--seconds", str(seconds)],
                          f"record-{target}")

    def finish_record(self, p, seconds=3):
        out, _ = p.communicate(timeout=(seconds + 20) * SLOW)
        with open(p.errpath) as f:
            return self._recorded(p.returncode, out, f.read())

    @staticmethod
    def _recorded(returncode, out, err):
        lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        if returncode != 0 or not lines:
            raise TestFailure(f"recording failed ({returncode}): {err.strip()} {out.strip()}")
        return lines

    def control(self, action, **params):
        """Asks bwgw-sim to act (call us, hold, send DTMF, ...): POST /control/<action>."""
        import urllib.error
        import urllib.parse
        import urllib.request
        base = self.urls["ws"].replace("ws://", "http://").rstrip("/")
        url = f"{base}/control/{action}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10 * SLOW) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise TestFailure(f"control {action} {params}: HTTP {e.code} {e.read().decode()[:200]}")

    # -- the CLI (the product's own client) -------------------------------------------
    def bwcall(self, *args, check=True, input=None, timeout=30):
        r = subprocess.run([BWCALL, *args], env=self.env, capture_output=True, text=True, input=input,
                           timeout=timeout * SLOW)
        if check and r.returncode != 0:
            raise TestFailure(f"bwcall {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def dial(self, number):
        r = self.bwcall("dial", "--no-wait", number)
        path = r.stdout.strip().split()[-1]
        if not path.startswith("/org/bwcall/Phone1/Call/"):
            raise TestFailure(f"dial printed no call path: {r.stdout!r}")
        return path

    # -- observations -----------------------------------------------------------------
    def wait_state(self, path, state, timeout=15):
        """Waits until the monitor saw the call reach state; returns the StateChanged item."""
        def pred(items):
            return first(items, lambda x: x.get("signal") == "StateChanged" and x.get("path") == path
                         and x["args"].get("new") == state)
        return self.monitor_lines.wait_for(pred, timeout, f"{path} to reach {state}")

    def states_seen(self, path):
        seen = []
        for x in self.monitor_lines.snapshot():
            if x.get("signal") == "InterfacesAdded" and x.get("args", {}).get("object") == path:
                st = x["args"]["interfaces"].get("org.bwcall.Phone1.Call", {}).get("State")
                if st and not seen:
                    seen.append(st)
            if x.get("signal") == "StateChanged" and x.get("path") == path:
                if not seen:
                    seen.append(x["args"]["old"])
                seen.append(x["args"]["new"])
        return seen

    def wait_event(self, pred, timeout, what, after=0):
        return self.events.wait_for(lambda it: first(it[after:], pred), timeout, what)

    def wait_signal(self, signal, path=None, timeout=15, after=0, **args):
        """Waits for a D-Bus signal seen by the monitor (optionally on path, with these args)."""
        def match(x):
            return (x.get("signal") == signal and (path is None or x.get("path") == path)
                    and all(x.get("args", {}).get(k) == v for k, v in args.items()))
        return self.monitor_lines.wait_for(lambda it: first(it[after:], match), timeout,
                                           f"signal {signal} {args} on {path}")

    def heard(self, hz, after=0, blocks=2, timeout=15, tolerance=15):
        """Waits until the gateway reported `blocks` 1-s blocks near hz after event index `after`."""
        def pred(items):
            got = [e for e in items[after:] if e.get("event") == "frequency" and near(e.get("hz"), hz, tolerance)]
            return got if len(got) >= blocks else None
        return self.events.wait_for(pred, timeout, f"the gateway to hear {hz} Hz")

    def heard_silence(self, after=0, blocks=1, timeout=15):
        def pred(items):
            got = [e for e in items[after:] if e.get("event") == "frequency" and e.get("dbfs", 0) < -50]
            return got if len(got) >= blocks else None
        return self.events.wait_for(pred, timeout, "the gateway to hear silence")

    def call_property(self, path, prop):
        r = self.bwcall("calls", "--json")
        data = json.loads(r.stdout)
        calls = data if isinstance(data, list) else data.get("calls", [])
        for c in calls:
            if c.get("path") == path:
                return c.get(prop)
        raise TestFailure(f"{path} not listed by bwcall calls: {r.stdout}")


def check(cond, message):
    if not cond:
        raise TestFailure(message)
    log("ok:", message)


def near(value, target, tolerance):
    return value is not None and abs(value - target) <= tolerance


def run_cases(cases):
    """A test script's main: runs cases[argv[1]](env) in a fresh Env."""
    def main(env, case=None, *rest):
        if case not in cases:
            raise TestFailure(f"unknown case {case!r}; known: {', '.join(cases)}")
        cases[case](env)
    run(main)


def run(main):
    """Runs a test main(env) with a fresh Env and maps the outcome to an exit code."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    if len(sys.argv) > 1:
        name += "-" + sys.argv[1]
    try:
        with Env(name) as env:
            main(env, *sys.argv[1:])
            env.finish()
    except TestFailure as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    print("PASS", flush=True)
