#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start.sh started in STATE_DIR (default /tmp/nasflow-slurm): cancel its
# jobs, kill slurmd, slurmctld and munged by the PIDs in STATE_DIR/run, remove the /etc/slurm/slurm.conf link if it
# points into STATE_DIR, and remove STATE_DIR. Idempotent.
#   tests/slurm/stop.sh [STATE_DIR] [--keep]    # --keep: leave STATE_DIR (logs) in place
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=${1:-${NASFLOW_SLURM_STATE:-/tmp/nasflow-slurm}}
KEEP=${2:-}
[ -d "$STATE" ] || exit 0
STATE=$(cd "$STATE" && pwd)
export SLURM_CONF="$STATE/slurm.conf"

alive() {  # the pidfile's process runs (a zombie does not count)
    local pid
    [ -s "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null \
        && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

# this cluster's job steps: slurmstepd processes forked by its slurmd, which start.sh ran with SLURM_CONF=ours
steps() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && echo "${p#/proc/}"
    done
}

if alive "$STATE/run/slurmctld.pid"; then
    timeout 10 scancel --quiet --partition=main >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do   # let slurm end the jobs (KillWait=5) before its daemons go
        [ -z "$(steps)" ] && break
        sleep 0.2
    done
fi

stop_pid() {  # TERM, wait up to 10 s, then KILL; only the process named in the pidfile, and only if its command
    local pidfile=$1 name=$2 pid   # still is `name` (a stale pidfile must not kill an unrelated process)
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! kill -0 "$pid" 2>/dev/null || ! grep -q "$name" "/proc/$pid/comm" 2>/dev/null; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$pidfile"
}

stop_pid "$STATE/run/slurmd.pid" slurmd
stop_pid "$STATE/run/slurmctld.pid" slurmctld
stop_pid "$STATE/run/munged.pid" munged

# steps that outlived their slurmd (it was not answering): TERM ends their job, KILL whatever is left
left=$(steps)
if [ -n "$left" ]; then
    kill -TERM $left 2>/dev/null
    sleep 2
    left=$(steps)
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
fi

# the link start.sh made, if it still is ours
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$SLURM_CONF" ] && rm -f /etc/slurm/slurm.conf

[ "$KEEP" = --keep ] || rm -rf "$STATE"
exit 0
