#!/usr/bin/env bash
# A one-node SLURM on this machine, for trying the SLURM launchers and for their tests
# (Debian: apt-get install slurm-wlm munge). No systemd: every daemon runs as this user, keeps
# its files under DIR and is stopped by its PID.
#
#   scripts/slurm_local.sh up DIR     # start munged, slurmctld, slurmd; print `export SLURM_CONF=...`
#   scripts/slurm_local.sh down DIR   # stop them
#
# Ports are chosen free per start, so two test runs cannot collide. A second `up` into a DIR
# whose daemons still run is refused: slurmctld would kill the running one through its pid file.
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
command=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

down() {
  for daemon in slurmd slurmctld munged; do
    if alive "$dir/$daemon.pid"; then kill "$(cat "$dir/$daemon.pid")"; fi
  done
  for _ in $(seq 1 50); do  # until each has gone (slurmctld saves its state first)
    alive "$dir/slurmd.pid" || alive "$dir/slurmctld.pid" || alive "$dir/munged.pid" || return 0
    sleep 0.1
  done
  echo "slurm_local: a daemon under $dir did not stop" >&2
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
  for daemon in munged slurmctld slurmd; do
    if ! command -v "$daemon" >/dev/null; then
      echo "slurm_local: $daemon is not installed (Debian: apt-get install slurm-wlm munge)" >&2
      return 2
    fi
    if alive "$dir/$daemon.pid"; then
      echo "slurm_local: $daemon already runs under $dir; run '$0 down $dir' first" >&2
      return 2
    fi
  done
  mkdir -p "$dir/munge-socket" "$dir/munge-key" "$dir/state" "$dir/spool" "$dir/log"
  chmod 755 "$dir/munge-socket"  # munged refuses a socket directory others may write
  chmod 700 "$dir/munge-key"     # and a key others may read
  if [ ! -f "$dir/munge-key/munge.key" ]; then
    head -c 1024 /dev/urandom > "$dir/munge-key/munge.key"
    chmod 400 "$dir/munge-key/munge.key"
  fi
  munged --force --socket="$dir/munge-socket/munge.socket" --key-file="$dir/munge-key/munge.key" \
    --log-file="$dir/log/munged.log" --pid-file="$dir/munged.pid" --seed-file="$dir/munged.seed"
  local host memory
  host=$(hostname)
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$dir/slurm.conf" <<EOF
ClusterName=makemorelab
SlurmctldHost=$host
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (120 s by default)
AuthInfo=socket=$dir/munge-socket/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
# Where cgroups are not available (containers): track processes by their parent pid.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF"
  for _ in $(seq 1 100); do  # about 1-2 s until the node reports idle
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.1
  done
  echo "slurm_local: the node did not come up; see $dir/log/" >&2
  down
  return 1
}

case $command in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
