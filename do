#!/usr/bin/env bash
# The one entry script.
#   ./do demo            install what is needed, build, run a real call through bwgw-sim
#   ./do test [--asan]   install, build and run every test; prints "N passed, N failed"
#   ./do bench           install, build and run the benchmarks (call set-up; jitter-buffer latency)
#   ./do build [--asan]  install and build only
#   ./do deps            install the Debian packages only
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$top"

PACKAGES=(meson ninja-build pkg-config gcc libc6-dev python3 openssl ca-certificates
          libglib2.0-dev libglib2.0-bin libsystemd-dev systemd dbus dbus-daemon
          libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
          libnice-dev gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
          gstreamer1.0-plugins-bad gstreamer1.0-nice
          libpipewire-0.3-dev pipewire pipewire-bin wireplumber
          libsoup-3.0-dev glib-networking libcurl4-openssl-dev libjson-c-dev libosip2-dev
          libcmocka-dev curl iproute2 util-linux gdb)

deps() {
        local missing=()
        for p in "${PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        echo "do: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() { # build DIR [meson options...]
        local dir=$1; shift
        if [ ! -f "$dir/build.ninja" ]; then
                meson setup "$dir" "$@"
        fi
        meson compile -C "$dir"
}

# Prints "N passed, N failed" from meson's testlog (meson's own summary is not recognised).
summary() {
        python3 - "$1" <<'PY'
import json, sys
results = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
ok = results.count("OK")
skip = results.count("SKIP")
if skip:  # on a line of its own: the last line keeps the exact "N passed, N failed" form
    print(f"{skip} skipped (see meson-logs/testlog.txt for why)")
print(f"{ok} passed, {len(results) - ok - skip} failed")
PY
}

cmd_test() {
        local dir=build setup=() log=testlog.json
        if [ "${1:-}" = "--asan" ]; then
                shift
                dir=build-asan
                setup=(--setup asan)
                log=testlog-asan.json
                deps
                build "$dir" -Db_sanitize=address,undefined -Dbuildtype=debug
        else
                deps
                build "$dir"
        fi
        local rc=0
        meson test -C "$dir" "${setup[@]}" --print-errorlogs "$@" || rc=$?
        summary "$dir/meson-logs/$log"
        return $rc
}

case "${1:-}" in
packages) echo "${PACKAGES[@]}" ;;
deps) deps ;;
build) shift; deps; if [ "${1:-}" = "--asan" ]; then build build-asan -Db_sanitize=address,undefined -Dbuildtype=debug; else build build; fi ;;
demo) shift; deps; build build; exec python3 tests/integration/demo.py --build "$top/build" "$@" ;;
test) shift; cmd_test "$@" ;;
bench) shift; deps; build build; python3 bench/bench.py --build "$top/build" "$@"
       exec python3 bench/latency.py --build "$top/build" ;;
*) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
