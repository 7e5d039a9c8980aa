#!/usr/bin/env bash
# bench/migrate/run.sh: imapctl migrate against Dovecot's own migration
# path (doveadm backup pulling through imapc) and mbsync (isync), plus
# imapsync when the distribution offers it, on the same data in one run.
#
# One private Dovecot 2.3 on 127.0.0.1 (bench/dovecot) holds
# every account: the source "src", loaded with a generated corpus
# (bench/migrate/mkcorpus: COUNT testmail messages, attachments up to
# MAX_ATT bytes, written straight into its Maildir), and one fresh, empty
# target account per tool and repetition ("imapctl1", "dsync1", ...). All
# tools talk plain IMAP over loopback to that one server; doveadm reads the
# source through imapc and writes its target locally, as a migration with
# dsync does.
#
# For each tool and repetition: a full copy, then an unchanged re-run,
# each under /usr/bin/time (wall time, CPU, peak RSS), with the CPU the
# Dovecot processes spent meanwhile; then bench/migrate/migcheck compares
# the target with the source message by message (bytes, flags, keywords,
# internal date). For imapctl, 'imapctl migrate --dry-run --json' must
# then find nothing to do. Then, unless disabled:
#   BIG_SIZES  each tool copies an account of a few very large messages
#              (one attachment of each size, in bytes) once: peak RSS
#   LAB=1      bench/migrate/appendlab: what Dovecot's APPEND costs one
#              message at a time, pipelined, and with MULTIAPPEND batches
#   PROFILE=1  bench/migrate/migprof: one more imapctl copy and re-run
#              under the Go profiler, with the time spent per store call
# Raw results go to bench/out/migrate/ (ignored by git); the tables to
# bench/out/migrate/summary.md and stdout.
#
# Usage: bench/migrate/run.sh                 (as root: missing packages are installed)
#        REPEAT=1 TOOLS="imapctl dsync" LAB=0 BIG_SIZES= bench/migrate/run.sh
#        IMAPCTL_FLAGS="--parallel 8" bench/migrate/run.sh
#        IMAPCTL_BIN=/path/to/other/imapctl OUT=bench/out/migrate-other bench/migrate/run.sh
#        IMAPCTL_B_BIN=/path/to/other/imapctl TOOLS="imapctl imapctl-b dsync" bench/migrate/run.sh
#            (two builds of imapctl side by side, taking turns, in one run)
set -euo pipefail
cd "$(dirname "$0")/../.."

COUNT=${COUNT:-5000}
MAX_ATT=${MAX_ATT:-1250000}
SEED=${SEED:-1}
REPEAT=${REPEAT:-3}
TOOLS=${TOOLS:-"imapctl dsync mbsync imapsync"}
PROFILE=${PROFILE:-1}
LAB=${LAB:-1}
BIG_SIZES=${BIG_SIZES-"25000000 100000000"}
IMAPCTL_FLAGS=${IMAPCTL_FLAGS:-}
IMAPCTL_BIN=${IMAPCTL_BIN:-}
IMAPCTL_B_BIN=${IMAPCTL_B_BIN:-}
KEEP=${KEEP:-0}
OUT=${OUT:-bench/out/migrate}
BIN=$OUT/bin
PW=bench-pw

