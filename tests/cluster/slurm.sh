#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for the tests (tests/cluster/conftest.py starts and stops it).
#   slurm.sh install   apt-get install slurm-wlm munge where absent (only as root)
#   slurm.sh up DIR    write DIR/slurm.conf and a munge key, start munged, slurmctld and slurmd (all state, logs
#                      and pid files in DIR), wait until sinfo shows the node idle; clients need SLURM_CONF=DIR/slurm.conf
#   slurm.sh down DIR  cancel the cluster's jobs, stop the three daemons by their pid files
# Exit 77 with a one-line reason on stderr: Slurm cannot be had here (tests skip). jobcomp/filetxt writes one line per
# finished job to DIR/jobcomp.txt (the scheduler's own record); no accounting database.
set -uo pipefail
PORTS=${PORELAB_SLURM_PORTS:-16817-16818}  # slurmctld, slurmd: off Slurm's defaults, clear of a real installation

skip() { echo "$*" >&2; exit 77; }
have() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
  && command -v munged >/dev/null; }

install() {
  have && return 0
  command -v apt-get >/dev/null || skip "no Slurm/munge and no apt-get to install them"
  [ "$(id -u)" = 0 ] || skip "no Slurm/munge, and installing them (apt-get) needs root"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurm-wlm munge; } >/dev/null 2>&1 || skip "apt-get install slurm-wlm munge failed"
  have || skip "slurm-wlm and munge installed, but slurmctld, slurmd, sbatch or munged is still missing"
}

# start a daemon (it detaches; its early messages in DIR/log/<name>.start), or skip with its last message
start() {
  "$@" </dev/null >"$d/log/$1.start" 2>&1 \
    || skip "$1 did not start: $(cat "$d/log/$1.start" "$d/log/$1.log" 2>/dev/null | grep . | tail -n 1)"
}

up() {
  local d=$1 host cpus mem
  install
  [ "$(id -u)" = 0 ] || skip "the test cluster runs its daemons as root (SlurmUser=root); not root here"
  mkdir -p "$d"/munge "$d"/state "$d"/spool "$d"/log && chmod 700 "$d" "$d"/munge
  head -c 1024 /dev/urandom > "$d"/munge/munge.key && chmod 400 "$d"/munge/munge.key
  start munged --force --socket="$d"/munge/munge.socket --key-file="$d"/munge/munge.key \
    --pid-file="$d"/munge/munged.pid --log-file="$d"/log/munged.log --seed-file="$d"/munge/munged.seed
  host=$(hostname -s)
  cpus=$(slurmd -C | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
  mem=$(slurmd -C | sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p')
  cat > "$d"/slurm.conf <<EOF
ClusterName=porelab-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${PORTS%-*}
SlurmdPort=${PORTS#*-}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobCompType=jobcomp/filetxt
JobCompLoc=$d/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=2
MinJobAge=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$d/slurm.conf
  start slurmctld -f "$SLURM_CONF"
  start slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ] && return 0
    sleep 1
  done
  skip "the Slurm node is not idle after 60 s (sinfo: $(sinfo -h -N -o '%t %E' 2>&1 | head -n 1))"
}

down() {
  local d=$1 f pid pids=
  if [ -f "$d"/slurm.conf ] && [ -f "$d"/slurmctld.pid ]; then
    export SLURM_CONF=$d/slurm.conf
    scancel --user="$(id -un)" 2>/dev/null
    for _ in $(seq 20); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  for f in slurmd.pid slurmctld.pid munge/munged.pid; do  # each daemon this cluster started, by its pid file
    pid=$(cat "$d/$f" 2>/dev/null) && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$(basename "$f" .pid)" ] \
      && pids="$pids $pid"
  done
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  for pid in $pids; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  return 0
}

case ${1:-} in
  install) install ;;
  up) [ -n "${2:-}" ] || { echo "usage: $0 up DIR" >&2; exit 2; }; up "$(realpath -m "$2")" ;;
  down) [ -n "${2:-}" ] || { echo "usage: $0 down DIR" >&2; exit 2; }; down "$(realpath -m "$2")" ;;
  *) echo "usage: $0 install | up DIR | down DIR" >&2; exit 2 ;;
esac
