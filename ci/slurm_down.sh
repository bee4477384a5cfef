#!/usr/bin/env bash
# Stop the loopback SLURM cluster started by ci/slurm_up.sh: cancel its jobs, then kill each
# daemon by the PID in its pidfile (SIGTERM, up to STOP_WAIT_S, then SIGKILL). Idempotent:
# nothing running is not an error. Never touches a SLURM setup it did not write.
set -euo pipefail

STOP_WAIT_S=${STOP_WAIT_S:-10}
MARKER="# written by oodbench ci/slurm_up.sh"

if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARKER" /etc/slurm/slurm.conf; then
  echo "slurm_down: /etc/slurm/slurm.conf was not written by ci/slurm_up.sh; leaving it alone" >&2
  exit 1
fi

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Jobs still running (a test that timed out) would keep slurmstepd and their payload alive
# after slurmd stops; cancel them through the scheduler while it still answers.
cancel_jobs() {
  alive "$(cat /run/slurmctld.pid 2>/dev/null || true)" || return 0
  local ids
  ids=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  [ -z "$ids" ] && return 0
  echo "slurm_down: cancelling jobs" $ids
  # shellcheck disable=SC2086  # one argument per job id
  timeout 10 scancel $ids || true
  for _ in $(seq 1 $((STOP_WAIT_S * 4))); do
    [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null || true)" ] && return 0
    sleep 0.25
  done
  echo "slurm_down: jobs still running after ${STOP_WAIT_S}s" >&2
}

# $1 pidfile, $2 expected process name (guards against a recycled PID)
stop_by_pidfile() {
  local pidfile=$1 name=$2 pid
  [ -e "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if alive "$pid" && [ "$(ps -p "$pid" -o comm= 2>/dev/null)" = "$name" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((STOP_WAIT_S * 4))); do
      alive "$pid" || break
      sleep 0.25
    done
    if alive "$pid"; then
      echo "slurm_down: $name (pid $pid) ignored SIGTERM for ${STOP_WAIT_S}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "slurm_down: stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

cancel_jobs
stop_by_pidfile /run/slurmd.pid slurmd
stop_by_pidfile /run/slurmctld.pid slurmctld
stop_by_pidfile /run/munge/munged.pid munged
