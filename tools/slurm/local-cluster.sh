#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd started by
# hand as root, without systemd, from a clean state folder each time.
#
#   tools/slurm/local-cluster.sh start|stop|status
#   export SLURM_CONF=$QEXP_SLURM_STATE/slurm.conf   # for sbatch, squeue, scontrol
#
# QEXP_SLURM_STATE: the state folder (default /tmp/qexp-slurm); QEXP_SLURM_PORT: slurmctld's port
# (default 6817; slurmd uses the next one). Needs the Debian packages slurmctld slurmd
# slurm-client munge (tools/install-deps.sh). The daemons run in the foreground of background
# processes whose pids are kept in $state/pids: Slurm removes its own pid files before the process
# exits, so stopping by pid and waiting on /proc is the only reliable "it is gone".
set -euo pipefail
umask 022  # munged wants its socket folder 0755

state=${QEXP_SLURM_STATE:-/tmp/qexp-slurm}
port=${QEXP_SLURM_PORT:-6817}
conf=$state/slurm.conf
socket=$state/munge/munge.socket
daemons=(munged slurmctld slurmd)  # start order; stopped in reverse
export SLURM_CONF=$conf

log() { echo "local-cluster: $*" >&2; }

# True while the process exists and is not a zombie (an orphan may wait to be reaped by pid 1).
alive() {
  local pid=$1 s
  [[ -r /proc/$pid/stat ]] || return 1
  s=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $s && $s != Z && $s != X ]]
}

pid_of() { [[ -s $state/pids/$1 ]] && cat "$state/pids/$1"; }

stop_daemon() {
  local name=$1 pid
  pid=$(pid_of "$name") || return 0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    fi
  fi
  alive "$pid" && { log "$name (pid $pid) did not stop"; return 1; }
  rm -f "$state/pids/$name"
  log "stopped $name (pid $pid)"
}

stop() {
  local rc=0 i pid
  # Jobs first: slurmd leaves running job steps (slurmstepd and the job's processes) behind.
  if pid=$(pid_of slurmctld) && alive "$pid" && [[ -n $(squeue -h -o %A 2>/dev/null) ]]; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 150); do [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break; sleep 0.1; done
  fi
  for ((i = ${#daemons[@]} - 1; i >= 0; i--)); do stop_daemon "${daemons[i]}" || rc=1; done
  return $rc
}

# Runs a daemon in the foreground of a background process and records its pid.
launch() {
  local name=$1; shift
  setsid "$@" > "$state/log/$name.out" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}

wait_for() {
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what not ready after $seconds s; logs in $state/log:"
  tail -n 20 "$state"/log/* >&2 || true
  return 1
}

write_conf() {
  local host mem_mb cpus
  host=$(hostname -s)
  cpus=$(nproc)
  # Slurm drains a node whose real memory is below the configured one: leave a margin.
  mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$conf" <<EOF
# Written by tools/slurm/local-cluster.sh: one node, no accounting, no cgroups.
ClusterName=qexp-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  for name in "${daemons[@]}"; do
    if pid=$(pid_of "$name") && alive "$pid"; then
      log "$name is already running (pid $pid); run '$0 stop' first"
      return 1
    fi
  done
  for bin in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$bin" > /dev/null || { log "$bin not found: install slurmctld slurmd slurm-client munge (tools/install-deps.sh)"; return 1; }
  done
  [[ $(id -u) -eq 0 ]] || { log "must run as root (slurmd starts jobs as their users)"; return 1; }

  # A clean state folder each time: a stale controller state replays old jobs.
  rm -rf "$state" || return 1
  mkdir -p "$state"/{pids,log,run,ctld,slurmd,munge} || return 1
  chmod 755 "$state" "$state/munge" && chown munge:munge "$state/munge" || return 1
  write_conf || return 1

  # Inside `start || ...` set -e is off: each step that can fail returns by hand.
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none || return 1
  chown munge:munge "$state/munge/munge.key" && chmod 0400 "$state/munge/munge.key" || return 1
  launch munged setpriv --reuid=munge --regid=munge --clear-groups \
    munged --foreground --force --key-file="$state/munge/munge.key" --socket="$socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
  wait_for munged 10 bash -c "munge -n -S '$socket' | unmunge -S '$socket'" || return 1

  launch slurmctld slurmctld -D -i -f "$conf"
  wait_for slurmctld 20 bash -c "scontrol ping | grep -q 'is UP'" || return 1
  launch slurmd slurmd -D -N "$(hostname -s)" -f "$conf"
  wait_for "slurmd (node idle)" 30 bash -c "sinfo -h -N -o '%T' | grep -qx 'idle'" || return 1
  log "up: $(sinfo -h -o '%P %a %D %T' | tr '\n' ' ')(export SLURM_CONF=$conf)"
}

status() {
  local rc=0 name pid
  for name in "${daemons[@]}"; do
    if pid=$(pid_of "$name") && alive "$pid"; then
      echo "$name: running (pid $pid)"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  if ((rc == 0)); then
    scontrol ping 2>&1 | sed 's/^/  /'
    sinfo 2>&1 | sed 's/^/  /'
  fi
  echo "SLURM_CONF=$conf"
  return $rc
}

case ${1:-} in
  start) start || { rc=$?; log "start failed; stopping what started"; stop || true; exit $rc; } ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status   (state folder: \$QEXP_SLURM_STATE, default /tmp/qexp-slurm)" >&2; exit 2 ;;
esac
