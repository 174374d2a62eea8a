#!/usr/bin/env bash
# Forwarding benchmark: the forwarder's C-STORE SCU (storeScu.sendFiles) of this checkout and of a
# reference checkout (BASE, e.g. main before a change), in the same run, against dcmtk's storescu
# as the reference sender; all send to `storescp --ignore` (receives every byte, stores nothing,
# so the sender is what is measured). Three corpora: N CT slices of 512x512 (~0.5 MB each,
# explicit VR LE), the same slices RLE-compressed by dcmcrle, and LARGE instances of LARGE_MB MiB
# each (peak RSS shows whether a sender holds data sets whole). Each corpus goes as stored to a
# storescp that accepts everything (+xa) and, from this checkout, converted (issue 14) to one that
# accepts only implicit VR LE (+xi): explicit VR LE at the byte level, RLE decoded, on the
# conversion thread; "converted / as stored" is that throughput ratio within each round.
#   usage: [ROUNDS=3] [BASE=/tmp/scu-base] [LARGE=3] [LARGE_MB=64] [RLE=1] scripts/bench-forward.sh [N=600] [WORKDIR]
# BASE is a built checkout (its dist/): e.g.
#   git worktree add --detach /tmp/scu-base main && cp -a node_modules /tmp/scu-base/ &&
#   (cd /tmp/scu-base && npx tsc -p tsconfig.build.json)
# Without BASE (or when it has no dist/), only this checkout and storescu are measured.
# Needs dcmtk, python3 with pydicom + numpy, and a built dist/ (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-600}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-benchfwd.XXXXXX)}"
BASE="${BASE:-}"
LARGE="${LARGE:-3}"
LARGE_MB="${LARGE_MB:-64}"
ROUNDS="${ROUNDS:-3}"
RLE="${RLE:-1}"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -f dist/cli.js ] || npm run build >/dev/null
export TCP_NODELAY=1   # dcmtk stalls ~40 ms per instance without it

echo "Generating $N slices and $LARGE x $LARGE_MB MiB instances in $WORK ..."
mkdir -p "$WORK/large"
"$PY" scripts/bench-batch-tree.py "$WORK" "$N" >/dev/null
"$PY" - "$WORK/large" "$LARGE" "$LARGE_MB" <<'PYEOF'
import sys, numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, count, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pixels = (np.arange(mb << 19, dtype=np.uint32) * 2654435761 >> 20).astype(np.uint16).tobytes()
for i in range(count):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientName, ds.PatientID = 'Bench^Large', f'BLARGE{i}'
    ds.Rows, ds.Columns = (mb << 19) // 1024, 1024
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(f'{out}/large{i}.dcm', write_like_original=False)
PYEOF
find "$WORK/Raw_Scans" -type f | sort > "$WORK/small.list"
find "$WORK/large" -type f | sort > "$WORK/large.list"
CORPORA=(small)
if [ "$RLE" = 1 ]; then
  mkdir -p "$WORK/rle"
  awk '{printf "%s\n%s/rle/%05d.dcm\n", $0, dir, NR}' dir="$WORK" "$WORK/small.list" | xargs -d '\n' -n 2 -P 2 dcmcrle
  find "$WORK/rle" -type f | sort > "$WORK/rle.list"
  CORPORA+=(rle)
fi
CORPORA+=(large)
for c in "${CORPORA[@]}"; do cat $(cat "$WORK/$c.list") > /dev/null; done   # warm the page cache

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
now() { date +%s.%N; }

# One send to a fresh storescp --ignore (accepting everything, or only implicit VR LE for the
# converting sender): prints "seconds delivered peakRssMB".
run() { # sender(storescu|this|convert|base) list
  local port pid out t0 t1 accept=+xa
  [ "$1" = convert ] && accept=+xi
  port=$(free_port)
  storescp --ignore "$accept" -aet BENCH "$port" >/dev/null 2>&1 & pid=$!
  wait_port "$port"
  case "$1" in
    storescu)
      t0=$(now)
      # -xr: RLE proposed too, so storescu sends the RLE corpus as stored.
      storescu -xr -aec BENCH 127.0.0.1 "$port" $(cat "$2") >/dev/null 2>&1
      t1=$(now)
      out="$(echo "$t1 - $t0" | bc -l) $(wc -l < "$2") -" ;;
    this|convert) out=$(node scripts/bench-forward-send.mjs dist "$port" "$2" | jq -r '"\(.seconds) \(.delivered) \(.peakRssMB|floor)"') ;;
    base) out=$(node scripts/bench-forward-send.mjs "$BASE/dist" "$port" "$2" | jq -r '"\(.seconds) \(.delivered) \(.peakRssMB|floor)"') ;;
  esac
  kill $pid; wait $pid 2>/dev/null || true
  echo "$out"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
