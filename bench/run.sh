#!/usr/bin/env bash
# bench/run.sh: imapctl serve and a private Dovecot, side by side on this
# machine, on loopback. Phases (PHASES, default all):
#   load     mixed workload (bench/loadgen), CLIENTS clients for DURATION,
#            plaintext then TLS, on fresh servers preloaded with PRELOAD
#            messages per user
#   idle     IDLE_CONNS idle connections (bench/idleconns): memory per
#            connection, plaintext then TLS, on fresh servers (imapctl:
#            IDLE_STEPS x IDLE_CONNS, read at every IDLE_CONNS)
#   bigbox   a BIG-message INBOX written straight to disk for both servers
#            (bench/mkmaildir), then SELECT/FETCH/SEARCH/APPEND timings
#            and memory (bench/bigbox)
#   profile  CPU and heap profiles of the in-process server under the same
#            mix (bench/servebench BenchmarkLoadMix), with pprof summaries
# Raw results go to bench/out/ (ignored by git); the comparison tables to
# bench/out/summary.md and stdout.
#
# Usage: bench/run.sh            (as root, Dovecot is installed when missing)
#        PHASES="load" DURATION=10s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-10}
DURATION=${DURATION:-30s}
PRELOAD=${PRELOAD:-5000}
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_PRELOAD=${IDLE_PRELOAD:-1000}
IDLE_STEPS=${IDLE_STEPS:-3}
GC_WAIT=${GC_WAIT:-130s}
BIG=${BIG:-100000}
SEED=${SEED:-1}
PHASES=${PHASES:-"load idle bigbox profile"}
OUT=bench/out
USERS="alice:bench-pw-alice,bob:bench-pw-bob"

log() { printf '\n== %s\n' "$*" >&2; }

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: Dovecot is not installed; as root: apt-get install -y dovecot-imapd" >&2
    exit 2
  fi
  log "installing dovecot-imapd"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null
  # The package starts the system's Dovecot where services can start; the
  # benchmark runs its own.
fi

mkdir -p "$OUT"
log "building"
go build -o "$OUT/imapctl" ./cmd/imapctl
go build -o "$OUT/" ./bench/loadgen ./bench/idleconns ./bench/bigbox ./bench/mkmaildir ./bench/dovecot ./bench/report

WORK=$(mktemp -d /tmp/imapctl-bench.XXXXXX)
# Dovecot's unprivileged processes must traverse it.
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

userflags() {
  local IFS=,
  for u in $USERS; do printf -- '--user\n%s\n' "$u"; done
}

# start_imapctl NAME DATADIR: sets ADDR, TLS_ADDR, PID.
start_imapctl() {
  local name=$1 data=$2 logf="$OUT/$1.log"
  mkdir -p "$data"
  mapfile -t uf < <(userflags)
  "$OUT/imapctl" serve --data "$data" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
    --log-level warn "${uf[@]}" 2>"$logf" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    grep -q 'IMAPS (TLS)' "$logf" 2>/dev/null && break
    sleep 0.1
  done
  ADDR=$(awk '/IMAP \+ STARTTLS/ {print $4}' "$logf")
  TLS_ADDR=$(awk '/IMAPS \(TLS\)/ {print $3}' "$logf")
  [ -n "$ADDR" ] && [ -n "$TLS_ADDR" ] || { echo "imapctl serve did not start:" >&2; cat "$logf" >&2; exit 1; }
  echo "$name: imapctl serve pid $PID on $ADDR and $TLS_ADDR (TLS)" >&2
}

# start_dovecot NAME MAILDIR: sets ADDR, TLS_ADDR, PID (the master).
start_dovecot() {
  local name=$1 mail=$2 env="$WORK/$1.env"
  mkdir -p "$mail"
  "$OUT/dovecot" -users "$USERS" -ssl -max-conns $((IDLE_CONNS + 100)) -mail "$mail" \
    -dir "$WORK/$name" -env "$env" -lifetime 3h 2>"$OUT/$name.log" &
  local helper=$!
  PIDS+=("$helper")
  for _ in $(seq 200); do
    [ -f "$env" ] && break
    kill -0 "$helper" 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  # shellcheck disable=SC1090
  . "$env"
  echo "$name: Dovecot master pid $PID on $ADDR and $TLS_ADDR (TLS); log $LOG" >&2
  HELPER=$helper
}

# settle: write dirty pages back and pause, so that a run does not pay for
# the fsyncs and writeback of what came before it.
settle() {
  sync
  sleep 5
}

# stop PID: graceful stop of a server started above.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

start() { # start SERVER NAME DIR; sets STOP_PID too
  if [ "$1" = imapctl ]; then
    start_imapctl "$2" "$3"
    STOP_PID=$PID
  else
    start_dovecot "$2" "$3"
    STOP_PID=$HELPER
  fi
}

