#!/usr/bin/env bash
# Retrieve benchmark: `dicom-deid retrieve` pulling a made-up cohort of N instances (STUDIES
# studies of 512x512 CT slices, one patient each) from Orthanc, against Orthanc's own transfer of
# the same studies to dcmtk's storescp (dcmtk movescu, one study-level C-MOVE after another, as
# the job moves them by default), in the same run, ROUNDS times with the order alternating.
#
# What is timed: for dicom-deid, the whole command (start of the node's receiving side, pre-flight,
# C-FINDs, every C-MOVE, de-identification and durable filing, the arrival checks, the report);
# for the reference, the C-MOVEs into storescp, which writes the files as they come (no fsync,
# no de-identification). So the ratio is what the whole job costs against a bare transfer.
#   usage: [ROUNDS=3] [STUDIES=10] scripts/bench-retrieve.sh [N=300] [WORKDIR]
# Needs Orthanc, dcmtk, python3 with pydicom, and a built dist/ (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
WORK="${2:-$(mktemp -d /tmp/dicom-deid-benchretr.XXXXXX)}"
mkdir -p "$WORK"
ROUNDS="${ROUNDS:-3}"
STUDIES="${STUDIES:-10}"
PER=$(((N + STUDIES - 1) / STUDIES))
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
ORTHANC=$(command -v Orthanc || echo /usr/sbin/Orthanc)
[ -f dist/cli.js ] || npm run build >/dev/null
export TCP_NODELAY=1   # dcmtk stalls ~40 ms per instance without it

free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

HTTP=$(free_port); DICOM=$(free_port); NODE=$(free_port); SCP=$(free_port)
echo "Generating $STUDIES studies x $PER slices of 512x512 in $WORK ..."
{
  echo '{"studies": ['
  for i in $(seq "$STUDIES"); do
    [ "$i" = 1 ] || echo ','
    printf '{"patientId":"BENCH%03d","accession":"BA%03d","studyUid":"1.2.826.0.1.3680043.9.7433.9.%d","studyDate":"20230301","instances":%d,"rows":512}' "$i" "$i" "$i" "$PER"
  done
  echo ']}'
} > "$WORK/spec.json"
"$PY" test/fixtures/make_cohort.py "$WORK/cohort" < "$WORK/spec.json" > /dev/null
MB=$(du -sm "$WORK/cohort" | cut -f1)
FILES=$(find "$WORK/cohort" -name '*.dcm' | wc -l)

mkdir -p "$WORK/orthanc/storage" "$WORK/orthanc/index"
cat > "$WORK/orthanc/orthanc.json" <<EOF
{"Name":"bench","StorageDirectory":"$WORK/orthanc/storage","IndexDirectory":"$WORK/orthanc/index",
 "HttpPort":$HTTP,"DicomPort":$DICOM,"DicomAet":"ORTHANC","DicomCheckCalledAet":false,
 "RemoteAccessAllowed":false,"AuthenticationEnabled":false,"Plugins":[],"StorageCompression":false,
 "DicomModalities":{"deid":["DEID","127.0.0.1",$NODE],"scp":["STORESCP","127.0.0.1",$SCP]}}