log() { printf '\n== %s\n' "$*" >&2; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- packages -------------------------------------------------------------
have_dovecot() { command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; }
missing=()
have_dovecot && command -v doveadm >/dev/null 2>&1 || missing+=(dovecot-imapd)
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
[ -x /usr/bin/time ] || missing+=(time)
if ! command -v imapsync >/dev/null 2>&1; then
  cand=$(apt-cache policy imapsync 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$cand" ] && [ "$cand" != "(none)" ]; then
    missing+=(imapsync)
  else
    echo "run.sh: imapsync is not packaged by this distribution; it is left out" >&2
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: missing packages: ${missing[*]}; as root: apt-get install -y ${missing[*]}" >&2
    have_dovecot && [ -x /usr/bin/time ] || exit 2
  else
    log "installing ${missing[*]}"
    apt-get update -qq
    # The package may start the system's Dovecot; the benchmark runs its own.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
DOVECOT_BIN=$(command -v dovecot || echo /usr/sbin/dovecot)

active=()
for t in $TOOLS; do
  case $t in
  imapctl) active+=(imapctl) ;;
  imapctl-b) [ -n "$IMAPCTL_B_BIN" ] && active+=(imapctl-b) || echo "run.sh: imapctl-b needs IMAPCTL_B_BIN" >&2 ;;
  dsync) command -v doveadm >/dev/null 2>&1 && active+=(dsync) || echo "run.sh: no doveadm; dsync left out" >&2 ;;
  mbsync) command -v mbsync >/dev/null 2>&1 && active+=(mbsync) || echo "run.sh: no mbsync; left out" >&2 ;;
  imapsync) command -v imapsync >/dev/null 2>&1 && active+=(imapsync) ;;
  *) echo "run.sh: unknown tool $t" >&2; exit 2 ;;
  esac
done

