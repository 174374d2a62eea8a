#!/usr/bin/env bash
# Node benchmark: ~600 CT slices of 512x512 pushed with storescu, in the same run, to dcmtk's
# `storescp +B` (the reference) and to `dicom-deid serve` (de-identifying, fsync'ing, filing).
# Prints throughput ratios and the node's peak RSS, with one association and with 4 at once.
# DICOM TLS in the same rounds (TLS=0 to skip): storescu +tls into the node's TLS port against
# `storescp +tls +B`, both with a certificate from a test CA made here (openssl), TLS 1.3.
# Each round starts the node on an empty state and spool (it first writes its 1 GiB spool reserve,
# before listening: src/node/spool/spoolJournal.ts) and pushes two corpora of N slices (same
# patients, different instances) one after the other: a first burst into the new node, then a
# second one into the journal segments the first left for reuse.
#   usage: [ROUNDS=3] scripts/bench-node.sh [N=600] [WORKDIR]   (prints medians of ROUNDS rounds)
# Needs dcmtk, python3 with pydicom + numpy, and a built dist/ (npm run build).
#
# CONVERT=1: acknowledgements while the node's forwarder converts (issue 14). Each round starts
# three nodes in turn: without forwarding; forwarding to a `storescp --ignore +xi` (implicit VR LE
# only) with conversions on the conversion thread (the default); the same with conversions on the
# main thread (DICOM_DEID_CONVERT=inline). Each first receives a backlog of JPEG 2000 multi-frame
# instances (CONVERT_FILES of CONVERT_FRAMES frames of 512x512 noise, default 4 x 16; lossless,
# by gdcmconv) and files it, which starts their decoding for the forward, then gets the N slices
# on one association from scripts/bench-ack-push.mjs, which times every C-STORE (request to
# response). Prints the push's seconds and the acknowledgement percentiles, and how many items
# the forwarder had delivered when the push ended (fewer than the backlog: the push ran beside the
# decoding; more: slices were filed and forwarded too, as the node files while senders pause).
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
mkdir -p "$WORK/second"
"$PY" scripts/bench-batch-tree.py "$WORK/second" "$N" >/dev/null
IN="$WORK/Raw_Scans"
du -sh "$IN" | awk '{print "Corpus: " $1 " (twice)"}'
cat $(find "$IN" "$WORK/second/Raw_Scans" -type f) > /dev/null   # warm the page cache for the sender
mapfile -t FILES < <(find "$IN" -type f | sort)
mapfile -t FILES2 < <(find "$WORK/second/Raw_Scans" -type f | sort)
# Four slices of a corpus (array name) for the 4-association runs.
split_part() { local -n files=$1; local k=$2; for ((i=k; i<${#files[@]}; i+=4)); do echo "${files[$i]}"; done; }

now() { date +%s.%N; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# port [tries of 50 ms, default 100]: the node first writes its 1 GiB spool reserve (7-8 s on a
# loaded machine), so it gets longer.
wait_port() { for _ in $(seq "${2:-100}"); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# port [tries of 50 ms]: the node answers C-ECHO, i.e. takes associations. It binds its port before
# it writes the spool reserve and accepts only once the spool is ready: a push timed from the bind
# would time the reserve too.
wait_node() { for _ in $(seq "${2:-100}"); do echoscu -to 1 -aec DEID 127.0.0.1 "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$1/status; }

# storescu's transport options: none (plain), or TLS verifying the peer against the test CA.
SCU_TLS=()
push() { # port assoc aet [corpus array name] -> seconds
  local port=$1 assoc=$2 t0 t1
  local -n corpus=${4:-FILES}
  t0=$(now)
  if [ "$assoc" = 1 ]; then
    storescu "${SCU_TLS[@]}" -aec "$3" 127.0.0.1 "$port" "${corpus[@]}" >/dev/null 2>&1
  else
    for k in 0 1 2 3; do storescu "${SCU_TLS[@]}" -aec "$3" 127.0.0.1 "$port" $(split_part "${4:-FILES}" $k) >/dev/null 2>&1 & done
    wait
  fi
  t1=$(now); echo "$t1 - $t0" | bc -l
}

TLS="${TLS:-1}"
if [ "$TLS" = 1 ]; then
  PKI="$WORK/pki"; mkdir -p "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=BenchCA -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$PKI/node.key" -out "$PKI/node.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$PKI/san.ext"
  openssl x509 -req -in "$PKI/node.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
    -extfile "$PKI/san.ext" -out "$PKI/node.pem" 2>/dev/null
fi

# Every run starts with no dirty pages (sync): storescp never syncs, and without this the node,
# run right after it, paid for writing back storescp's 300 MB (its fdatasyncs wait behind that
# writeback): one association measured 0.35-0.72x over three runs, 0.54-0.81x with the sync.
run_storescp() { # assoc [tls] -> seconds
  local port dir pid s tls=()
  port=$(free_port); dir="$WORK/scp"; rm -rf "$dir"; mkdir -p "$dir"; sync
  [ "${2:-}" = tls ] && tls=(+tls "$PKI/node.key" "$PKI/node.pem" -ic) && SCU_TLS=(+tla +cf "$PKI/ca.pem")
  storescp "${tls[@]}" +B -od "$dir" -aet REF "$port" >/dev/null 2>&1 & pid=$!
  wait_port "$port"
  s=$(push "$port" "$1" REF)
  SCU_TLS=()
  kill $pid; wait $pid 2>/dev/null || true
  echo "$s"
}

filed_rows() { awk 'FNR > 1' "$1"/logs/deid_log_*.csv 2>/dev/null | grep -c ',ok,' || true; }

run_node() { # assoc [tls] -> "acked filed acked_reused filed_reused rss" (seconds)
  local port dir pid s t0 t1 rss s2 t2 t3 tls="" port_plain
  port=$(free_port); dir="$WORK/node"; rm -rf "$dir"; mkdir -p "$dir"; sync
  if [ "${2:-}" = tls ]; then
    # The node pushed to on its TLS port (its plain port listens too, unused).
    local plain; plain=$(free_port)
    tls=", \"tls\": { \"port\": $port, \"cert\": \"$PKI/node.pem\", \"key\": \"$PKI/node.key\" }"
    port_plain=$plain
    SCU_TLS=(+tla +cf "$PKI/ca.pem")
  else
    port_plain=$port
  fi
  cat > "$dir/config.json" <<JSON
{ "host": "127.0.0.1", "port": $port_plain, "aeTitle": "DEID", "csv": "$WORK/mapping.csv",
  "output": "$dir/output", "db": "$dir/state/state.sqlite", "quarantine": "$dir/quarantine",
  "spool": "$dir/spool", "logDir": "$dir/logs", "httpPort": 0$tls }
JSON
  # stdout not inherited: the caller reads this function's output until every writer is gone.
  node dist/cli.js serve --config "$dir/config.json" >/dev/null 2>"$dir/serve.log" & pid=$!
  wait_node "$port_plain" 1200 || { kill $pid; echo "node did not answer C-ECHO within 60 s: $dir/serve.log" >&2; return 1; }
  t0=$(now)
  s=$(push "$port" "$1" DEID)
  while [ "$(filed_rows "$dir")" -lt "${#FILES[@]}" ]; do sleep 0.02; done
  t1=$(now)
  sleep 1; sync   # the checkpoint retires the burst and its segments are readied for reuse
  t2=$(now)
  s2=$(push "$port" "$1" DEID FILES2)
  while [ "$(filed_rows "$dir")" -lt "$((2 * ${#FILES[@]}))" ]; do sleep 0.02; done
  t3=$(now)
  rss=$(peak_rss_mb $pid)
  SCU_TLS=()
  kill -TERM $pid; wait $pid 2>/dev/null || true
  echo "$s $(echo "$t1 - $t0" | bc -l) $s2 $(echo "$t3 - $t2" | bc -l) $rss"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ROUNDS="${ROUNDS:-3}"

if [ "${CONVERT:-0}" = 1 ]; then
  n=${#FILES[@]}
  FILES_BACKLOG="${CONVERT_FILES:-4}"; FRAMES="${CONVERT_FRAMES:-16}"
  mkdir -p "$WORK/j2k"
  for k in $(seq "$FILES_BACKLOG"); do
    node scripts/make-multiframe.mjs "$WORK/j2k/native$k.dcm" --frames "$FRAMES" --patient-id BMRN0000 --accession BACC0000 >/dev/null
    gdcmconv -K -i "$WORK/j2k/native$k.dcm" -o "$WORK/j2k/backlog$k.dcm"; rm "$WORK/j2k/native$k.dcm"
  done
  BACKLOG=("$WORK"/j2k/backlog*.dcm)
  printf '%s\n' "${FILES[@]}" > "$WORK/push.list"
  echo "Backlog: ${#BACKLOG[@]} JPEG 2000 instances of $FRAMES frames ($(du -ch "${BACKLOG[@]}" | tail -1 | cut -f1)), decoded to $((FILES_BACKLOG * FRAMES / 2)) MiB"
  run_convert() { # mode (none|thread|inline) -> "seconds p50 p95 p99 max backlog_delivered"
    local mode=$1 port dir pid scp_port scp_pid forward=[] out delivered
    port=$(free_port); dir="$WORK/node"; rm -rf "$dir"; mkdir -p "$dir"; sync
    if [ "$mode" != none ]; then
      scp_port=$(free_port)
      storescp --ignore +xi -aet RESEARCH "$scp_port" >/dev/null 2>&1 & scp_pid=$!
      wait_port "$scp_port"
      forward="[\"RESEARCH@127.0.0.1:$scp_port\"]"
    fi
    cat > "$dir/config.json" <<JSON
{ "host": "127.0.0.1", "port": $port, "aeTitle": "DEID", "csv": "$WORK/mapping.csv",
  "output": "$dir/output", "db": "$dir/state/state.sqlite", "quarantine": "$dir/quarantine",
  "spool": "$dir/spool", "logDir": "$dir/logs", "forward": $forward, "httpPort": 0 }
JSON
    DICOM_DEID_CONVERT=$([ "$mode" = inline ] && echo inline) \
      node dist/cli.js serve --config "$dir/config.json" >/dev/null 2>"$dir/serve.log" & pid=$!
    wait_node "$port" 1200 || { kill $pid; echo "node did not answer C-ECHO within 60 s: $dir/serve.log" >&2; return 1; }
    storescu -xv -aec DEID 127.0.0.1 "$port" "${BACKLOG[@]}" >/dev/null 2>&1
    while [ "$(filed_rows "$dir")" -lt "${#BACKLOG[@]}" ]; do sleep 0.02; done
    out=$(node scripts/bench-ack-push.mjs dist "$port" DEID "$WORK/push.list" | jq -r '"\(.seconds) \(.p50) \(.p95) \(.p99) \(.max)"')
    delivered=-
    if [ "$mode" != none ]; then
      delivered=$(node dist/cli.js queue --config "$dir/config.json" | grep -o '[0-9]* delivered' | cut -d' ' -f1)
    fi
    kill -TERM $pid; wait $pid 2>/dev/null || true
    [ -n "${scp_pid:-}" ] && { kill $scp_pid; wait $scp_pid 2>/dev/null || true; }
    echo "$out $delivered"
  }
  declare -A SECS=() P50=() P95=() P99=() MAX=() DELIV=()
  MODES=(none thread inline)
  for r in $(seq "$ROUNDS"); do
    for ((k = 0; k < 3; k++)); do
      m=${MODES[$(((k + r) % 3))]}   # rotate the order each round
      read -r sec p50 p95 p99 max dl < <(run_convert "$m")
      SECS[$m]="${SECS[$m]:-} $sec"; P50[$m]="${P50[$m]:-} $p50"; P95[$m]="${P95[$m]:-} $p95"
      P99[$m]="${P99[$m]:-} $p99"; MAX[$m]="${MAX[$m]:-} $max"; DELIV[$m]="${DELIV[$m]:-} $dl"
    done
  done
  printf '\n%-44s %8s %7s %7s %7s %8s %10s   %s\n' "$n slices, 1 association (median of $ROUNDS)" seconds p50_ms p95_ms p99_ms max_ms "vs none" "forward deliveries when the push ended, each round (backlog: ${#BACKLOG[@]})"
  ref=$(median ${SECS[none]})
  for m in "${MODES[@]}"; do
    label="no forwarding"; [ "$m" = thread ] && label="forward, converting on the conversion thread"; [ "$m" = inline ] && label="forward, converting on the main thread"
    # shellcheck disable=SC2086
    printf '%-44s %8.2f %7s %7s %7s %8s %10.2f   %s\n' "$label" "$(median ${SECS[$m]})" "$(median ${P50[$m]})" \
      "$(median ${P95[$m]})" "$(median ${P99[$m]})" "$(median ${MAX[$m]})" "$(echo "$ref / $(median ${SECS[$m]})" | bc -l)" \
      "$(echo ${DELIV[$m]})"
  done
  echo "(vs none = the push's speed against the node without forwarding, medians; the machine may be shared)"
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
  exit 0
fi
n=${#FILES[@]}
printf '\n%-50s %8s %9s %8s   %s\n' "run (median of $ROUNDS rounds)" "seconds" "files/s" "ratio" "ratio in each round"
for assoc in 1 4; do
  REFS=(); ACKS=(); FILEDS=(); ACK2S=(); FILED2S=(); RSSS=(); RA=(); RF=(); RA2=(); RF2=()
  TREFS=(); TACKS=(); TFILEDS=(); TRA=(); TRF=(); TVS=()
  ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
  for r in $(seq "$ROUNDS"); do
    REF=$(run_storescp $assoc)
    read -r ACK FILED ACK2 FILED2 RSS < <(run_node $assoc)
    REFS+=("$REF"); ACKS+=("$ACK"); FILEDS+=("$FILED"); ACK2S+=("$ACK2"); FILED2S+=("$FILED2"); RSSS+=("$RSS")
    RA+=("$(ratio "$REF" "$ACK")"); RF+=("$(ratio "$REF" "$FILED")"); RA2+=("$(ratio "$REF" "$ACK2")"); RF2+=("$(ratio "$REF" "$FILED2")")
    if [ "$TLS" = 1 ]; then
      TREF=$(run_storescp $assoc tls)
      read -r TACK TFILED _ _ TRSS < <(run_node $assoc tls)
      TREFS+=("$TREF"); TACKS+=("$TACK"); TFILEDS+=("$TFILED"); RSSS+=("$TRSS")
      TRA+=("$(ratio "$TREF" "$TACK")"); TRF+=("$(ratio "$TREF" "$TFILED")"); TVS+=("$(ratio "$ACK" "$TACK")")
    fi
  done
  REF=$(median "${REFS[@]}")
  RSS=$(printf '%s\n' "${RSSS[@]}" | sort -g | tail -1)
  line() { # label seconds[] ratios[]
    local label=$1; shift; local -n secs=$1 ratios=$2; local m; m=$(median "${secs[@]}")
    printf '%-50s %8.2f %9.0f %8s   %s\n' "$label" "$m" "$(echo "$n / $m" | bc -l)" "$(median "${ratios[@]}")" "${ratios[*]}"
  }
  printf '%-50s %8.2f %9.0f %8s\n' "storescp +B, $assoc association(s)" "$REF" "$(echo "$n / $REF" | bc -l)" "1.00"
  line "serve, 1st burst: acknowledged (durable)" ACKS RA
  line "serve, 1st burst: all de-identified + filed" FILEDS RF
  line "serve, 2nd burst: acknowledged (durable)" ACK2S RA2
  line "serve, 2nd burst: all de-identified + filed" FILED2S RF2
  if [ "$TLS" = 1 ]; then
    TREF=$(median "${TREFS[@]}")
    printf '%-50s %8.2f %9.0f %8s   %s\n' "storescp +tls +B, $assoc association(s)" "$TREF" "$(echo "$n / $TREF" | bc -l)" \
      "$(ratio "$REF" "$TREF")" "(its speed over storescp +B's)"
    line "serve over TLS: acknowledged (vs storescp +tls)" TACKS TRA
    line "serve over TLS: all filed (vs storescp +tls)" TFILEDS TRF
    printf '%-50s %8s %9s %8s   %s\n' "serve over TLS vs serve plain, acknowledged" "" "" "$(median "${TVS[@]}")" "${TVS[*]}"
  fi
  echo "  peak RSS of the node: $RSS MB (highest of the rounds)"
done
echo "(ratio = storescp +B seconds over the node's seconds in the same round; issue 3 target >= 0.5, peak RSS < 300 MB with 4 associations)"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
