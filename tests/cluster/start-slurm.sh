#!/usr/bin/env bash
# Start a one-node Slurm cluster on localhost (munged, slurmctld, slurmd as root) for the
# cluster test (tests/cluster/test_slurm_power.py). Debian packages: slurm-wlm, munge.
#
#   sudo bash tests/cluster/start-slurm.sh          # install if needed, write slurm.conf, start
#   bash tests/cluster/start-slurm.sh --stop        # stop the daemons this script started
#
# No accounting database: AccountingStorageType=accounting_storage/none, so `sacct` cannot
# answer and snakemake-executor-plugin-slurm must be told `--slurm-status-command squeue`
# (MinJobAge is raised so that finished jobs stay visible to squeue) and `--slurm-no-account`.
# No systemd either (containers): the daemons are started directly and write pid files.
set -euo pipefail

STATE=${SLURM_STATE_DIR:-/var/lib/crampstats-slurm}
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm

stop() {
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munged.pid"; do
        if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            kill "$(cat "$pidfile")" || true
        fi
        rm -f "$pidfile"
    done
}

if [[ ${1:-} == --stop ]]; then
    stop
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "start-slurm.sh: must run as root (daemons and /etc/slurm)" >&2
    exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE" "$CONF_DIR" "$LOG_DIR" "$STATE/ctld" "$STATE/d" /run/munge
chown munge:munge /run/munge
chmod 0755 /run/munge

# ---- munge: a key (the package creates one; make one if it did not) and the daemon ----------
if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
mkdir -p /var/log/munge /var/lib/munge
chown munge:munge /var/log/munge /var/lib/munge

stop  # a previous run's daemons, if any
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
fi
for _ in $(seq 50); do [[ -S /run/munge/munge.socket.2 ]] && break; sleep 0.1; done
cp /run/munge/munged.pid "$STATE/munged.pid" 2>/dev/null || true
munge -n | unmunge >/dev/null

# ---- slurm.conf: this machine's CPUs and memory, one node, one partition --------------------
node_line=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost/')
real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
# keep 512 MB for the daemons and the controlling snakemake
node_line=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$((real_mem > 1024 ? real_mem - 512 : real_mem))/" <<<"$node_line")
cat >"$CONF_DIR/slurm.conf" <<CONF
# Written by tests/cluster/start-slurm.sh: a one-node test cluster, no accounting.
ClusterName=crampstats
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# finished jobs stay known to slurmctld (and squeue --states=all) for an hour
MinJobAge=3600
SchedulerType=sched/backfill
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
# no cgroup confinement (proctrack/linuxproc, task/none): containers often lack cgroup control
cat >"$CONF_DIR/cgroup.conf" <<CONF
ConstrainCores=no
ConstrainRAMSpace=no
CONF

/usr/sbin/slurmctld -f "$CONF_DIR/slurm.conf"
/usr/sbin/slurmd -f "$CONF_DIR/slurm.conf" -N localhost

# wait until the node is idle (ReturnToService=2 brings it up once slurmd registers)
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    if [[ $state == idle* || $state == mixed* ]]; then
        echo "slurm: node localhost $state"
        sinfo
        exit 0
    fi
    sleep 1
done
echo "start-slurm.sh: node did not become idle (state: ${state:-unknown})" >&2
tail -n 30 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
exit 1
