#!/usr/bin/env bash
# Node benchmark: ~600 CT slices of 512x512 pushed with storescu, in the same run, to dcmtk's
# `storescp +B` (the reference) and to `dicom-deid serve` (de-identifying, fsync'ing, filing).
# Prints throughput ratios and the node's peak RSS, with one association and with 4 at once.
#   usage: scripts/bench-node.sh [N=600] [WORKDIR]
# Needs dcmtk, python3 with pydicom + numpy, and a built dist/ (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-600}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-benchnode.XXXXXX)}"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f dist/cli.js ] || npm run build >/dev/null
export TCP_NODELAY=1   # dcmtk stalls ~40 ms per instance without it

echo "Generating $N slices in $WORK ..."
mkdir -p "$WORK"
"$PY" scripts/bench-batch-tree.py "$WORK" "$N" >/dev/null
IN="$WORK/Raw_Scans"
du -sh "$IN" | awk '{print "Corpus: " $1}'
cat $(find "$IN" -type f) > /dev/null   # warm the page cache for the sender
# Four slices of the corpus for the 4-association runs.
mapfile -t FILES < <(find "$IN" -type f | sort)
split_part() { local k=$1; for ((i=k; i<${#FILES[@]}; i+=4)); do echo "${FILES[$i]}"; done; }

now() { date +%s.%N; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$1/status; }

push() { # port assoc -> seconds
  local port=$1 assoc=$2 t0 t1
  t0=$(now)
  if [ "$assoc" = 1 ]; then
    storescu -aec "$3" 127.0.0.1 "$port" "${FILES[@]}" >/dev/null 2>&1
  else
    for k in 0 1 2 3; do storescu -aec "$3" 127.0.0.1 "$port" $(split_part $k) >/dev/null 2>&1 & done
    wait
  fi
  t1=$(now); echo "$t1 - $t0" | bc -l
}

run_storescp() { # assoc -> seconds
  local port dir pid s
  port=$(free_port); dir="$WORK/scp"; rm -rf "$dir"; mkdir -p "$dir"
  storescp +B -od "$dir" -aet REF "$port" >/dev/null 2>&1 & pid=$!
  wait_port "$port"
  s=$(push "$port" "$1" REF)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$s"
}

run_node() { # assoc -> "seconds_acked seconds_filed rss"
  local port dir pid s t0 t1 rss
  port=$(free_port); dir="$WORK/node"; rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir/config.json" <<JSON
{ "host": "127.0.0.1", "port": $port, "aeTitle": "DEID", "csv": "$WORK/mapping.csv",
  "output": "$dir/output", "db": "$dir/state/state.sqlite", "quarantine": "$dir/quarantine",
  "spool": "$dir/spool", "logDir": "$dir/logs" }
JSON
  node dist/cli.js serve --config "$dir/config.json" 2>"$dir/serve.log" & pid=$!
  wait_port "$port"
  t0=$(now)
  s=$(push "$port" "$1" DEID)
  while [ "$(find "$dir/output" -name '*.dcm' 2>/dev/null | wc -l)" -lt "${#FILES[@]}" ]; do sleep 0.02; done
  t1=$(now)
  rss=$(peak_rss_mb $pid)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  echo "$s $(echo "$t1 - $t0" | bc -l) $rss"
}

printf '\n%-44s %8s %9s %8s\n' "run" "seconds" "files/s" "ratio"
for assoc in 1 4; do
  REF=$(run_storescp $assoc)
  read -r ACK FILED RSS < <(run_node $assoc)
  n=${#FILES[@]}
  printf '%-44s %8.2f %9.0f %8s\n' "storescp +B, $assoc association(s)" "$REF" "$(echo "$n / $REF" | bc -l)" "1.00"
  printf '%-44s %8.2f %9.0f %8.2f\n' "dicom-deid serve, acknowledged (durable)" "$ACK" "$(echo "$n / $ACK" | bc -l)" "$(echo "$REF / $ACK" | bc -l)"
  printf '%-44s %8.2f %9.0f %8.2f   peak RSS %s MB\n' "dicom-deid serve, all de-identified + filed" "$FILED" "$(echo "$n / $FILED" | bc -l)" "$(echo "$REF / $FILED" | bc -l)" "$RSS"
done
echo "(ratio = node files/s over storescp +B files/s in this run; issue 3 target >= 0.5, peak RSS < 300 MB with 4 associations)"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
