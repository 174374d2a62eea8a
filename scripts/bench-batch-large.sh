#!/usr/bin/env bash
# Batch on one large multi-frame instance (default 4000 frames of 512x512 16-bit: 2.1 GB; see
# scripts/make-multiframe.mjs): times, in the same run, `cp` of the instance and `dicom-deid batch`
# on it (pixel data copied by the kernel, then streamed through 1 MiB: DICOM_DEID_COPY=stream),
# with each one's peak RSS (/usr/bin/time), and prints medians of the ratios taken within a round.
#   usage: [ROUNDS=3] scripts/bench-batch-large.sh [FRAMES=4000] [WORKDIR]
# Needs a built dist/ (npm run build) and /usr/bin/time. The issue's target: peak RSS at most
# 300 MB for a 2 GB instance.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES="${1:-4000}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-bench-large.XXXXXX)}"
[ -f dist/cli.js ] || npm run build >/dev/null
SRC="$WORK/Raw_Scans/P1/2024-03-01_OT"
mkdir -p "$SRC"
[ -f "$SRC/MF.dcm" ] || node scripts/make-multiframe.mjs "$SRC/MF.dcm" --frames "$FRAMES"
printf 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes\nMFMRN001,MFACC001,RES001,2024-01-01,2024-06-15,\n' \
  >"$WORK/mapping.csv"
cat "$SRC/MF.dcm" >/dev/null # every contender reads from the page cache

fresh() { rm -rf "$WORK/out" "$WORK/state"; sync; }
# Prints "seconds peak_kB" of a command.
measure() { /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1; }
BATCH=(node dist/cli.js batch --csv "$WORK/mapping.csv" --input "$WORK/Raw_Scans" --output "$WORK/out"
  --db "$WORK/state/state.sqlite" --log-dir "$WORK/state/logs" --quiet)
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

ROUNDS="${ROUNDS:-3}"
CP=(); K=(); S=(); KR=(); SR=(); KM=(); SM=(); CM=()
for _ in $(seq "$ROUNDS"); do
  fresh; read -r t m < <(measure cp "$SRC/MF.dcm" "$WORK/copy.dcm"); CP+=("$t"); CM+=("$m"); rm -f "$WORK/copy.dcm"
  fresh; read -r t m < <(measure "${BATCH[@]}"); K+=("$t"); KM+=("$m"); KR+=("$(echo "$t / ${CP[-1]}" | bc -l)")
  [ -f "$WORK/out/RES001/RES001_1/MF.dcm" ] || { echo "batch wrote no output" >&2; exit 1; }
  fresh; read -r t m < <(DICOM_DEID_COPY=stream measure "${BATCH[@]}"); S+=("$t"); SM+=("$m"); SR+=("$(echo "$t / ${CP[-1]}" | bc -l)")
done
SIZE=$(stat -c %s "$SRC/MF.dcm")
printf '\ninstance: %d bytes (%s frames); %s rounds; load %s\n' "$SIZE" "$FRAMES" "$ROUNDS" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-34s %8s %10s   %s\n' contender seconds 'peak MB' '(medians; all rounds: seconds)'
printf '%-34s %8.2f %10.0f   %s\n' 'cp' "$(median "${CP[@]}")" "$(echo "$(median "${CM[@]}") / 1024" | bc -l)" "${CP[*]}"
printf '%-34s %8.2f %10.0f   %s\n' 'batch (kernel copy)' "$(median "${K[@]}")" "$(echo "$(median "${KM[@]}") / 1024" | bc -l)" "${K[*]}"
printf '%-34s %8.2f %10.0f   %s\n' 'batch (DICOM_DEID_COPY=stream)' "$(median "${S[@]}")" "$(echo "$(median "${SM[@]}") / 1024" | bc -l)" "${S[*]}"
printf '\nbatch / cp:           %6.2fx (kernel copy)   %6.2fx (stream)   (medians of per-round ratios)\n' \
  "$(median "${KR[@]}")" "$(median "${SR[@]}")"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