for phase in $PHASES; do
  case $phase in
  load)
    for s in imapctl dovecot; do
      log "load: $s"
      start "$s" "load-$s" "$WORK/load-$s"
      "$OUT/loadgen" -addr "$ADDR" -users "$USERS" -seed "$SEED" -preload "$PRELOAD" -label "$s" | tee "$OUT/preload-$s.txt"
      for tr in plain tls; do
        a=$ADDR; tflag=
        [ "$tr" = tls ] && a=$TLS_ADDR tflag=-tls
        settle
        "$OUT/loadgen" -addr "$a" $tflag -users "$USERS" -clients "$CLIENTS" -duration "$DURATION" -seed "$SEED" \
          -pid "$PID" -label "$s ($tr)" -json "$OUT/load-$s-$tr.json" -max-errors 1000000 | tee "$OUT/load-$s-$tr.txt"
      done
      stop "$STOP_PID"
    done
    ;;
  idle)
    for s in imapctl dovecot; do
      for tr in plain tls; do
        log "idle: $s, $tr"
        start "$s" "idle-$s-$tr" "$WORK/idle-$s-$tr"
        # One connection per user: concurrent first logins would each hash
        # the password (argon2id, 19 MiB) at once and inflate the baseline.
        "$OUT/loadgen" -addr "$ADDR" -users "$USERS" -seed "$SEED" -preload "$IDLE_PRELOAD" -preload-conns 1 -label "$s" >/dev/null
        a=$ADDR; tflag=
        [ "$tr" = tls ] && a=$TLS_ADDR tflag=-tls
        # imapctl is one Go process: garbage from earlier work (argon2id
        # password hashes, 19 MiB each) is reused by the first connections
        # and hides their cost, so it gets IDLE_STEPS times IDLE_CONNS
        # connections, read every IDLE_CONNS: the last step is the
        # marginal cost. Dovecot (a process per connection) gets IDLE_CONNS.
        n=$IDLE_CONNS step=0
        [ "$s" = imapctl ] && n=$((IDLE_CONNS * IDLE_STEPS)) step=$IDLE_CONNS
        "$OUT/idleconns" -addr "$a" $tflag -users "$USERS" -n "$n" -step "$step" -pid "$PID" \
          -label "$s ($tr)" -json "$OUT/idle-$s-$tr.json" | tee "$OUT/idle-$s-$tr.txt" || true
        stop "$STOP_PID"
      done
    done
    ;;
  bigbox)
    for s in imapctl dovecot; do
      log "bigbox: $s, writing $BIG messages"
      if [ "$s" = imapctl ]; then
        dir=$WORK/big-imapctl
        "$OUT/mkmaildir" -dir "$dir/mail/alice" -count "$BIG" -seed "$SEED"
      else
        dir=$WORK/big-dovecot-mail
        "$OUT/mkmaildir" -dir "$dir/alice" -count "$BIG" -seed "$SEED"
      fi
      settle
      start "$s" "big-$s" "$dir"
      wait=0s
      [ "$s" = imapctl ] && wait=$GC_WAIT
      "$OUT/bigbox" -addr "$ADDR" -user alice -pass bench-pw-alice -pid "$PID" -label "$s" -gc-wait "$wait" \
        -json "$OUT/bigbox-$s.json" | tee "$OUT/bigbox-$s.txt"
      stop "$STOP_PID"
      rm -rf "$dir"
    done
    ;;
  profile)
    log "profile: in-process server under the load mix (${DURATION}, $CLIENTS clients)"
    settle
    go test -run '^$' -bench 'LoadMix' -benchtime 1x -o "$OUT/servebench.test" \
      -cpuprofile "$OUT/cpu.prof" -memprofile "$OUT/mem.prof" \
      -blockprofile "$OUT/block.prof" -mutexprofile "$OUT/mutex.prof" ./bench/servebench \
      -args -messages 1000 -load-messages "$PRELOAD" -loadtime "$DURATION" -clients "$CLIENTS" | tee "$OUT/profile-bench.txt"
    # The server's own work all runs below imapserver.(*Conn).serve (client
    # goroutines are labelled side=client, so -tagignore side=client keeps
    # the server plus the garbage collector).
    srv='imapserver\.\(\*Conn\)\.serve'
    pp() { go tool pprof "$@" 2>/dev/null; }
    pp -top -nodecount 40 -focus "$srv" "$OUT/servebench.test" "$OUT/cpu.prof" >"$OUT/pprof-cpu-flat.txt"
    pp -top -cum -nodecount 70 -focus "$srv" "$OUT/servebench.test" "$OUT/cpu.prof" >"$OUT/pprof-cpu-cum.txt"
    pp -top -nodecount 30 -tagignore side=client "$OUT/servebench.test" "$OUT/cpu.prof" >"$OUT/pprof-cpu-server-and-gc.txt"
    pp -top -nodecount 40 -sample_index alloc_space -focus "$srv" "$OUT/servebench.test" "$OUT/mem.prof" >"$OUT/pprof-alloc-space.txt"
    pp -top -cum -nodecount 70 -sample_index alloc_space -focus "$srv" "$OUT/servebench.test" "$OUT/mem.prof" >"$OUT/pprof-alloc-space-cum.txt"
    pp -top -nodecount 40 -sample_index alloc_objects -focus "$srv" "$OUT/servebench.test" "$OUT/mem.prof" >"$OUT/pprof-alloc-objects.txt"
    pp -top -cum -nodecount 50 -focus "$srv" "$OUT/servebench.test" "$OUT/block.prof" >"$OUT/pprof-block-cum.txt"
    pp -top -cum -nodecount 40 "$OUT/servebench.test" "$OUT/mutex.prof" >"$OUT/pprof-mutex-cum.txt"
    head -n 30 "$OUT/pprof-cpu-flat.txt"
    ;;
  *)
    echo "run.sh: unknown phase $phase" >&2
    exit 2
    ;;
  esac
done

log "summary"
{
  echo "## imapctl vs Dovecot, $(date -u +%Y-%m-%d)"
  echo
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "- $(go version | cut -d' ' -f3-), Dovecot $("$(command -v dovecot || echo /usr/sbin/dovecot)" --version)"
  echo "- imapctl $("$OUT/imapctl" --version 2>/dev/null | head -1)"
  "$OUT/report" -dir "$OUT"
} | tee "$OUT/summary.md"
