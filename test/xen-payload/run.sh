#!/bin/bash
# The payload of p2m-audit's live integration test (test/live-xen.test.ts), run by ../shared/xen-host/run.sh as
# /payload/run.sh in the dom0 of a real Xen 4.17 host. It drives the real toolstack (xl, xen-mfndump) and
# p2m-audit's live commands on the same guests, in the same pauses, and writes everything to $OUT; the
# vitest test on the build machine asserts on those files. With PERF=1 it then also times live audits of 1 GiB
# and 4 GiB guests against xen-mfndump dump-p2m (run.sh with MEM=6G PAYLOAD_ENV=PERF; not part of the test);
# PERF=only times them without the test's cases. Options (names in PAYLOAD_ENV): PERF_MEMS (guest MiB, default
# "1024 4096"), PERF_P2M=0 (skip p2m --domain), PERF_NODE_FLAGS (node option sets to time against the plain run).
set -uo pipefail
. "$XH_LIB"
APP=/payload/app
MAP=/payload/maps/System.map-6.1.0-56-amd64
T0=$(date +%s)
step() { echo "$(( $(date +%s) - T0 ))s: $*"; }
pa() { node "$APP/dist/src/cli.js" "$@"; }
# run a command, keep its stdout, stderr and exit code as $OUT/NAME.{out,err,rc}
keep() {
  local name=$1; shift
  "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  echo $? > "$OUT/$name.rc"
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# the state letters of `xl list` for a domain (p = paused)
state() { xl list "$1" | awk 'NR == 2 { print $5 }'; }

node --version > "$OUT/node-version.txt"
xl info > "$OUT/xl-info.txt"

perf_run() {
  # Time to verdict: live audit vs xen-mfndump dump-p2m of the same running guest (2 rounds each), and the
  # frames each maps. init_on_free is left out of these guests' command line: it only slows their boot.
  # The breakdown: node's own start, the CLI's start (--version: the bundle's entry, no command), and one more
  # audit under --cpu-prof (profiles in $OUT/prof/, read on the build machine); --stats prints the read.
  local P=$OUT/perf.txt
  mkdir -p "$OUT/prof"
  for i in 1 2; do
    a=$(ms); node -e 0; b=$(ms); echo "node_startup_ms $(( b - a ))" >> $P
    for flags in ${PERF_NODE_FLAGS:-}; do a=$(ms); node ${flags//,/ } -e 0; b=$(ms); echo "node_startup_ms[$flags] $(( b - a ))" >> $P; done
  done
  for i in 1 2; do a=$(ms); pa --version > /dev/null; b=$(ms); echo "cli_version_ms $(( b - a ))" >> $P; done
  a=$(ms); node -e "require('fs').readFileSync('$MAP', 'latin1').length" > /dev/null; b=$(ms); echo "read_system_map_ms $(( b - a ))" >> $P
  head -c 200 "$APP/dist/src/cli.js" | grep -q __p2mCreateRequire && echo "cli_bundled yes" >> $P || echo "cli_bundled NO" >> $P
  for mem in ${PERF_MEMS:-1024 4096}; do
    name=perf$mem
    sed -e "s/^memory.*/memory = $mem/" -e "s/^maxmem.*/maxmem = $mem/" -e 's/ init_on_free=1//' /etc/xen/pvplain.cfg > /tmp/$name.cfg
    step "start $name"
    start_domu $name /tmp/$name.cfg 900 || { echo "start_domu $name failed" | tee -a $P; return 0; }
    id=$(domid $name)
    # each round: xen-mfndump, node's own start (node -e 0: the floor of any one-shot node command), the audit, then the audit under each of PERF_NODE_FLAGS (node options, words
    # joined by commas), so that a variant and its reference are timed under the same load
    for round in 1 2; do
      a=$(ms); xen-mfndump dump-p2m "$id" > /tmp/mfndump.txt; b=$(ms)
      echo "$name mfndump_ms $(( b - a ))" >> $P
      a=$(ms); node -e 0; b=$(ms)
      echo "$name node_e0_ms $(( b - a ))" >> $P
      a=$(ms); pa audit --domain $name --system-map "$MAP" --stats > /tmp/audit.txt 2> /tmp/audit.err; rc=$?; b=$(ms)
      echo "$name audit_ms $(( b - a )) rc $rc $(grep 'frames mapped' /tmp/audit.err)" >> $P
      for flags in ${PERF_NODE_FLAGS:-}; do
        a=$(ms); node ${flags//,/ } "$APP/dist/src/cli.js" audit --domain $name --system-map "$MAP" --stats > /tmp/audit-v.txt 2> /tmp/audit.err; rc=$?; b=$(ms)
        echo "$name audit_ms[$flags] $(( b - a )) rc $rc $(grep 'frames mapped' /tmp/audit.err)" >> $P
        cmp -s /tmp/audit.txt /tmp/audit-v.txt || echo "$name audit[$flags] output differs" >> $P
      done
    done
    a=$(ms); node --cpu-prof --cpu-prof-dir="$OUT/prof" --cpu-prof-name=$name-audit.cpuprofile "$APP/dist/src/cli.js" \
      audit --domain $name --system-map "$MAP" --stats > /dev/null 2> /tmp/audit.err; b=$(ms)
    echo "$name audit_cpuprof_ms $(( b - a )) $(grep 'frames mapped' /tmp/audit.err)" >> $P
    if [ "${PERF_P2M:-1}" = 1 ]; then
      a=$(ms); pa p2m --domain $name --stats > /tmp/p2m.txt 2> /tmp/p2m.err; b=$(ms)
      echo "$name p2m_ms $(( b - a )) $(grep 'frames mapped' /tmp/p2m.err)" >> $P
      cmp -s /tmp/mfndump.txt /tmp/p2m.txt; echo "$name p2m_vs_mfndump_cmp $?" >> $P
    fi
    head -2 /tmp/audit.txt >> $P
    grep 'P2M size' /tmp/mfndump.txt >> $P
    stop_domu $name
  done
  step "PERF DONE"
}

# PERF=only: the timings alone, without the test's cases (run.sh with MEM=6G PAYLOAD_ENV="PERF ...")
if [ "${PERF:-0}" = only ]; then perf_run; exit 0; fi


# ---- errors that need no guest --------------------------------------------------------------------------
step "errors: no such domain, dom0 itself, no addon, not root"
keep err-nosuch pa audit --domain 4242 --system-map "$MAP"
keep err-noname pa audit --domain no-such-guest --system-map "$MAP"
keep err-dom0 pa audit --domain 0 --system-map "$MAP"
keep mfndump-dom0 xen-mfndump dump-p2m 0
P2M_AUDIT_XENLIVE=/payload/nonexistent.node keep err-noaddon pa audit --domain 0
keep err-notroot setpriv --reuid=65534 --regid=65534 --clear-groups node "$APP/dist/src/cli.js" audit --domain 0

# ---- stock guests: p2m --domain = xen-mfndump in the same pause, audit CLEAN ----------------------------
for g in pvplain pve820; do
  cfg=/etc/xen/$g.cfg
  # pve820 with one vCPU: the harness's README (known quirks) reports dom0 processes crashing while a 2-vCPU
  # pve820 runs; the memory layout is the same either way ("Remapped 32809 page(s)")
  if [ $g = pve820 ]; then sed 's/^vcpus.*/vcpus = 1/' /etc/xen/pve820.cfg > /tmp/pve820.cfg; cfg=/tmp/pve820.cfg; fi
  step "start_domu $g"
  start_domu $g $cfg || { echo "start_domu $g failed"; exit 1; }
  id=$(domid $g)
  echo "$id" > "$OUT/$g.domid"
  step "$g: pause; xen-mfndump; p2m --domain; audit --domain --json; unpause"
  xl pause $g
  keep $g.mfndump xen-mfndump dump-p2m "$id"
  keep $g.p2m pa p2m --domain $g
  keep $g.audit pa audit --domain "$id" --json --system-map "$MAP"
  xl unpause $g
  cmp -s "$OUT/$g.mfndump.out" "$OUT/$g.p2m.out"; echo $? > "$OUT/$g.cmp.rc"
  step "$g: audit --domain (running), --pause, --system-map-dir"
  keep $g.audit-running pa audit --domain $g --system-map "$MAP" --stats
  keep $g.audit-pause pa audit --domain $g --system-map "$MAP" --pause --stats
  state $g > "$OUT/$g.state-after-pause"
  keep $g.audit-mapdir pa audit --domain $g --system-map-dir /payload/maps --json
done
step "pve820: SIGINT during audit --domain --pause"
# --stats says "paused" on stderr once the guest is paused: the signal is sent then
node "$APP/dist/src/cli.js" audit --domain pve820 --system-map "$MAP" --pause --stats > /dev/null 2> "$OUT/sigint.err" &
pid=$!
echo none > "$OUT/sigint.seen"
for i in $(seq 1 1500); do
  if grep -q ': paused$' "$OUT/sigint.err"; then echo paused > "$OUT/sigint.seen"; kill -INT $pid; break; fi
  grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null || [ ! -d /proc/$pid ] && break
  sleep 0.2
done
wait $pid; echo $? > "$OUT/sigint.rc"
state pve820 > "$OUT/sigint.state-after"
step "scan --domains all"
keep scan-all pa scan --domains all --system-map-dir /payload/maps
keep scan-all-json pa scan --domains all --system-map-dir /payload/maps --json

# ---- a p2m that changes throughout: exit 3 unpaused, a verdict with --pause ------------------------------
step "pve820: p2mlow churn=1"
domu_exec pve820 'insmod /modules/p2mlow.ko churn=1' > "$OUT/churn-insmod.txt" 2>&1
keep churn-running pa audit --domain pve820 --system-map "$MAP" --attempts 3
keep churn-pause pa audit --domain pve820 --system-map "$MAP" --pause --stats
state pve820 > "$OUT/churn.state-after-pause"
domu_exec pve820 'rmmod p2mlow; dmesg | grep p2mlow' > "$OUT/churn-rmmod.txt" 2>&1

# ---- the seed's bound: arch.max_pfn = nr_pages -----------------------------------------------------------
step "pve820: p2mlow lower=1; pause; xen-mfndump; p2m --domain; audit --domain; xl dump-core; unpause"
domu_exec pve820 'insmod /modules/p2mlow.ko lower=1; dmesg | grep p2mlow' > "$OUT/lower-insmod.txt" 2>&1
id=$(domid pve820)
xl pause pve820
keep low.mfndump xen-mfndump dump-p2m "$id"
keep low.p2m pa p2m --domain pve820
keep low.audit pa audit --domain pve820 --json --system-map "$MAP"
keep low.audit-text pa audit --domain pve820 --system-map "$MAP"
xl dump-core pve820 /tmp/low.core > "$OUT/low.dump-core.log" 2>&1; echo $? > "$OUT/low.dump-core.rc"
xl unpause pve820
cmp -s "$OUT/low.mfndump.out" "$OUT/low.p2m.out"; echo $? > "$OUT/low.cmp.rc"
# the pfns the real dump-core holds: its .xen_p2m section, read by the ELF section table (python, not p2m-audit)
python3 /payload/xen_p2m_pfns.py /tmp/low.core > "$OUT/low.core-pfns.txt" 2> "$OUT/low.core-pfns.err"
rm -f /tmp/low.core
step "pve820: xl save -c (the toolstack's own verdict)"
keep low.save xl save -c pve820 /tmp/low.save
rm -f /tmp/low.save
state pve820 > "$OUT/low.state-after-save"
step "pve820: destroyed while audit --domain --pause reads it"
node "$APP/dist/src/cli.js" audit --domain pve820 --system-map "$MAP" --pause --stats > /dev/null 2> "$OUT/destroyed.err" &
pid=$!
echo none > "$OUT/destroyed.seen"
for i in $(seq 1 1500); do
  if grep -q ': paused$' "$OUT/destroyed.err"; then echo paused > "$OUT/destroyed.seen"; xl destroy pve820; break; fi
  grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null || [ ! -d /proc/$pid ] && break
  sleep 0.2
done
wait $pid; echo $? > "$OUT/destroyed.rc"
xl list > "$OUT/xl-list-end.txt"
dmesg | grep -E 'traps:|segfault' > "$OUT/dom0-traps.txt"
[ "${PERF:-0}" = 1 ] && perf_run
step "DONE"
exit 0
