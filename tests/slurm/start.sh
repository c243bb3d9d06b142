#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for testing `snakemake --profile workflow/profiles/slurm`.
#
#   tests/slurm/start.sh [STATE_DIR]      # default /tmp/nasflow-slurm; prints STATE_DIR as its last line
#   export SLURM_CONF=STATE_DIR/slurm.conf # (or: . STATE_DIR/env) then sinfo, sbatch, snakemake ... as usual
#   tests/slurm/stop.sh [STATE_DIR]
#
# Root only (slurmd runs jobs as their user). Installs Debian's munge, slurmctld, slurmd and slurm-client when
# missing, then runs munged, slurmctld and slurmd directly (no systemd), everything — config, munge key and socket,
# spool, logs, pidfiles — under STATE_DIR, on loopback ports of its own. One thing outside it: the symlink
# /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf, because the plugin's job step drops SLURM_CONF before its nested
# `srun` (snakemake-executor-plugin-slurm#164), which then only finds the default path. start.sh refuses (exit 4)
# when /etc/slurm/slurm.conf is anything else (a real cluster's, or another live test cluster's); stop.sh
# removes the link.
# The node `$(hostname -s)` is in partition `main` and advertises 16 CPUs, 96 GB and `Gres=gpu:2` whatever the
# machine has (SlurmdParameters=config_overrides; the two "GPUs" are /dev/null device nodes): jobs asking for
# `--gpus=1` queue so that at most two run at once, get CUDA_VISIBLE_DEVICES=0 or 1, and find no GPU there (the
# stages then fall back to the CPU).
# Idempotent: when the cluster of STATE_DIR already answers it only prints STATE_DIR.
# Exit status: 0 ready; 2 not root; 3 the packages cannot be installed; 4 /etc/slurm/slurm.conf is not ours;
# 1 a daemon did not come up (see STATE_DIR/log/).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=${1:-${NASFLOW_SLURM_STATE:-/tmp/nasflow-slurm}}
HERE=$(cd "$(dirname "$0")" && pwd)
NODE=$(hostname -s)
export SLURM_CONF="$STATE/slurm.conf"

if [ "$(id -u)" != 0 ]; then
    echo "start.sh: must run as root (slurmd runs jobs as their users)" >&2
    exit 2
fi