EOF
"$ORTHANC" "$WORK/orthanc/orthanc.json" > "$WORK/orthanc/log.txt" 2>&1 & ORTHANC_PID=$!
trap 'kill $ORTHANC_PID 2>/dev/null || true' EXIT
wait_port "$HTTP"; wait_port "$DICOM"
echo "Loading $FILES instances ($MB MiB) into Orthanc ..."
for f in "$WORK"/cohort/*.dcm; do curl -sf -X POST --data-binary @"$f" "http://127.0.0.1:$HTTP/instances" > /dev/null; done

{
  echo 'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes'
  for i in $(seq "$STUDIES"); do printf 'BENCH%03d,,RB%03d,2023-03-01,2024-06-15,\n' "$i" "$i"; done
} > "$WORK/mapping.csv"

# The node's spool is kept between rounds (its reserve is written once, as on a real node);
# state and output are new each round, so every round moves every study.
node_config() { # round [csv]
  cat > "$WORK/node$1.json" <<EOF
{"aeTitle":"DEID","host":"127.0.0.1","port":$NODE,"csv":"${2:-$WORK/mapping.csv}","output":"$WORK/r$1/output",
 "db":"$WORK/r$1/state/state.sqlite","quarantine":"$WORK/r$1/quarantine","spool":"$WORK/spool",
 "logDir":"$WORK/r$1/logs","spoolReserveMB":256}
EOF
}
# Warm-up: one study, which also writes the spool's reserve (once, as a node's first start does).
head -2 "$WORK/mapping.csv" > "$WORK/warm.csv"
node_config warm "$WORK/warm.csv"
node dist/cli.js retrieve --from "ORTHANC@127.0.0.1:$DICOM" --config "$WORK/nodewarm.json" > /dev/null
rm -rf "$WORK/rwarm"

run_deid() { # round -> seconds
  local t0 t1 n
  node_config "$1"
  t0=$(now)
  node dist/cli.js retrieve --from "ORTHANC@127.0.0.1:$DICOM" --config "$WORK/node$1.json" > "$WORK/r$1.out" 2>&1 || {
    cat "$WORK/r$1.out" >&2; exit 1; }
  t1=$(now)
  n=$(find "$WORK/r$1/output" -name '*.dcm' | wc -l)
  [ "$n" = "$FILES" ] || { echo "round $1: dicom-deid filed $n of $FILES" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

run_dry() { # round -> seconds: the fixed part (start-up, pre-flight, C-FINDs), nothing moved
  local t0 t1
  node_config "dry$1"
  t0=$(now)
  node dist/cli.js retrieve --from "ORTHANC@127.0.0.1:$DICOM" --config "$WORK/nodedry$1.json" --dry-run > /dev/null
  t1=$(now)
  rm -rf "$WORK/rdry$1"
  echo "$t1 - $t0" | bc -l
}

run_scp() { # round -> seconds
  local t0 t1 n pid
  mkdir -p "$WORK/scp$1"
  storescp -aet STORESCP -od "$WORK/scp$1" "$SCP" > /dev/null 2>&1 & pid=$!
  wait_port "$SCP"
  t0=$(now)
  for i in $(seq "$STUDIES"); do
    movescu -aet DEID -aec ORTHANC -aem STORESCP -S -k QueryRetrieveLevel=STUDY \
      -k "StudyInstanceUID=1.2.826.0.1.3680043.9.7433.9.$i" 127.0.0.1 "$DICOM" > /dev/null 2>&1
  done
  t1=$(now)
  kill $pid; wait $pid 2>/dev/null || true
  n=$(find "$WORK/scp$1" -type f | wc -l)
  [ "$n" = "$FILES" ] || { echo "round $1: storescp received $n of $FILES" >&2; exit 1; }
  rm -rf "$WORK/scp$1"
  echo "$t1 - $t0" | bc -l
}

D=(); S=(); F=(); RATIO=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then d=$(run_deid "$r"); s=$(run_scp "$r"); else s=$(run_scp "$r"); d=$(run_deid "$r"); fi
  f=$(run_dry "$r")
  D+=("$d"); S+=("$s"); F+=("$f"); RATIO+=("$(echo "$d / $s" | bc -l)")
  printf 'round %d: dicom-deid retrieve %.2f s (its dry run %.2f s), Orthanc -> storescp %.2f s, ratio %.2f\n' \
    "$r" "$d" "$f" "$s" "${RATIO[-1]}"
  [ -n "${KEEP:-}" ] || rm -rf "$WORK/r$r"
done
md=$(median "${D[@]}"); ms=$(median "${S[@]}")
printf '\n%d instances, %d studies, %s MiB (median of %d rounds)\n' "$FILES" "$STUDIES" "$MB" "$ROUNDS"
printf '%-44s %8s %10s %10s\n' '' seconds 'inst/s' 'MiB/s'
printf '%-44s %8.2f %10.1f %10.1f\n' 'Orthanc C-MOVE -> storescp (movescu)' "$ms" "$(echo "$FILES / $ms" | bc -l)" "$(echo "$MB / $ms" | bc -l)"
printf '%-44s %8.2f %10.1f %10.1f\n' 'dicom-deid retrieve (whole job, filed)' "$md" "$(echo "$FILES / $md" | bc -l)" "$(echo "$MB / $md" | bc -l)"
printf '%-44s %8.2f\n' '  of which the fixed part (a --dry-run)' "$(median "${F[@]}")"
printf 'dicom-deid / reference time: median of rounds %.2f (rounds:%s)\n' "$(median "${RATIO[@]}")" "$(printf ' %.2f' "${RATIO[@]}")"
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
