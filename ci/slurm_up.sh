#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on 127.0.0.1 with fake GPUs, for CI only.
#
# Debian 12 (slurm 22.05 + munge), run as root, no init system needed: every daemon is
# started by hand and records a pidfile that ci/slurm_down.sh kills. Idempotent: a cluster
# this script started earlier is torn down and its state wiped before starting again.
#
# Settings (environment):
#   NGPU=4          fake GPUs on the node (symlinks to /dev/null in gres.conf; 0 = none)
#   GPU_TYPE=       optional GRES type (e.g. h200) so that `gpu_model` requests can be tested
#   PART=debug      name of the single (default) partition
#   SKIP_APT=0      1 = never call apt-get (packages must already be installed)
#   WAIT_S=30       how long to wait for the node to become idle
#
# Never run this on a machine with a real SLURM installation: it refuses to overwrite a
# slurm.conf that it did not write itself.
set -euo pipefail

NGPU=${NGPU:-4}
GPU_TYPE=${GPU_TYPE:-}
PART=${PART:-debug}
SKIP_APT=${SKIP_APT:-0}
WAIT_S=${WAIT_S:-30}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MARKER="# written by oodbench ci/slurm_up.sh"
PACKAGES="slurmctld slurmd slurm-client munge"
LOGDIR=/var/log/slurm
T0=$(date +%s.%N)

die() { echo "slurm_up: $*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
if [ -e /etc/slurm/slurm.conf ] && ! grep -qF "$MARKER" /etc/slurm/slurm.conf; then
  die "/etc/slurm/slurm.conf exists and was not written by this script; refusing to replace a real SLURM setup"
fi

# A previous cluster of ours (running or crashed) is stopped first, so state never leaks.
"$HERE/slurm_down.sh" >/dev/null

install_packages() {
  local missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && { echo "slurm_up: packages already installed"; return; }
  [ "$SKIP_APT" = 1 ] && die "missing packages:$missing (SKIP_APT=1)"
  echo "slurm_up: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update >/var/log/ci_slurm_apt.log 2>&1 ||
    die "apt-get update failed, see /var/log/ci_slurm_apt.log"
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  timeout 600 apt-get install -y --no-install-recommends $missing >>/var/log/ci_slurm_apt.log 2>&1 ||
    die "apt-get install failed, see /var/log/ci_slurm_apt.log"
}

start_munge() {
  # The Debian postinst creates the key; recreate it if the package was installed without one.
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 755 /run/munge
  runuser -u munge -- /usr/sbin/munged # daemonizes, writes /run/munge/munged.pid
  munge -n | unmunge >/dev/null || die "munge does not round-trip a credential"
}

# Node topology copied from what slurmd detects: a mismatch (RealMemory above the real
# value in particular) drains the node.
detect_node() {
  slurmd -C | head -1 | tr ' ' '\n' | awk -F= '
    /^CPUs=/{c=$2} /^Boards=/{b=$2} /^SocketsPerBoard=/{s=$2}
    /^CoresPerSocket=/{k=$2} /^ThreadsPerCore=/{t=$2} /^RealMemory=/{m=$2}
    END{print c, b, s, k, t, int(m * 0.9)}'
}

write_config() {
  local host=$1 cpus=$2 boards=$3 spb=$4 cps=$5 tpc=$6 mem=$7 gres_node="" gres_types="" type_field=""
  install -d /etc/slurm
  install -d -o slurm -g slurm /var/spool/slurmctld "$LOGDIR"
  install -d /var/spool/slurmd
  rm -f /etc/slurm/gres.conf
  if [ "$NGPU" -gt 0 ]; then
    # SLURM drops file-less GPUs and rejects regular files; a symlink to a character device works.
    install -d /etc/slurm/fakegpu
    for i in $(seq 0 $((NGPU - 1))); do ln -sfn /dev/null "/etc/slurm/fakegpu/gpu$i"; done
    [ -n "$GPU_TYPE" ] && type_field=" Type=$GPU_TYPE"
    printf '%s\nAutoDetect=off\nNodeName=%s Name=gpu%s File=/etc/slurm/fakegpu/gpu[0-%d]\n' \
      "$MARKER" "$host" "$type_field" $((NGPU - 1)) >/etc/slurm/gres.conf
    gres_types="GresTypes=gpu"
    gres_node="Gres=gpu${GPU_TYPE:+:$GPU_TYPE}:$NGPU"
  fi
  # MinJobAge=300 keeps finished jobs visible to squeue, which the Snakemake plugin polls
  # instead of sacct (there is no accounting daemon here). DefMemPerCPU stops a job without
  # --mem from taking the whole node.
  cat >/etc/slurm/slurm.conf <<EOC
$MARKER
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
MinJobAge=300
${gres_types}
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} Boards=${boards} SocketsPerBoard=${spb} CoresPerSocket=${cps} ThreadsPerCore=${tpc} RealMemory=${mem} ${gres_node} State=UNKNOWN
PartitionName=${PART} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
}

wait_for_idle() {
  local deadline=$(($(date +%s) + WAIT_S))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && return 0
    sleep 0.25
  done
  scontrol show node >&2 || true
  tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
  die "node not idle after ${WAIT_S}s (logs above)"
}

install_packages
command -v slurmd >/dev/null || die "slurmd not found after install"
start_munge
HOST=$(hostname -s)
read -r CPUS BOARDS SPB CPS TPC MEM < <(detect_node)
write_config "$HOST" "$CPUS" "$BOARDS" "$SPB" "$CPS" "$TPC" "$MEM"
# Stale node states (DRAIN/INVAL) survive restarts in the spool: always start from empty.
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
rm -f "$LOGDIR"/slurmctld.log "$LOGDIR"/slurmd.log
slurmctld # daemonizes, writes /run/slurmctld.pid
slurmd    # daemonizes, writes /run/slurmd.pid
wait_for_idle

echo "slurm_up: started in $(elapsed)s on ${HOST} (127.0.0.1):"
echo "  munged     pid $(cat /run/munge/munged.pid)"
echo "  slurmctld  pid $(cat /run/slurmctld.pid)  log $LOGDIR/slurmctld.log"
echo "  slurmd     pid $(cat /run/slurmd.pid)  log $LOGDIR/slurmd.log"
echo "  $(sinfo -h -o 'partition=%P nodes=%N cpus=%c mem=%mMB gres=%G state=%T')"
echo "  stop with: $HERE/slurm_down.sh"
