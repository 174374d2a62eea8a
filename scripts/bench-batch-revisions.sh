#!/usr/bin/env bash
# Which change made batch slower or faster: builds each git revision given in its own temporary
# worktree and times `dicom-deid batch` of each on the same tree, interleaved round by round (so a
# burst of load hits every revision alike), with `cp -r` as the same-run reference. Prints the
# median wall and CPU (user+sys) seconds of each revision and its ratio to the first.
#   usage: [ROUNDS=5] [N=600] scripts/bench-batch-revisions.sh REV [REV...]
#   e.g.   scripts/bench-batch-revisions.sh ae999b1 af8c608 baa7ff4 main
# Needs python3 with pydicom + numpy (the tree: bench-batch-tree.py) and git.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -ge 1 ] || { echo "usage: $0 REV [REV...]" >&2; exit 2; }
ROUNDS="${ROUNDS:-5}"
N="${N:-600}"
WORK="$(mktemp -d /tmp/dicom-deid-bench-revs.XXXXXX)"
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
REPO="$(pwd)"
cleanup() {
  for d in "$WORK"/rev-*; do [ -d "$d" ] && git -C "$REPO" worktree remove --force "$d" >/dev/null 2>&1; done
  git -C "$REPO" worktree prune
  rm -rf "$WORK"
}
trap cleanup EXIT

REVS=("$@")
for i in "${!REVS[@]}"; do
  dir="$WORK/rev-$i"
  git worktree add --detach "$dir" "${REVS[$i]}" >/dev/null 2>&1
  cp -a node_modules "$dir/"
  (cd "$dir" && npx tsc -p tsconfig.build.json >/dev/null) || { echo "${REVS[$i]}: does not build" >&2; exit 1; }
  echo "built ${REVS[$i]} ($(git -C "$dir" log --oneline -1 | cut -c1-70))"
done

"$PY" scripts/bench-batch-tree.py "$WORK" "$N" >/dev/null
cat $(find "$WORK/Raw_Scans" -type f) > /dev/null

fresh() { rm -rf "$WORK/out" "$WORK/state" "$WORK/logs"; sync; }
# "wall cpu" in seconds, from GNU time.
timed() { /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null; awk '{print $1, $2 + $3}' "$WORK/time"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A WALL CPU
CPW=()
for r in $(seq "$ROUNDS"); do
  fresh; read -r w _ < <(timed cp -r "$WORK/Raw_Scans" "$WORK/out"); CPW+=("$w")
  for i in "${!REVS[@]}"; do
    fresh
    read -r w c < <(timed node "$WORK/rev-$i/dist/cli.js" batch --csv "$WORK/mapping.csv" --input "$WORK/Raw_Scans" \
      --output "$WORK/out" --db "$WORK/state/state.sqlite" --log-dir "$WORK/logs" --quiet)
    n=$(find "$WORK/out" -name '*.dcm' | wc -l)
    [ "$n" -eq "$N" ] || { echo "${REVS[$i]}: wrote $n of $N files" >&2; exit 1; }
    WALL[$i]="${WALL[$i]:-} $w"; CPU[$i]="${CPU[$i]:-} $c"
  done
done

T_CP=$(median "${CPW[@]}")
printf '\n%-12s %9s %9s %11s %10s   (medians of %s rounds, %s files; cp -r %.2f s)\n' \
  revision wall_s cpu_s "wall/first" "wall/cp-r" "$ROUNDS" "$N" "$T_CP"
# shellcheck disable=SC2086
W0=$(median ${WALL[0]}); 
for i in "${!REVS[@]}"; do
  # shellcheck disable=SC2086
  w=$(median ${WALL[$i]}); c=$(median ${CPU[$i]})
  printf '%-12s %9.2f %9.2f %10.2fx %9.2fx\n' "${REVS[$i]}" "$w" "$c" "$(echo "$w / $W0" | bc -l)" "$(echo "$w / $T_CP" | bc -l)"
done
