#!/usr/bin/env bash
# The node on one large multi-frame instance (default 4000 frames of 512x512 16-bit: 2.1 GB; see
# scripts/make-multiframe.mjs), against dcmtk's `storescp +B` receiving the same push, in the same
# round. The node receives it (storescu), de-identifies and files it, and forwards it to a second
# storescp; the script prints each one's time and peak RSS, and the node's RSS when idle (after a
# small instance went the same way, so code and buffers of every stage are loaded) and again once
# the large one is filed and forwarded.
#   usage: [ROUNDS=1] scripts/bench-node-large.sh [FRAMES=4000] [WORKDIR]
# Needs dcmtk, python3 (sqlite3) and a built dist/ (npm run build). The issue's
# targets (issue 15): peak RSS at most 300 MB, RSS after within 50 MB of idle.
# DICOM_DEID_COPY=stream in the environment streams the pixel data through 1 MiB instead of the
# kernel's copy_file_range (src/io/copyRange.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${1:-4000}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-bench-nodelarge.XXXXXX)}"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f dist/cli.js ] || npm run build >/dev/null
export TCP_NODELAY=1 # dcmtk stalls ~40 ms per PDU exchange without it
mkdir -p "$WORK"
BIG="$WORK/MF.dcm"; SMALL="$WORK/MF_small.dcm"
[ -f "$BIG" ] || node scripts/make-multiframe.mjs "$BIG" --frames "$FRAMES"
[ -f "$SMALL" ] || node scripts/make-multiframe.mjs "$SMALL" --frames 1 --accession MFACC000
printf 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\nMFMRN001,MFACC001,RES001,2024-01-01,2024-06-15,\n' \
  >"$WORK/mapping.csv"
SIZE=$(stat -c %s "$BIG")
cat "$BIG" >/dev/null # storescu reads from the page cache in every run

