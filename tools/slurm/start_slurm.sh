#!/usr/bin/env bash
# Bring up a single-node SLURM cluster (munge + MariaDB + slurmdbd + slurmctld + slurmd)
# on this machine, from nothing, idempotently. Debian 12 (bookworm) packages, run as root.
# The harness's SLURM tests (tests/test_scaleout_slurm.py) and `harness run --executor slurm`
# run against it; .ci/run starts it before the test suite and stops it after.
# There is no systemd here: every daemon is started in the background by hand.
#   SLURM_ROOT   where state, spool, logs and PID files live     [/tmp/slurm]
#   SLURM_DBD    1: accounting via slurmdbd+MariaDB (sacct works; submitit needs it)  [1]
#   FAKE_GPUS    N fake GPUs as GRES (char devices, CUDA_VISIBLE_DEVICES gets set); 0: none [2]
#   SLURM_CLEAN  1: forget jobs and accounting of a previous run (cluster must be stopped) [0]
#   WAIT_S       seconds to wait for the node to become idle     [90]
# Every daemon it starts gets its PID recorded in $SLURM_ROOT/run/<name>.pid; stop_slurm.sh
# stops exactly those. Daemons already running (ours from an earlier call) are left alone.
set -euo pipefail
ROOT=${SLURM_ROOT:-/tmp/slurm}
DBD=${SLURM_DBD:-1}
NGPU=${FAKE_GPUS:-2}
CLEAN=${SLURM_CLEAN:-0}
WAIT_S=${WAIT_S:-90}
ETC=/etc/slurm
RUN=$ROOT/run
NODE=$(hostname -s)
T0=$(date +%s%N)
log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[start_slurm %d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"; }
die() { log "ERROR: $*"; for f in slurmctld slurmd slurmdbd; do [ -f "$ROOT/log/$f.log" ] && tail -n 15 "$ROOT/log/$f.log" >&2; done; exit 1; }

. "$(dirname "${BASH_SOURCE[0]}")/pids.sh"
# wait_for SECONDS CMD...: retry CMD every 0.2 s
wait_for() { local n=$(( $1 * 5 )); shift; while ! "$@" >/dev/null 2>&1; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.2; done; }

# ---- 1. packages -----------------------------------------------------------------------------
PKGS="munge slurmctld slurmd slurm-client"
[ "$DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # no systemd here: policy-rc.d denies the postinst service starts, which is what we want
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
log "packages ok: slurm $(dpkg-query -W -f='${Version}' slurmctld), munge $(dpkg-query -W -f='${Version}' munge)"

mkdir -p "$RUN" "$ROOT/state" "$ROOT/spool" "$ROOT/log"
if [ "$CLEAN" = 1 ]; then   # forget jobs: controller state and the accounting DB go together
  if alive slurmctld || alive slurmdbd || alive mariadbd; then die "SLURM_CLEAN=1 needs stop_slurm.sh first"; fi
  rm -rf "${ROOT:?}/state/"* "${ROOT:?}/mysql"
fi

# ---- 2. config -------------------------------------------------------------------------------
changed=0
put() {  # put FILE MODE: write stdin to FILE if its content differs
  local tmp; tmp=$(mktemp); cat >"$tmp"
  if ! cmp -s "$tmp" "$1"; then install -m "$2" "$tmp" "$1"; changed=1; fi
  rm -f "$tmp"
}
mkdir -p "$ETC"
HW=$(slurmd -C | head -n1)                  # NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105
MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$HW")
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$HW")
TOPO=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$HW")
GRES_NODE=""; GRES_TYPES=""
if [ "$NGPU" -gt 0 ]; then
  mkdir -p "$ROOT/fakegpu"
  for i in $(seq 0 $((NGPU - 1))); do
    [ -c "$ROOT/fakegpu/nvidia$i" ] || { rm -f "$ROOT/fakegpu/nvidia$i"; mknod "$ROOT/fakegpu/nvidia$i" c 195 "$i"; }
  done
  GRES_NODE=" Gres=gpu:$NGPU"; GRES_TYPES="GresTypes=gpu"
  echo "NodeName=$NODE Name=gpu File=$ROOT/fakegpu/nvidia[0-$((NGPU - 1))]" | put "$ETC/gres.conf" 644
else
  : | put "$ETC/gres.conf" 644
fi
if [ "$DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
AccountingStorageTRES=gres/gpu"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
put "$ETC/slurm.conf" 644 <<EOF
# written by start_slurm.sh
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
StateSaveLocation=$ROOT/state
SlurmdSpoolDir=$ROOT/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS $TOPO RealMemory=$((MEM * 95 / 100))$GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
if [ "$DBD" = 1 ]; then
  put "$ETC/slurmdbd.conf" 600 <<EOF
# written by start_slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
LogFile=$ROOT/log/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
fi
log "config ok (node $NODE, CPUs=$CPUS, RealMemory=$((MEM * 95 / 100)), fake GPUs=$NGPU, changed=$changed)"

# ---- 3. munged -------------------------------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$RUN/munged.pid"
  wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not come up"
  log "munged started, pid $(cat "$RUN/munged.pid")"
else
  log "munged already running"
fi

# ---- 4. MariaDB + slurmdbd (private datadir under $ROOT, default socket) ---------------------
if [ "$DBD" = 1 ]; then
  SOCK=/run/mysqld/mysqld.sock
  if ! mariadb-admin --socket=$SOCK ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if [ ! -d "$ROOT/mysql/mysql" ]; then
      mariadb-install-db --user=mysql --datadir="$ROOT/mysql" --auth-root-authentication-method=socket \
        --skip-test-db >"$ROOT/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed"
    fi
    # pid/log must be writable by user mysql (pitfall: a root-owned dir makes mariadbd exit at once)
    setsid -f /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$ROOT/mysql" --socket=$SOCK \
      --pid-file=/run/mysqld/mariadbd.pid --skip-networking --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
      --innodb-use-native-aio=0 --log-error="$ROOT/mysql/error.log" </dev/null >/dev/null 2>&1
    wait_for 60 mariadb-admin --socket=$SOCK ping || die "mariadbd did not come up (see $ROOT/mysql/error.log)"
    cp /run/mysqld/mariadbd.pid "$RUN/mariadbd.pid"
    log "mariadbd started, pid $(cat "$RUN/mariadbd.pid")"
  else
    log "a MariaDB is already answering on $SOCK"
  fi
  if ! alive slurmdbd slurmdbd; then
    /usr/sbin/slurmdbd
    wait_for 10 test -s "$RUN/slurmdbd.pid" || die "slurmdbd wrote no PID file"
    log "slurmdbd started, pid $(cat "$RUN/slurmdbd.pid")"
  elif [ $changed = 1 ]; then
    kill -HUP "$(cat "$RUN/slurmdbd.pid")"
  fi
  # sacctmgr needs slurm.conf's AccountingStorageType=slurmdbd (written above) to talk to slurmdbd
  wait_for 60 sacctmgr -n list cluster || die "slurmdbd does not answer"
  log "slurmdbd answers"
fi

# ---- 5. slurmctld + slurmd -------------------------------------------------------------------
stop_ours() {  # stop_ours NAME: TERM a daemon we started, wait until it is gone
  local pid; pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 0
  pid_alive "$pid" "$1" || return 0
  kill "$pid"
  local n=100; while pid_alive "$pid" "$1" && [ $n -gt 0 ]; do sleep 0.2; n=$((n - 1)); done
  rm -f "$RUN/$1.pid"
}
if [ $changed = 1 ]; then stop_ours slurmd; stop_ours slurmctld; fi
if ! alive slurmctld slurmctld; then
  /usr/sbin/slurmctld
  wait_for 30 scontrol ping || die "slurmctld does not answer"
  log "slurmctld started, pid $(cat "$RUN/slurmctld.pid")"
fi
if ! alive slurmd slurmd; then
  /usr/sbin/slurmd
  wait_for 10 test -s "$RUN/slurmd.pid" || die "slurmd wrote no PID file"
  log "slurmd started, pid $(cat "$RUN/slurmd.pid")"
fi

# ---- 6. wait until the node is idle ----------------------------------------------------------
resumed=0
end=$(( $(date +%s) + WAIT_S ))
while :; do
  st=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)
  case "$st" in
    idle|mix|alloc) break ;;
    *drain*|down*|inval*|fail*)
      if [ $resumed = 0 ]; then
        log "node is '$st' ($(sinfo -h -N -n "$NODE" -o %E)), resuming it"
        scontrol update nodename="$NODE" state=resume || true; resumed=1
      fi ;;
  esac
  [ "$(date +%s)" -lt "$end" ] || die "node $NODE not idle after ${WAIT_S}s (state '$st')"
  sleep 0.2
done
log "cluster up: node $NODE is $st"
sinfo -N -o '%N %t %c %m %G'
