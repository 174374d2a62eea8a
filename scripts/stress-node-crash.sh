#!/usr/bin/env bash
# Crash-consistency stress test of `dicom-deid serve` (run by hand, not by CI): the node must never
# lose an instance it acknowledged.
# For ROUNDS rounds the node is started on the same state/spool/output, 4 `storescu -v` push
# slices at once, and the node gets SIGKILL at a random moment 0.2-1.5 s later (in some rounds one
# storescu is SIGKILLed first; in some the node first files the earlier rounds' backlog, so that
# its journal segments are reused). Each round pushes a new corpus of N slices
# (bench-batch-tree.py: same patients, new UIDs) plus what earlier rounds sent without an answer,
# as a sender would: so every acknowledged instance is acknowledged once, and a lost one cannot be
# masked by an earlier copy being filed. A 128 MiB spool reserve (2 journal segments of 64 MiB)
# for 4 associations sends some instances to segments, others to plain spool files
# (src/node/spool/spoolJournal.ts). Then the node is started once more without pushing, left to go
# idle, and stopped with SIGTERM. Checks: every acknowledged instance (storescu: "Received Store
# Response (Success)") has an audit row with status ok; one output file per filed original (no
# duplicates, no orphans; state db agrees); 50 random outputs readable by dcmdump -q; quarantine
# empty; exit code 0 after SIGTERM. Prints PASS/FAIL; exits 1 on FAIL.
#   usage: [SEED=n] [KEEP=1] scripts/stress-node-crash.sh [ROUNDS=5] [N=300]
# Needs dcmtk, python3 with pydicom + numpy, and a built dist/. The work dir (mktemp in /tmp) is
# kept on FAIL or with KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
N="${2:-300}"
SEED="${SEED:-$((RANDOM * 32768 + RANDOM))}"
RANDOM=$SEED   # the random choices (not the timing) repeat with the same SEED
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f dist/cli.js ] || npm run build >/dev/null
export TCP_NODELAY=1   # dcmtk stalls ~40 ms per instance without it
WORK="$(mktemp -d /tmp/dicom-deid-stress.XXXXXX)"
NODE="$WORK/node"; mkdir -p "$NODE"
echo "work dir: $WORK   seed: $SEED   rounds: $ROUNDS   new slices per round: $N"

# --- one corpus per round; the original SOP Instance UID of each file (storescu -v names files)
for r in $(seq "$ROUNDS"); do mkdir -p "$WORK/c$r"; "$PY" scripts/bench-batch-tree.py "$WORK/c$r" "$N" >/dev/null; done
"$PY" - "$WORK" > "$WORK/uids.tsv" <<'PY'
import glob, sys, pydicom
for p in sorted(glob.glob(sys.argv[1] + '/c*/Raw_Scans/**/*.dcm', recursive=True)):
    print(f"{p}\t{pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID}")
PY
: > "$WORK/acked.files"; : > "$WORK/unanswered.files"