now() { date +%s.%N; }
free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq "${2:-100}"); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
mb() { awk -v k="$2" '$1 == k":" {printf "%.0f", $2/1024}' /proc/$1/status; }
sub() { echo "$1 - $2" | bc -l; }
filed() { awk 'FNR > 1' "$1"/logs/deid_log_*.csv 2>/dev/null | grep -c ',ok,' || true; }
delivered() {
  "$PY" - "$1" <<'PY' 2>/dev/null || echo 0
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(c.execute("SELECT count(*) FROM forward_queue WHERE state = 'delivered'").fetchone()[0])
PY
}
until_count() { # fn arg n [seconds=600]: waits until `fn arg` prints at least n
  local deadline; deadline=$(echo "$(date +%s) + ${4:-600}" | bc)
  while [ "$($1 "$2")" -lt "$3" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $1 >= $3" >&2; return 1; }
    sleep 0.1
  done
}

run_storescp() { # -> "seconds peak_MB"
  local port dir pid t0 t1 peak
  port=$(free_port); dir="$WORK/scp"; rm -rf "$dir"; mkdir -p "$dir"; sync
  storescp +B -od "$dir" -aet REF "$port" >/dev/null 2>&1 & pid=$!
  wait_port "$port"
  t0=$(now); storescu -aec REF 127.0.0.1 "$port" "$BIG" >/dev/null 2>&1; t1=$(now)
  peak=$(mb $pid VmHWM)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$(sub "$t1" "$t0") $peak"
}

run_node() { # -> "acked filed forwarded peak_receive peak_file peak_forward idle_MB after_MB" (seconds, MB)
  local port fport dir fdir pid fpid t0 t1 t2 t3 p1 p2 p3 idle after
  port=$(free_port); fport=$(free_port); dir="$WORK/node"; fdir="$WORK/fwd"
  rm -rf "$dir" "$fdir"; mkdir -p "$dir" "$fdir"; sync
  storescp +B -od "$fdir" -aet RESEARCH "$fport" >/dev/null 2>&1 & fpid=$!
  cat >"$dir/config.json" <<JSON
{ "host": "127.0.0.1", "port": $port, "aeTitle": "DEID", "csv": "$WORK/mapping.csv",
  "output": "$dir/output", "db": "$dir/state/state.sqlite", "quarantine": "$dir/quarantine",
  "spool": "$dir/spool", "logDir": "$dir/logs", "forward": ["RESEARCH@127.0.0.1:$fport"], "httpPort": 0 }
JSON
  node dist/cli.js serve --config "$dir/config.json" >/dev/null 2>"$dir/serve.log" & pid=$!
  wait_port "$port" 1200 || { kill $pid $fpid; echo "node did not listen within 60 s: $dir/serve.log" >&2; return 1; }
  # Warm-up: one small instance received, filed and forwarded; then the idle level.
  storescu -aec DEID 127.0.0.1 "$port" "$SMALL" >/dev/null 2>&1
  until_count delivered "$dir/state/state.sqlite" 1
  sleep 3; idle=$(mb $pid VmRSS)
  # The peak of each stage: VmHWM is reset (clear_refs 5) as the next one begins. A stage starts
  # as soon as the one before is done, so the boundaries are as fine as the polling (0.1 s).
  reset_peak() { echo 5 >/proc/$pid/clear_refs; }
  reset_peak; t0=$(now)
  storescu -aec DEID 127.0.0.1 "$port" "$BIG" >/dev/null 2>&1; t1=$(now); p1=$(mb $pid VmHWM); reset_peak
  until_count filed "$dir" 2; t2=$(now); p2=$(mb $pid VmHWM); reset_peak
  until_count delivered "$dir/state/state.sqlite" 2; t3=$(now); p3=$(mb $pid VmHWM)
  sleep 5; after=$(mb $pid VmRSS)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  kill $fpid; wait $fpid 2>/dev/null || true
  [ -n "$(find "$dir/output" -name '*.dcm' -size +$((SIZE / 2))c)" ] || { echo "the node filed no large output" >&2; return 1; }
  [ -n "$(find "$fdir" -type f -size +$((SIZE / 2))c)" ] || { echo "the large instance was not forwarded" >&2; return 1; }
  echo "$(sub "$t1" "$t0") $(sub "$t2" "$t0") $(sub "$t3" "$t0") $p1 $p2 $p3 $idle $after"
}

ROUNDS="${ROUNDS:-1}"
printf 'instance: %d bytes (%s frames); copy: %s; load %s (a shared machine)\n' "$SIZE" "$FRAMES" \
  "${DICOM_DEID_COPY:-kernel}" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-6s %-36s %8s %8s %7s\n' round 'contender: stage (done after)' seconds 'peak MB' ratio
for r in $(seq "$ROUNDS"); do
  read -r ST SM < <(run_storescp)
  read -r ACK FILED FWD P1 P2 P3 IDLE AFTER < <(run_node)
  row() { printf '%-6s %-36s %8.2f %8s %7s\n' "$r" "$1" "$2" "$3" "$(printf '%.2f' "$(echo "$ST / $2" | bc -l)")"; }
  row 'storescp +B: received' "$ST" "$SM"
  row 'node: received (acknowledged)' "$ACK" "$P1"
  row 'node: de-identified + filed' "$FILED" "$P2"
  row 'node: forwarded to storescp' "$FWD" "$P3"
  PEAK=$(printf '%s\n' "$P1" "$P2" "$P3" | sort -g | tail -1)
  printf '%-6s node peak RSS %s MB (storescp %s MB); RSS idle %s MB, 5 s after %s MB (%+d MB)\n' \
    "$r" "$PEAK" "$SM" "$IDLE" "$AFTER" "$((AFTER - IDLE))"
done
echo "(seconds from the start of the push; ratio = storescp's seconds over the node's, same round;"
echo " peak = VmHWM of the whole node process during that stage)"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