SENDERS=(storescu this convert)
[ -n "$BASE" ] && [ -f "$BASE/dist/forward/storeScu.js" ] && SENDERS+=(base)
[ "${#SENDERS[@]}" = 4 ] || echo "(no BASE checkout with a dist/: measuring storescu and this checkout only)"

for corpus in "${CORPORA[@]}"; do
  list="$WORK/$corpus.list"
  files=$(wc -l < "$list")
  mb=$(cat $(cat "$list") | wc -c | awk '{printf "%.0f", $1/1048576}')
  declare -A SECS=() RSS=() OK=()
  for r in $(seq "$ROUNDS"); do
    # Rotate the order each round, so no sender always runs first (or right after another).
    for ((k = 0; k < ${#SENDERS[@]}; k++)); do
      s=${SENDERS[$(((k + r) % ${#SENDERS[@]}))]}
      read -r sec ok rss < <(run "$s" "$list")
      SECS[$s]="${SECS[$s]:-} $sec"; RSS[$s]="${RSS[$s]:-} $rss"; OK[$s]="${OK[$s]:-} $ok"
    done
  done
  printf '\n%s: %d files, %s MiB (median of %d rounds)\n' "$corpus" "$files" "$mb" "$ROUNDS"
  printf '%-34s %8s %8s %8s %12s %10s\n' sender seconds files/s MiB/s "vs storescu" "peak RSS"
  ref=$(median ${SECS[storescu]})
  for s in "${SENDERS[@]}"; do
    # shellcheck disable=SC2086
    m=$(median ${SECS[$s]}); peak=$(printf '%s\n' ${RSS[$s]} | sort -g | tail -1)
    bad=$(printf '%s\n' ${OK[$s]} | awk -v n="$files" '$1 != n' | wc -l)
    label=$s; [ "$s" = this ] && label="this checkout (storeScu)"; [ "$s" = base ] && label="BASE $(git -C "$BASE" rev-parse --short HEAD) (storeScu)"
    [ "$s" = convert ] && label="this, converted to implicit VR LE"
    printf '%-34s %8.2f %8.1f %8.1f %12.2f %10s%s\n' "$label" "$m" "$(echo "$files / $m" | bc -l)" \
      "$(echo "$mb / $m" | bc -l)" "$(echo "$ref / $m" | bc -l)" "$([ "$peak" = - ] && echo - || echo "$peak MB")" \
      "$([ "$bad" = 0 ] || echo "  ($bad round(s) not all delivered!)")"
  done
  printf 'converted / as stored throughput: %.2f (each round:' "$(echo "$(median ${SECS[this]}) / $(median ${SECS[convert]})" | bc -l)"
  read -ra a <<< "${SECS[convert]}"; read -ra b <<< "${SECS[this]}"
  for ((i = 0; i < ${#a[@]}; i++)); do printf ' %.2f' "$(echo "${b[$i]} / ${a[$i]}" | bc -l)"; done; echo ')'
  if [ "${#SENDERS[@]}" = 4 ]; then
    printf 'this / BASE throughput: %.2f (each round:' "$(echo "$(median ${SECS[base]}) / $(median ${SECS[this]})" | bc -l)"
    read -ra a <<< "${SECS[this]}"; read -ra b <<< "${SECS[base]}"
    for ((i = 0; i < ${#a[@]}; i++)); do printf ' %.2f' "$(echo "${b[$i]} / ${a[$i]}" | bc -l)"; done; echo ')'
  fi
  unset SECS RSS OK
done
echo "(vs storescu = storescu seconds over the sender's seconds; peak RSS = highest of the rounds, the Node process only)"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