PORT=$("$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$NODE/config.json" <<JSON
{ "host": "127.0.0.1", "port": $PORT, "aeTitle": "DEID", "csv": "$WORK/c1/mapping.csv",
  "output": "$NODE/output", "db": "$NODE/state/state.sqlite", "quarantine": "$NODE/quarantine",
  "spool": "$NODE/spool", "logDir": "$NODE/logs", "spoolReserveMB": 128, "httpPort": 0 }
JSON

ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# Starts the node (stderr to serve.<tag>.log) and waits until it listens (its log says so; a
# probe connection would be logged as an aborted association). Sets NODE_PID.
start_node() {
  local log="$NODE/serve.$1.log"
  node dist/cli.js serve --config "$NODE/config.json" 2>"$log" & NODE_PID=$!
  for _ in $(seq 1200); do
    grep -q 'listening as DEID' "$log" && return 0
    kill -0 $NODE_PID 2>/dev/null || { echo "node exited at start-up:"; cat "$log"; exit 1; }
    sleep 0.05
  done
  echo "node did not listen within 60 s"; exit 1
}

# Waits until the audit rows and output files stop growing for ~3 s (at most 5 min); prints them.
audit_rows() { cat "$NODE"/logs/deid_log_*.csv 2>/dev/null | grep -vc 'source_path,status,' || true; }
out_files() { find "$NODE/output" -name '*.dcm' | wc -l; }
wait_idle() {
  local last="" now same=0
  for _ in $(seq 600); do
    now="$(audit_rows)/$(out_files)"
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
    [ "$same" -ge 6 ] && break
    sleep 0.5
  done
  echo "$last"
}

# Files of storescu log $1 that got "Received Store Response (Success)": storescu -v prints
# "I: Sending file: <path>", then (after the request) the response for that one file.
acked_files() { awk '/^I: Sending file: / { f = substr($0, 18) } /^I: Received Store Response \(Success\)/ { print f }' "$1"; }

# --- crash rounds
for r in $(seq "$ROUNDS"); do
  start_node "$r"
  drained=""; if ((RANDOM % 2)); then wait_idle >/dev/null; drained="drained first, "; fi
  # this round's new corpus + every earlier file without an answer, shuffled
  mapfile -t ORDER < <({ grep -F "$WORK/c$r/" "$WORK/uids.tsv" | cut -f1; cat "$WORK/unanswered.files"; } | shuf --random-source=<(yes "$SEED.$r"))
  PIDS=()
  for k in 0 1 2 3; do
    SLICE=(); for ((i = k; i < ${#ORDER[@]}; i += 4)); do SLICE+=("${ORDER[$i]}"); done
    # in a subshell with no stderr (no "Killed" notice from bash); storescu's own pid in a file
    ( storescu -v -aec DEID 127.0.0.1 "$PORT" "${SLICE[@]}" >"$WORK/scu.$r.$k.log" 2>&1 &
      echo $! > "$WORK/scu.$r.$k.pid"; wait ) 2>/dev/null & PIDS+=($!)
  done
  t_node=$((200 + RANDOM % 1301))   # node SIGKILL 0.2-1.5 s after the pushes start
  what="node killed at ${t_node} ms"
  if ((RANDOM % 2)); then           # about every other round, one storescu dies first
    victim=$((RANDOM % 4)); t_scu=$((100 + RANDOM % (t_node - 100)))
    ms_sleep "$t_scu"; kill -9 "$(cat "$WORK/scu.$r.$victim.pid")" 2>/dev/null || true
    ms_sleep $((t_node - t_scu))
    what="storescu $victim killed at ${t_scu} ms, $what"
  else
    ms_sleep "$t_node"
  fi
  kill -9 "$NODE_PID" 2>/dev/null || what="$what (it had already exited!)"
  wait "$NODE_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do wait "$p" || true; done
  for k in 0 1 2 3; do acked_files "$WORK/scu.$r.$k.log"; done | sort > "$WORK/acked.$r.files"
  sort -u "$WORK/acked.$r.files" "$WORK/acked.files" -o "$WORK/acked.files"
  printf '%s\n' "${ORDER[@]}" | sort | comm -23 - "$WORK/acked.$r.files" > "$WORK/unanswered.files"
  ls -l "$NODE/spool" "$NODE/spool/journal" > "$WORK/spool-after-round.$r.txt" 2>&1 || true
  echo "round $r: ${drained}$what; sent ${#ORDER[@]}, acknowledged $(wc -l < "$WORK/acked.$r.files");" \
    "spool files left: $(find "$NODE/spool" -maxdepth 1 -name '*.dcm' | wc -l)"
done
# path -> original UID
awk -F'\t' 'NR == FNR { a[$0]; next } ($1 in a) { print $2 }' "$WORK/acked.files" "$WORK/uids.tsv" > "$WORK/acked.txt"

# --- final run: no pushes; wait until idle, stop with SIGTERM
start_node final
last=$(wait_idle)
kill -TERM "$NODE_PID"; rc=0; wait "$NODE_PID" || rc=$?
echo "final run: idle at $last (audit rows/output files), exit code after SIGTERM: $rc"

# --- verification
bad_dumps=0
while read -r f; do dcmdump -q "$f" >/dev/null 2>&1 || { echo "unreadable by dcmdump: $f"; bad_dumps=$((bad_dumps + 1)); }; done \
  < <(find "$NODE/output" -name '*.dcm' | shuf -n 50 --random-source=<(yes "$SEED"))
quarantined=$(find "$NODE/quarantine" -type f | wc -l)
spool_left=$(find "$NODE/spool" -maxdepth 1 -name '*.dcm' | wc -l)
set +e
"$PY" - "$WORK" "$NODE" "$rc" "$bad_dumps" "$quarantined" "$spool_left" <<'PY'
import csv, glob, os, re, sqlite3, sys
work, node, rc, bad_dumps, quarantined, spool_left = sys.argv[1:3] + [int(x) for x in sys.argv[3:]]
acked = set(open(os.path.join(work, 'acked.txt')).read().split())
sent = {l.split('\t')[1].strip() for l in open(os.path.join(work, 'uids.tsv'))}
paths = {}     # original UID -> output paths of its ok audit rows
items = set()  # spool items filed: journal records <segment>-<generation>-<offset>, or spool files
for f in sorted(glob.glob(os.path.join(node, 'logs', 'deid_log_*.csv'))):
    for row in csv.DictReader(open(f, encoding='utf-8-sig', newline='')):
        m = re.search(r'\(([0-9.]+)\)$', row['source_path'])
        if row['status'] == 'ok' and m:
            paths.setdefault(m.group(1), set()).add(row['output_path'])
            items.add(row['source_path'].split(' ')[0].split(':', 1)[1])
out = os.path.join(node, 'output')
files = {os.path.relpath(os.path.join(d, n), out) for d, _, ns in os.walk(out) for n in ns if n.endswith('.dcm')}
missing = sorted(acked - paths.keys())
dups = {u: p for u, p in paths.items() if len(p) > 1}   # one original filed under 2+ paths
referenced = set().union(*paths.values()) if paths else set()
orphans = sorted(files - referenced)                    # output files no ok row names
absent = sorted(referenced - files)                     # ok rows whose output file is not there
db = sqlite3.connect(os.path.join(node, 'state', 'state.sqlite'))
db_orig, db_new = db.execute('SELECT COUNT(DISTINCT original_sop_uid), COUNT(*) FROM filed_instance').fetchone()
rec = [i.split('-') for i in items if re.fullmatch(r'\d+-\d+-\d+', i)]
print(f"acknowledged: {len(acked)}   filed (distinct originals in ok audit rows): {len(paths)}"
      f" (+{len(paths.keys() - acked)} never acknowledged; corpus {len(sent)})   state db: {db_orig} originals, {db_new} rows")
print(f"output files: {len(files)}   duplicates: {len(dups)}   orphan outputs: {len(orphans)}   ok rows without file: {len(absent)}")
print(f"missing (acknowledged, not filed): {len(missing)}   quarantined: {quarantined}   unreadable (of 50): {bad_dumps}")
print(f"spool files left after SIGTERM: {spool_left}   exit code: {rc}")
print(f"filed from: {len(rec)} journal records ({sum(int(g) > 1 for _, g, _ in rec)} in reused segments,"
      f" max generation {max([int(g) for _, g, _ in rec], default=0)}), {len(items) - len(rec)} spool files")
for u in missing[:20]: print(f"  MISSING {u}")
for u, p in list(dups.items())[:10]: print(f"  DUPLICATE {u}: {sorted(p)}")
for f in (orphans + absent)[:10]: print(f"  FILE MISMATCH {f}")
ok = (not missing and not dups and not orphans and not absent and len(files) == len(paths) == db_orig == db_new
      and rc == 0 and bad_dumps == 0 and quarantined == 0)
print('PASS' if ok else 'FAIL')
sys.exit(0 if ok else 1)
PY
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "errors/warnings the node logged:"; grep -hiE 'error|warn' "$NODE"/serve.*.log | sed 's/\x1b\[[0-9;]*m//g; s/^[0-9:]* //' | sort | uniq -c | sort -rn | head -20 || true
  echo "work dir kept: $WORK (serve.*.log, scu.*.log, spool-after-round.*.txt, node/logs)"
elif [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK"; fi
exit "$status"