# --- build ----------------------------------------------------------------
mkdir -p "$BIN"
rm -f "$OUT"/runs.tsv "$OUT"/check*.json "$OUT"/appendlab.txt "$OUT"/corpus-big.json "$OUT"/*.out "$OUT"/*-dryrun.json "$OUT"/time-*.txt "$OUT"/*.log "$OUT"/*.prof \
  "$OUT"/pprof-*.txt "$OUT"/migprof.*
log "building"
go build -o "$BIN/" ./cmd/imapctl ./bench/dovecot ./bench/migrate/mkcorpus ./bench/migrate/migcheck \
  ./bench/migrate/migreport ./bench/migrate/migprof ./bench/migrate/appendlab
IMAPCTL=${IMAPCTL_BIN:-$BIN/imapctl}

WORK=$(mktemp -d /tmp/imapctl-migbench.XXXXXX)
chmod 755 "$WORK" # Dovecot's unprivileged processes must traverse it
DC_PID=
cleanup() {
  if [ -n "$DC_PID" ]; then
    kill -TERM "$DC_PID" 2>/dev/null || true
    wait "$DC_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- corpus and server ----------------------------------------------------
log "writing the source account: $COUNT messages, attachments up to $MAX_ATT bytes"
"$BIN/mkcorpus" -dir "$WORK/mail/src" -count "$COUNT" -max-attachment "$MAX_ATT" -seed "$SEED" -json "$OUT/corpus.json"
if [ -n "$BIG_SIZES" ]; then
  log "writing the big-message account: attachments of ${BIG_SIZES// /, } bytes"
  "$BIN/mkcorpus" -dir "$WORK/mail/bigsrc" -big "${BIG_SIZES// /,}" -seed "$SEED" -json "$OUT/corpus-big.json"
fi

users="src:$PW,bigsrc:$PW,prof:$PW,lab1:$PW,lab2:$PW,lab3:$PW,lab4:$PW"
for rep in $(seq "$REPEAT") big; do
  for t in "${active[@]}"; do users+=",$t$rep:$PW"; done
done
log "starting Dovecot"
"$BIN/dovecot" -users "$users" -max-conns 50 -dir "$WORK/dovecot" -mail "$WORK/mail" -env "$WORK/dovecot.env" \
  -lifetime 3h 2>"$OUT/dovecot.log" &
DC_PID=$!
for _ in $(seq 300); do
  [ -f "$WORK/dovecot.env" ] && break
  kill -0 "$DC_PID" 2>/dev/null || { cat "$OUT/dovecot.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$WORK/dovecot.env" ] || { echo "run.sh: Dovecot did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORK/dovecot.env" # ADDR HOST PORT PID DIR CONF LOG MAIL
DOVECOT_PID=$PID
echo "Dovecot master pid $DOVECOT_PID on $ADDR" >&2

log "reading the source once (Dovecot builds its indexes; the page cache warms)"
"$BIN/migcheck" -addr "$ADDR" -src "src:$PW"

# --- measuring ------------------------------------------------------------
# dovecot_cpu: CPU seconds of the Dovecot master and every child it has
# reaped (each IMAP connection is a child process that ends at logout).
dovecot_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15+$16+$17)/hz}' "/proc/$DOVECOT_PID/stat"; }

printf 'tool\trep\tphase\twall_s\tuser_s\tsys_s\tmaxrss_kib\tdovecot_cpu_s\texit\n' >"$OUT/runs.tsv"
# timed TOOL REP PHASE CMD...: runs CMD under /usr/bin/time, its stdout
# to $OUT/TOOL-REP-PHASE.out and its stderr to .log, and appends its
# figures to runs.tsv.
timed() {
  local tool=$1 rep=$2 phase=$3
  shift 3
  local tf="$OUT/time-$tool-$rep-$phase.txt" before after rc=0
  before=$(dovecot_cpu)
  /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$OUT/$tool-$rep-$phase.out" 2>"$OUT/$tool-$rep-$phase.log" || rc=$?
  sleep 0.5 # the connections' processes end and are reaped
  after=$(dovecot_cpu)
  read -r wall user sys rss < <(tail -n 1 "$tf")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$rep" "$phase" "$wall" "$user" "$sys" "$rss" \
    "$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a-b}')" "$rc" >>"$OUT/runs.tsv"
  printf '%-9s run %s %-5s %6.2f s  peak RSS %5d MiB  exit %s\n' "$tool" "$rep" "$phase" "$wall" $((rss / 1024)) "$rc" >&2
}

export IMAPCTL_FROM_PASSWORD=$PW IMAPCTL_TO_PASSWORD=$PW
# run_TOOL REP SRC DST [once]: a full copy of account SRC into DST, then
# (without "once") an unchanged re-run.
run_imapctl() { imapctl_with imapctl "$IMAPCTL" "$@"; }
run_imapctl-b() { imapctl_with imapctl-b "$IMAPCTL_B_BIN" "$@"; }
imapctl_with() {
  local tool=$1 bin=$2 rep=$3 src=$4 dst=$5 once=${6:-}
  # shellcheck disable=SC2086
  local args=(migrate --from "imap://$src@$ADDR?tls=none" --to "imap://$dst@$ADDR?tls=none"
    --state "$WORK/$tool-state-$rep" $IMAPCTL_FLAGS)
  timed "$tool" "$rep" full "$bin" "${args[@]}" -q --json
  [ -n "$once" ] && return
  timed "$tool" "$rep" rerun "$bin" "${args[@]}" -q --json
  "$bin" "${args[@]}" --dry-run --json >"$OUT/$tool-$rep-dryrun.json" 2>"$OUT/$tool-$rep-dryrun.log" ||
    echo "run.sh: $tool migrate --dry-run exited with $?" >&2
}

# Dovecot's documented migration: doveadm backup -R with the imapc
# storage as the other side, configured in a doveadm configuration of its
# own that includes the server's.
run_dsync() {
  local rep=$1 src=$2 dst=$3 once=${4:-} conf="$WORK/doveadm-imapc-$2.conf"
  cat >"$conf" <<EOF
!include $CONF
imapc_host = $HOST
imapc_port = $PORT
imapc_user = $src
imapc_password = $PW
imapc_ssl = no
imapc_features = rfc822.size fetch-headers
mail_prefetch_count = 20
EOF
  timed dsync "$rep" full doveadm -c "$conf" backup -R -u "$dst" imapc:
  [ -n "$once" ] && return
  timed dsync "$rep" rerun doveadm -c "$conf" backup -R -u "$dst" imapc:
}

run_mbsync() {
  local rep=$1 src=$2 dst=$3 once=${4:-} rc="$WORK/mbsyncrc-$1"
  mkdir -p "$WORK/mbsync-state-$rep"
  cat >"$rc" <<EOF
IMAPAccount src
Host $HOST
Port $PORT
User $src
Pass $PW
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host $HOST
Port $PORT
User $dst
Pass $PW
SSLType None
AuthMechs LOGIN

IMAPStore dst
Account dst

Channel migrate
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState $WORK/mbsync-state-$rep/
EOF
  chmod 600 "$rc"
  timed mbsync "$rep" full mbsync -c "$rc" -a
  [ -n "$once" ] && return
  timed mbsync "$rep" rerun mbsync -c "$rc" -a
}

run_imapsync() {
  local rep=$1 src=$2 dst=$3 once=${4:-}
  printf '%s\n' "$PW" >"$WORK/imapsync.pw"
  local args=(--host1 "$HOST" --port1 "$PORT" --user1 "$src" --passfile1 "$WORK/imapsync.pw" --nossl1 --notls1
    --host2 "$HOST" --port2 "$PORT" --user2 "$dst" --passfile2 "$WORK/imapsync.pw" --nossl2 --notls2
    --nolog --noreleasecheck)
  timed imapsync "$rep" full imapsync "${args[@]}"
  [ -n "$once" ] && return
  timed imapsync "$rep" rerun imapsync "${args[@]}"
}

# Tools take turns within each repetition, so that a slow patch of the
# machine does not land on one tool only.
for rep in $(seq "$REPEAT"); do
  for t in "${active[@]}"; do
    log "$t, run $rep of $REPEAT"
    "run_$t" "$rep" src "$t$rep"
    "$BIN/migcheck" -addr "$ADDR" -src "src:$PW" -dst "$t$rep:$PW" -label "$t run $rep" \
      -json "$OUT/check-$t-$rep.json" || true
  done
done

if [ -n "$BIG_SIZES" ]; then
  for t in "${active[@]}"; do
    log "$t: messages of ${BIG_SIZES// /, } bytes"
    "run_$t" big bigsrc "${t}big" once
    "$BIN/migcheck" -addr "$ADDR" -src "bigsrc:$PW" -dst "${t}big:$PW" -label "$t, big messages" \
      -json "$OUT/checkbig-$t.json" || true
  done
fi

if [ "$LAB" = 1 ]; then
  log "APPEND laboratory: the source's INBOX messages, appended four ways (bench/migrate/appendlab)"
  "$BIN/appendlab" -addr "$ADDR" -users lab1,lab2,lab3,lab4 -password "$PW" -modes single,pipeline:8,multi:10,multi:50 \
    -count "$COUNT" -max-attachment "$MAX_ATT" -seed "$SEED" -pid "$DOVECOT_PID" | tee "$OUT/appendlab.txt"
fi

if [ "$PROFILE" = 1 ]; then
  log "profile: one more imapctl copy under the Go profiler (bench/migrate/migprof)"
  "$BIN/migprof" -from "imap://src@$ADDR?tls=none" -to "imap://prof@$ADDR?tls=none" -state "$WORK/prof-state" \
    -rerun -cpuprofile "$OUT/cpu.prof" -memprofile "$OUT/mem.prof" -json "$OUT/migprof.json" | tee "$OUT/migprof.txt"
  go tool pprof -top -nodecount 30 "$BIN/migprof" "$OUT/cpu.prof" >"$OUT/pprof-cpu.txt" 2>/dev/null || true
  go tool pprof -top -nodecount 30 -sample_index alloc_space "$BIN/migprof" "$OUT/mem.prof" >"$OUT/pprof-alloc.txt" 2>/dev/null || true
fi

log "summary"
{
  echo "## imapctl migrate vs dsync vs mbsync, $(date -u +%Y-%m-%d)"
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $(go version | cut -d' ' -f3-); Dovecot $("$DOVECOT_BIN" --version); $(mbsync --version 2>/dev/null | head -1 || echo 'no mbsync')"
  echo "- one Dovecot on 127.0.0.1, plain IMAP; source and targets are accounts of that server; imapctl: ${IMAPCTL}${IMAPCTL_B_BIN:+, imapctl-b: $IMAPCTL_B_BIN}, flags: ${IMAPCTL_FLAGS:-(defaults)}"
  echo "- load average at the start: $LOAD_START"
  echo
  "$BIN/migreport" -dir "$OUT"
  if [ -f "$OUT/appendlab.txt" ]; then
    echo
    echo "APPEND laboratory (bench/migrate/appendlab):"
    echo
    sed 's/^/    /' "$OUT/appendlab.txt"
  fi
} | tee "$OUT/summary.md"
