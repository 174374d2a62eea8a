#!/usr/bin/env bash
# Conversion throughput: our engine (dist/, dcmjs-codecs) against `gdcmconv --raw` on the same
# files, in the same run. Input: a native 16-bit multi-frame instance (N frames of 512x512,
# default 64 = 32 MiB) that dcmtk and GDCM then compress (JPEG lossless SV1, JPEG-LS, RLE,
# JPEG 2000) or re-encode (big endian, deflate). Each file is converted to explicit VR little
# endian 3 times by each tool; prints the median MB/s of native output and our/gdcm ratio.
# Noisy on a shared machine: compare ratios within a run only.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-64}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
npm run build >/dev/null

/usr/bin/python3 - "$work/native.dcm" "$N" <<'PY'
import sys
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
path, n = sys.argv[1], int(sys.argv[2])
ds = Dataset()
ds.file_meta = FileMetaDataset()
ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds.PatientName = "Doe^Bench"
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
ds.NumberOfFrames, ds.Rows, ds.Columns = n, 512, 512
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
y, x = np.mgrid[0:512, 0:512]
rng = np.random.default_rng(1)
frames = [((np.hypot(x - 256, y - 256 + f) * 9) % 4096 + rng.integers(0, 16, (512, 512))) % 4096 for f in range(n)]
ds.PixelData = np.stack(frames).astype(np.uint16).tobytes()
ds.save_as(path, write_like_original=False)
PY

declare -A files=(
  [big-endian]="dcmconv +tb"
  [deflate]="dcmconv +td"
  [rle]="dcmcrle"
  [jpeg-lossless]="dcmcjpeg +e1"
  [jpeg-ls]="dcmcjpls +el"
)
for name in "${!files[@]}"; do ${files[$name]} "$work/native.dcm" "$work/$name.dcm"; done
gdcmconv -K -i "$work/native.dcm" -o "$work/jpeg2000.dcm"
native_mb=$(( $(stat -c %s "$work/native.dcm") / 1048576 ))

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-14s %8s %12s %12s %10s\n' input "MB in" "ours MB/s" "gdcm MB/s" "ours/gdcm"
for name in big-endian deflate rle jpeg-lossless jpeg-ls jpeg2000; do
  in="$work/$name.dcm"
  ours=() gdcm=()
  for _ in 1 2 3; do
    ours+=("$(node scripts/bench-transcode.mjs "$in" 1.2.840.10008.1.2.1 | node -pe 'JSON.parse(require("fs").readFileSync(0)).seconds')")
    t0=$(date +%s.%N); gdcmconv --raw -i "$in" -o "$work/out.dcm"; t1=$(date +%s.%N)
    gdcm+=("$(echo "$t1 - $t0" | bc -l)")
  done
  o=$(printf '%s\n' "${ours[@]}" | median)
  g=$(printf '%s\n' "${gdcm[@]}" | median)
  printf '%-14s %8.1f %12.1f %12.1f %10.2f\n' "$name" "$(echo "$(stat -c %s "$in") / 1048576" | bc -l)" \
    "$(echo "$native_mb / $o" | bc -l)" "$(echo "$native_mb / $g" | bc -l)" "$(echo "$g / $o" | bc -l)"
done
echo "(MB/s of native output, $N frames of 512x512x16 bits; ours includes Node start-up and loading the codecs, ~0.1 s)"