alive() {  # the pidfile's process runs (a zombie does not count)
    local pid
    [ -s "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null \
        && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null
}

node_state() { timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 | tr -d '*~#!%$@^-'; }

if [ -f "$SLURM_CONF" ] && alive "$STATE/run/munged.pid" && alive "$STATE/run/slurmctld.pid" \
        && alive "$STATE/run/slurmd.pid" && [ "$(node_state)" != "" ]; then
    echo "$STATE"
    exit 0
fi
# a half-started or stale cluster: stop what is left, then start afresh
[ -d "$STATE" ] && "$HERE/stop.sh" "$STATE" >/dev/null

# --- packages -------------------------------------------------------------------------------------------------
missing() { for b in munged slurmctld slurmd sinfo sbatch squeue scontrol; do command -v "$b" >/dev/null || return 0; done; return 1; }
if missing; then
    pkgs="munge slurmctld slurmd slurm-client"
    export DEBIAN_FRONTEND=noninteractive
    if ! command -v apt-get >/dev/null; then
        echo "start.sh: SLURM is not installed and there is no apt-get to install $pkgs" >&2
        exit 3
    fi
    echo "start.sh: installing $pkgs" >&2
    # (invoke-rc.d may refuse to start the services: we start them ourselves below)
    if ! apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends $pkgs >"${TMPDIR:-/tmp}/nasflow-slurm-apt.log" 2>&1; then
        apt-get update -q >>"${TMPDIR:-/tmp}/nasflow-slurm-apt.log" 2>&1 || true
        apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends $pkgs >>"${TMPDIR:-/tmp}/nasflow-slurm-apt.log" 2>&1 || true
    fi
    if missing; then
        echo "start.sh: could not install $pkgs (see ${TMPDIR:-/tmp}/nasflow-slurm-apt.log)" >&2
        exit 3
    fi
fi
PLUGINDIR=$(dirname "$(find /usr/lib -name 'select_cons_tres.so' -path '*slurm*' 2>/dev/null | head -1)")

# --- state dir and ports ------------------------------------------------------------------------------------------
mkdir -p "$STATE"
chmod 700 "$STATE"
STATE=$(cd "$STATE" && pwd)
SLURM_CONF="$STATE/slurm.conf"
mkdir -p "$STATE/munge" "$STATE/run" "$STATE/log" "$STATE/ctld" "$STATE/spool"
chmod 700 "$STATE/munge"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {  # the first free port from $1 up, not in $2
    local p=$1
    while ! port_free "$p" || [ "$p" = "${2:-}" ]; do p=$((p + 1)); done
    echo "$p"
}
CTLD_PORT=${NASFLOW_SLURMCTLD_PORT:-$(pick_port 16817)}
SLURMD_PORT=${NASFLOW_SLURMD_PORT:-$(pick_port $((CTLD_PORT + 1)) "$CTLD_PORT")}

# --- /etc/slurm/slurm.conf: ours, or free (absent, or a link into a test cluster's state dir that is gone) ---------
ETC_CONF=/etc/slurm/slurm.conf
if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
    target=$(readlink "$ETC_CONF" || true)
    # free: a link to this cluster's config, or to a test cluster whose slurmctld is gone
    if [ "$target" != "$SLURM_CONF" ] && { [ -z "$target" ] || alive "$(dirname "$target")/run/slurmctld.pid"; }; then
        echo "start.sh: $ETC_CONF is taken (${target:+a link to $target, }not this test cluster's): stop that cluster" \
             "first (tests/slurm/stop.sh $(dirname "${target:-/?}")) or use a machine without a SLURM config" >&2
        exit 4
    fi
fi
mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" "$ETC_CONF"

# --- munge: its own key and socket --------------------------------------------------------------------------------
SOCKET="$STATE/munge/munge.socket"
if [ ! -s "$STATE/munge/munge.key" ]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$STATE/munge/munge.key"

cat >"$STATE/slurm.conf" <<EOF
# written by tests/slurm/start.sh: a one-node test cluster (no accounting database)
ClusterName=nasflow-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
PluginDir=$PLUGINDIR
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no accounting daemon
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# finished jobs stay visible to squeue (the status command without slurmdbd, and the test's record) for 15 min
MinJobAge=900
ReturnToService=2
KillWait=5
InactiveLimit=0
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# the node advertises what the config says, not what the machine has
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1 CPUs=16 RealMemory=96000 Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# Two fake GPUs. Slurm drops file-less gpus ("Removing file-less GPU") and wants a character device per gpu, so
# each gets a node that is /dev/null (c 1 3) under STATE_DIR/dev: slurm counts and allocates them and sets
# CUDA_VISIBLE_DEVICES to the index it picked; CUDA finds no GPU there, so the stages fall back to the CPU.
# (Where mknod is not allowed, empty files: slurm still counts them, with an error in slurmd.log, and sets no
# CUDA_VISIBLE_DEVICES.)
mkdir -p "$STATE/dev"
for i in 0 1; do
    rm -f "$STATE/dev/nvidia$i"
    mknod "$STATE/dev/nvidia$i" c 1 3 2>/dev/null || touch "$STATE/dev/nvidia$i"
done
cat >"$STATE/gres.conf" <<EOF
NodeName=$NODE Name=gpu File=$STATE/dev/nvidia[0-1]
EOF

# read only by cgroup plugins, which this cluster does not load (proctrack/linuxproc, task/none)
cat >"$STATE/cgroup.conf" <<EOF
CgroupPlugin=autodetect
IgnoreSystemd=yes
EOF

cat >"$STATE/env" <<EOF
export SLURM_CONF=$SLURM_CONF
EOF

# --- daemons --------------------------------------------------------------------------------------------------------
fail() {  # show the logs, stop whatever did start (keeping STATE_DIR for the logs), exit 1
    echo "start.sh: $1; logs in $STATE/log" >&2
    for f in "$STATE"/log/*; do echo "== $f" >&2; tail -n 5 "$f" >&2; done
    "$HERE/stop.sh" "$STATE" --keep
    exit 1
}
munged --force --socket="$SOCKET" --key-file="$STATE/munge/munge.key" --pid-file="$STATE/run/munged.pid" \
    --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed" >>"$STATE/log/munged.out" 2>&1 \
    || fail "munged did not start"
slurmctld -f "$SLURM_CONF" >>"$STATE/log/slurmctld.out" 2>&1 || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$NODE" >>"$STATE/log/slurmd.out" 2>&1 || fail "slurmd did not start"

deadline=$((SECONDS + 60))
st=""
while [ "$SECONDS" -lt "$deadline" ]; do
    for d in munged slurmctld slurmd; do
        alive "$STATE/run/$d.pid" || { sleep 1; alive "$STATE/run/$d.pid"; } || fail "$d is not running"
    done
    st=$(node_state)
    if [ "$st" = idle ] || [ "$st" = mixed ] || [ "$st" = allocated ]; then
        echo "$STATE"
        exit 0
    fi
    if [ "$st" = down ] || [ "$st" = drained ]; then
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
fail "node $NODE did not become idle within 60 s (state: '${st:-no answer}')"
