#!/usr/bin/env bash
# Bring up a single-node Son of Grid Engine (Debian gridengine 8.1.9) cluster as root,
# without systemd: sge_qmaster + sge_execd on this host, queue all.q, and a parallel
# environment `smp` ($pe_slots: all slots on one host) so that
#   qsub -sync y -pe smp 4 job.sh
# works. Idempotent: safe to run again (running daemons are kept, config is re-applied).
#
#   bash ci/clusters/start-sge.sh
#   export SGE_ROOT=/var/lib/gridengine SGE_CELL=default   # then qsub/qstat/qconf work
#   (or: . /var/lib/gridengine/default/common/settings.sh)
#
# Env knobs: SGE_CI_SLOTS (slots of all.q and of PE smp, default 16),
#            SGE_CI_TIMEOUT (seconds to wait for each step, default 60)
set -euo pipefail
LOG_TAG=start-sge
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SLOTS=${SGE_CI_SLOTS:-16}
TIMEOUT=${SGE_CI_TIMEOUT:-60}
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
H=$(hostname)
COMMON=$SGE_ROOT/$SGE_CELL/common
EXECD_PID=/run/gridengine/execd.pid
QMASTER_PID=/var/spool/gridengine/qmaster/qmaster.pid
die() {
  log "ERROR: $*"
  for f in /var/spool/gridengine/qmaster/messages /var/spool/gridengine/execd/*/messages; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
[ "$(id -u)" = 0 ] || die "must run as root"

# --- 1. install (debconf is preseeded by ensure_packages: cell "default", master = $H) --
ensure_packages "${SGE_PKGS[@]}" || die "package installation failed"

# SGE needs the hostname to resolve.
getent hosts "$H" >/dev/null || { log "adding $H to /etc/hosts"; echo "127.0.0.1 $H" >> /etc/hosts; }

if [ ! -f "$COMMON/act_qmaster" ]; then
  log "initialising cell (postinst did not)"
  install -d -o sgeadmin -g sgeadmin -m 755 /var/spool/gridengine/qmaster /var/spool/gridengine/qmaster/job_scripts /var/spool/gridengine/spooldb
  su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL /var/spool/gridengine/spooldb sgeadmin" sgeadmin
fi
[ "$(cat "$COMMON/act_qmaster")" = "$H" ] || echo "$H" > "$COMMON/act_qmaster"

# The classic SGE pitfall: $H resolves to 127.0.0.1, whose reverse name is "localhost",
# so qmaster and clients disagree about the host name ("access denied (client IP
# resolved to host name localhost ...)"). host_aliases maps every such name onto $H.
IP=$(getent hosts "$H" | awk '{print $1; exit}')
REV=$(/usr/lib/gridengine/gethostbyaddr "$IP" 2>/dev/null | awk '/^Hostname:/{print $2}' || true)
ALIASES="$H"
for n in "$REV" localhost; do
  [ -n "$n" ] && [ "$n" != "$H" ] && case " $ALIASES " in *" $n "*) ;; *) ALIASES="$ALIASES $n" ;; esac
done
if [ "$ALIASES" != "$H" ] && [ "$(cat "$COMMON/host_aliases" 2>/dev/null)" != "$ALIASES" ]; then
  log "host_aliases: $ALIASES"
  echo "$ALIASES" > "$COMMON/host_aliases"
fi

wait_for() {  # wait_for <what> <command...>
  local what=$1; shift; local i
  for ((i = 0; i < TIMEOUT * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what not ready after ${TIMEOUT}s"
}

# --- 2. qmaster (daemonizes, writes its own pid file) --------------------------------
if ! qconf -sh >/dev/null 2>&1; then
  if ! pid_alive "$QMASTER_PID"; then
    log "starting sge_qmaster"
    setsid /usr/sbin/sge_qmaster </dev/null >/dev/null 2>&1 || die "sge_qmaster failed to start"
  fi
  wait_for "sge_qmaster" qconf -sh
fi

# --- 3. cluster configuration (idempotent) -------------------------------------------
EDIT=$(mktemp -d)
trap 'rm -rf "$EDIT"' EXIT
# root may submit jobs (default min_uid/min_gid 100): qconf -mconf only through $EDITOR
if qconf -sconf global | grep -Eq '^min_(u|g)id +[1-9]'; then
  printf '#!/bin/sh\nsed -i -e "s/^min_uid .*/min_uid 0/" -e "s/^min_gid .*/min_gid 0/" "$1"\n' > "$EDIT/ed.sh"
  chmod +x "$EDIT/ed.sh"
  EDITOR="$EDIT/ed.sh" qconf -mconf global >/dev/null
fi
qconf -ss 2>/dev/null | grep -qx "$H" || qconf -as "$H" >/dev/null
# scheduler: dispatch within ~1 s and ignore load (CI shares few cores with other work)
qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
  -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
  -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
  -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time 0:0:0/' > "$EDIT/sconf"
qconf -Msconf "$EDIT/sconf" >/dev/null

# --- 4. execd (registers itself as exec host because $H is an admin host) ---------
if ! pid_alive "$EXECD_PID"; then
  log "starting sge_execd"
  install -d -o sgeadmin -g sgeadmin -m 755 /run/gridengine
  SGE_EXECD_PIDFILE=$EXECD_PID setsid /usr/sbin/sge_execd </dev/null >/dev/null 2>&1 || die "sge_execd failed to start"
fi
wait_for "exec host $H" sh -c "qconf -sel | grep -qx '$H'"

if ! qconf -shgrp @allhosts >/dev/null 2>&1; then
  printf 'group_name @allhosts\nhostlist %s\n' "$H" > "$EDIT/hgrp"
  qconf -Ahgrp "$EDIT/hgrp" >/dev/null
fi
# PE smp: all slots of a job on one host ($pe_slots), like `-pe smp N` on real sites.
# Re-applied on every start so a changed SGE_CI_SLOTS takes effect.
cat > "$EDIT/pe" <<EOF
pe_name            smp
slots              $SLOTS
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    \$pe_slots
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
if qconf -sp smp >/dev/null 2>&1; then qconf -Mp "$EDIT/pe" >/dev/null; else qconf -Ap "$EDIT/pe" >/dev/null; fi
# queue all.q: dump qconf's own template via a fake $EDITOR, then patch it
printf '#!/bin/sh\ncp "$1" %s/q.tmpl\n' "$EDIT" > "$EDIT/dump.sh"; chmod +x "$EDIT/dump.sh"
if qconf -sq all.q >/dev/null 2>&1; then qconf -sq all.q > "$EDIT/q.tmpl"; else EDITOR="$EDIT/dump.sh" qconf -aq all.q >/dev/null 2>&1 || true; fi
[ -s "$EDIT/q.tmpl" ] || die "could not obtain a queue template"
sed -e 's/^qname .*/qname all.q/' -e 's/^hostlist .*/hostlist @allhosts/' -e "s/^slots .*/slots $SLOTS/" \
  -e 's/^pe_list .*/pe_list smp/' -e 's/^load_thresholds .*/load_thresholds NONE/' \
  -e 's#^shell .*#shell /bin/bash#' "$EDIT/q.tmpl" > "$EDIT/q"
if qconf -sq all.q >/dev/null 2>&1; then qconf -Mq "$EDIT/q" >/dev/null; else qconf -Aq "$EDIT/q" >/dev/null; fi

# --- 5. wait for the queue instance and smoke-test ----------------------------------
queue_ok() {  # queue instance exists, host reports load (not -NA-), no u/E/d/a state
  local line; line=$(qstat -f -q "all.q@$H" 2>/dev/null | grep "^all.q@") || return 1
  echo "$line" | grep -q -- '-NA-' && return 1
  [ "$(echo "$line" | awk '{print NF}')" -le 5 ]   # a 6th column means a state flag
}
wait_for "queue all.q@$H" queue_ok
qmod -c "all.q@$H" >/dev/null 2>&1 || true   # clear a leftover error state
SMOKE=$(mktemp -d)
if ! (cd "$SMOKE" && timeout "$TIMEOUT" qsub -sync y -b y -cwd -j y -o smoke.out hostname >/dev/null 2>&1); then
  rm -rf "$SMOKE"; die "smoke job did not run within ${TIMEOUT}s"
fi
rm -rf "$SMOKE"
log "SGE is up: host $H, queue all.q ($SLOTS slots), PE smp (took ${SECONDS}s). Use: export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL"
