#!/usr/bin/env bash
# Private session bus + PipeWire + WirePlumber with virtual devices, for tests and the demo.
#
#   harness.sh up DIR     start them with state under DIR; writes DIR/env (KEY=VALUE lines to
#                         source or parse) and DIR/pids (one recorded PID per line)
#   harness.sh down DIR   stop exactly the recorded PIDs, newest first (TERM, then KILL)
#
# Nothing is ever stopped by name. See reference/platform-notes.md §3 for why each step is
# there (session bus before WirePlumber, --nofork so the bus stays our child, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

wait_for() { # wait_for DEADLINE_SECONDS CMD... : poll a condition until it holds or time is up
        local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
        until "$@"; do
                [ "$(date +%s%N)" -lt "$deadline" ] || return 1
                sleep 0.02
        done
}

defaults_ready() {
        wpctl inspect @DEFAULT_AUDIO_SINK@ 2>/dev/null | grep -q 'node.name = "test-sink"' || return 1
        # Another device set may have no microphone at all.
        [ -n "${BWCALL_HARNESS_DEVICES:-}" ] ||
                wpctl inspect @DEFAULT_AUDIO_SOURCE@ 2>/dev/null | grep -q 'node.name = "test-mic"'
}

up() {
        local st; st=$(realpath -m "$1")
        mkdir -p "$st"
        export XDG_RUNTIME_DIR="$st/run" XDG_CONFIG_HOME="$st/config" XDG_STATE_HOME="$st/state"
        export XDG_DATA_HOME="$st/data"
        mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
        mkdir -p "$XDG_STATE_HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME/pipewire/pipewire.conf.d"
        # BWCALL_HARNESS_DEVICES: another device set (e.g. one without a microphone).
        cp "${BWCALL_HARNESS_DEVICES:-$here/test-devices.conf}" \
                "$XDG_CONFIG_HOME/pipewire/pipewire.conf.d/50-test-devices.conf"
        : > "$st/pids"
        trap 'down "$st" >/dev/null 2>&1 || true' ERR

        dbus-daemon --session --address="unix:path=$XDG_RUNTIME_DIR/bus" --nofork --nopidfile \
                > "$st/dbus.log" 2>&1 &
        echo $! >> "$st/pids"
        wait_for 5 test -S "$XDG_RUNTIME_DIR/bus" || { echo "harness: dbus-daemon did not start" >&2; exit 1; }
        export DBUS_SESSION_BUS_ADDRESS="unix:path=$XDG_RUNTIME_DIR/bus"

        pipewire > "$st/pipewire.log" 2>&1 &
        echo $! >> "$st/pids"
        wait_for 5 test -S "$XDG_RUNTIME_DIR/pipewire-0" || { echo "harness: pipewire did not start" >&2; exit 1; }

        wireplumber > "$st/wireplumber.log" 2>&1 &
        echo $! >> "$st/pids"
        wait_for 10 defaults_ready || { echo "harness: wireplumber did not pick the test devices" >&2; exit 1; }

        cat > "$st/env" <<ENV
XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR
XDG_CONFIG_HOME=$XDG_CONFIG_HOME
XDG_STATE_HOME=$XDG_STATE_HOME
XDG_DATA_HOME=$XDG_DATA_HOME
DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS
ENV
        trap - ERR
}

# A killed child of ours that was reparented stays a zombie until its new parent reaps it;
# a zombie has exited, so it counts as stopped (platform-notes §3).
stopped() {
        [ ! -e "/proc/$1" ] && return 0
        local state; state=$(sed 's/^.*) \([A-Z]\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
        [ "$state" = Z ] || [ -z "$state" ]
}

down() {
        local st; st=$(realpath -m "$1")
        [ -f "$st/pids" ] || return 0
        local pids; pids=$(tac "$st/pids")
        for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in $pids; do
                wait_for 2 stopped "$pid" || kill -KILL "$pid" 2>/dev/null || true
        done
        : > "$st/pids"
}

case "${1:-}" in
up) up "${2:?state dir}" ;;
down) down "${2:?state dir}" ;;
*) echo "usage: $0 up|down STATE_DIR" >&2; exit 2 ;;
esac
