#!/usr/bin/env bash
# Batch benchmark: ~600 CT slices of 512x512 (16-bit). Times, in the same run, `cp -r`, a plain
# Node read+write copy, the batch's system-call floor (scripts/bench-batch-floor.mjs: the same
# opens, header writes, range copies and renames in two threads, nothing else), and
# `dicom-deid batch`, and prints the ratios.
#   usage: [ROUNDS=3] scripts/bench-batch.sh [N=600] [WORKDIR]   (prints medians of ROUNDS rounds)
# Needs python3 with pydicom + numpy, and a built dist/ (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-600}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-bench.XXXXXX)}"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f dist/cli.js ] || npm run build >/dev/null

echo "Generating $N slices in $WORK ..."
mkdir -p "$WORK"
"$PY" scripts/bench-batch-tree.py "$WORK" "$N"
du -sh "$WORK/Raw_Scans" | awk '{print "Tree size: " $1}'

now() { date +%s.%N; }
# Each contender starts with no dirty pages: without the sync, the one that runs after another
# pays for the other's writeback (measured: batch 1.2 s right after cp -r and the Node copy,
# 0.6 s after a sync).
fresh() { rm -rf "$WORK/out_cp" "$WORK/out_node" "$WORK/out_floor" "$WORK/out_deid" "$WORK/out_py" "$WORK/state" "$WORK/logs"; sync; }
timed() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo "$t1 - $t0" | bc -l; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm the page cache once so every contender reads from memory.
cat $(find "$WORK/Raw_Scans" -type f) > /dev/null
ROUNDS="${ROUNDS:-3}"
CP=(); NODE=(); FLOOR=(); DEID=(); PYD=(); GUARD=()
for r in $(seq "$ROUNDS"); do
  fresh; CP+=("$(timed cp -r "$WORK/Raw_Scans" "$WORK/out_cp")")
  fresh; NODE+=("$(timed node scripts/bench-batch-copy.mjs "$WORK/Raw_Scans" "$WORK/out_node")")
  fresh; FLOOR+=("$(timed node scripts/bench-batch-floor.mjs "$WORK/Raw_Scans" "$WORK/out_floor" 2)")
  fresh; DEID+=("$(timed node dist/cli.js batch --csv "$WORK/mapping.csv" --input "$WORK/Raw_Scans" \
    --output "$WORK/out_deid" --db "$WORK/state/state.sqlite" --log-dir "$WORK/logs" --quiet)")
  OK=$(find "$WORK/out_deid" -name '*.dcm' | wc -l)
  # The leak guard's share of the workers' time per file (the run log's 'batch finished' line).
  GUARD+=("$(grep '"batch finished"' "$WORK/logs/dicom-deid.log" | tail -1 |
    sed -E 's/.*"leakGuardMs":([0-9]+).*"workerMs":([0-9]+).*/100 * \1 \/ \2/' | bc -l)")
  fresh; PYD+=("$(timed "$PY" scripts/bench-batch-pydicom.py "$WORK/mapping.csv" "$WORK/Raw_Scans" "$WORK/out_py")")
done
T_CP=$(median "${CP[@]}"); T_NODE=$(median "${NODE[@]}"); T_FLOOR=$(median "${FLOOR[@]}"); T_DEID=$(median "${DEID[@]}"); T_PY=$(median "${PYD[@]}")

printf '\n%-28s %8s   (median of %s rounds; all rounds: seconds)\n' "contender" "seconds" "$ROUNDS"
printf '%-28s %8.2f   %s\n' "cp -r" "$T_CP" "$(printf '%.2f ' "${CP[@]}")"
printf '%-28s %8.2f   %s\n' "node read+write copy" "$T_NODE" "$(printf '%.2f ' "${NODE[@]}")"
printf '%-28s %8.2f   %s\n' "system-call floor (node)" "$T_FLOOR" "$(printf '%.2f ' "${FLOOR[@]}")"
printf '%-28s %8.2f   %s\n' "pydicom per-file stand-in" "$T_PY" "$(printf '%.2f ' "${PYD[@]}")"
printf '%-28s %8.2f   %s  (%d files written, %.0f files/s)\n' "dicom-deid batch" "$T_DEID" "$(printf '%.2f ' "${DEID[@]}")" "$OK" "$(echo "$OK / $T_DEID" | bc -l)"
printf '%-28s %7.1f%%   %s  (the leak guard: its share of the workers%s time per file)\n' "leak guard share" \
  "$(median "${GUARD[@]}")" "$(printf '%.1f%% ' "${GUARD[@]}")" "'"
printf '\nbatch / cp -r:      %6.2fx   (where we want to end: <= 2x)\n' "$(echo "$T_DEID / $T_CP" | bc -l)"
printf 'batch / node copy:  %6.2fx   (target <= 2x)\n' "$(echo "$T_DEID / $T_NODE" | bc -l)"
printf 'floor / cp -r:      %6.2fx   (the copying alone, from Node, with its start-up)\n' "$(echo "$T_FLOOR / $T_CP" | bc -l)"
printf 'batch / floor:      %6.2fx   (what our own work adds: parse, de-identify, leak guard, state)\n' "$(echo "$T_DEID / $T_FLOOR" | bc -l)"
printf 'batch vs pydicom:   %6.1fx faster   (target >= 10x the pydicom + dicom-anonymizer script, which does\n' "$(echo "$T_PY / $T_DEID" | bc -l)"
printf '                    more per file than this stand-in: see scripts/bench-batch-pydicom.py)\n'
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
