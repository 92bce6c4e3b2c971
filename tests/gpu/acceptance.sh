#!/usr/bin/env bash
# GPU acceptance of the training stages (issue #20): one command, from the repository root.
#
#   tests/gpu/acceptance.sh            # on the GPU machine (CUDA), ~8 min at most
#   tests/gpu/acceptance.sh --cpu      # dry mode: tiny shapes, 2 steps, on this CPU
#   tests/gpu/acceptance.sh --only prepare,sft_sdpa   # a subset, in the usual order
#
# 1. installs the carried wheels (.whl/*.whl, made by tests/gpu/carry_wheels.sh) into a
#    temporary site dir and puts it first on PYTHONPATH (.whl/bin on PATH if it holds bwrap);
# 2. runs each check of tests/gpu/acceptance_checks.py under its own time cap (`timeout`),
#    most valuable first, appending one JSON line per check to $OUT/acceptance.jsonl;
# 3. writes $OUT/acceptance_summary.json and exits 0 only if no check failed.
# A check killed by its cap (or crashing) is recorded as ok=false with its log tail; the
# script carries on. A global budget (ACCEPTANCE_BUDGET_S, default 470 s) shrinks the last
# caps so the whole run ends in time; a check with under 15 s left is recorded as failed
# ("out of time budget") without running.
#
# Environment: OUT (results; default artifacts/acceptance), PYTHON (default python3),
# ACCEPTANCE_DEVICE (cuda|cpu), ACCEPTANCE_WHEELS (default .whl), ACCEPTANCE_WORK (scratch;
# default a new temp dir), ACCEPTANCE_BUDGET_S, ACCEPTANCE_CAPS ("name=secs,..." overrides),
# ACCEPTANCE_WHEEL_MODULES (modules that must import from the wheels; default in the checks).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
DEVICE=${ACCEPTANCE_DEVICE:-cuda}
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) DEVICE=cpu ;;
    --only) ONLY=${2:-}; shift ;;
    --only=*) ONLY=${1#--only=} ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "acceptance.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
export ACCEPTANCE_DEVICE=$DEVICE
PY=${PYTHON:-$(command -v python3 || command -v python)}
OUT=${OUT:-$ROOT/artifacts/acceptance}
WHEELS=${ACCEPTANCE_WHEELS:-$ROOT/.whl}
BUDGET=${ACCEPTANCE_BUDGET_S:-470}
CHECKS="$ROOT/tests/gpu/acceptance_checks.py"
mkdir -p "$OUT/logs" || exit 2
WORK=${ACCEPTANCE_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/acceptance.XXXXXX")}
mkdir -p "$WORK/results" || exit 2
export ACCEPTANCE_WORK=$WORK
JSONL=$OUT/acceptance.jsonl
: > "$JSONL"
START=$(date +%s)
if [ "$DEVICE" = cpu ]; then export CUDA_VISIBLE_DEVICES=""; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# The checks, in order (most valuable first), with their caps in seconds. Sum <= 480.
ALL="wheels prepare loss_equal sft_flex sft_sdpa sft_padded zero2 zero3 rl eval bench"
declare -A CAP=([wheels]=30 [prepare]=50 [loss_equal]=40 [sft_flex]=55 [sft_sdpa]=35
                [sft_padded]=30 [zero2]=50 [zero3]=50 [rl]=45 [eval]=30 [bench]=65)
IFS=',' read -r -a _over <<< "${ACCEPTANCE_CAPS:-}"
for pair in "${_over[@]}"; do
  [ -n "$pair" ] && CAP[${pair%%=*}]=${pair#*=}
done
if [ -n "$ONLY" ]; then
  for n in ${ONLY//,/ }; do
    case " $ALL " in *" $n "*) ;; *) echo "acceptance.sh: unknown check $n (one of: $ALL)" >&2; exit 2 ;; esac
  done
fi
EXPECTED=""
for n in $ALL; do
  if [ -z "$ONLY" ] || [[ ",$ONLY," == *",$n,"* ]]; then EXPECTED="$EXPECTED${EXPECTED:+,}$n"; fi
done

# cap NAME -- command...: run one check under its cap, then record its JSON line.
cap() {
  local name=$1; shift; [ "${1:-}" = -- ] && shift
  case ",$EXPECTED," in *",$name,"*) ;; *) return 0 ;; esac
  local secs=${CAP[$name]:-60}
  local left=$(( BUDGET - ($(date +%s) - START) ))
  local log="$OUT/logs/$name.log" result="$WORK/results/$name.json"
  rm -f "$result"
  if [ "$left" -lt 15 ]; then
    echo "{\"name\": \"$name\", \"ok\": false, \"error\": \"out of time budget\"}" > "$result"
    "$PY" "$CHECKS" record --check "$name" --rc 0 --seconds 0 --cap 0 \
      --check-result "$result" --jsonl "$JSONL"
    return 0
  fi
  [ "$secs" -gt "$left" ] && secs=$left
  local t0 rc
  t0=$(date +%s.%N)
  ACCEPTANCE_RESULT=$result timeout -k 5 "$secs" "$@" > "$log" 2>&1
  rc=$?
  local dt
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  "$PY" "$CHECKS" record --check "$name" --rc "$rc" --seconds "$dt" --cap "$secs" \
    --check-result "$result" --log "$log" --jsonl "$JSONL"
}

C=("$PY" "$CHECKS" --device "$DEVICE" --work "$WORK")
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  SITE=$(mktemp -d "${TMPDIR:-/tmp}/acceptance-site.XXXXXX")
  cap wheels -- "${C[@]}" --name wheels install-wheels --wheels "$WHEELS" --site "$SITE" \
    ${ACCEPTANCE_WHEEL_MODULES:+--modules "$ACCEPTANCE_WHEEL_MODULES"}
  export PYTHONPATH="$SITE:$PYTHONPATH"
elif [[ ",$EXPECTED," == *",wheels,"* ]]; then
  echo "{\"name\": \"wheels\", \"ok\": true, \"skipped\": \"no $WHEELS/*.whl: using the installed packages\"}" \
    > "$WORK/results/wheels.json"
  "$PY" "$CHECKS" record --check wheels --rc 0 --seconds 0 \
    --check-result "$WORK/results/wheels.json" --jsonl "$JSONL"
fi
if [ -x "$WHEELS/bin/bwrap" ] && ! command -v bwrap > /dev/null; then
  export PATH="$WHEELS/bin:$PATH"  # a carried bubblewrap for the sandbox (rl, eval)
fi

cap prepare    -- "${C[@]}" --name prepare prepare
cap loss_equal -- "${C[@]}" --name loss_equal loss_equal
cap sft_flex   -- "${C[@]}" --name sft_flex sft --attention flex
cap sft_sdpa   -- "${C[@]}" --name sft_sdpa sft --attention sdpa
cap sft_padded -- "${C[@]}" --name sft_padded sft --attention sdpa --padded
cap zero2      -- "${C[@]}" --name zero2 zero --stage 2
cap zero3      -- "${C[@]}" --name zero3 zero --stage 3
cap rl         -- "${C[@]}" --name rl rl
cap eval       -- "${C[@]}" --name eval eval
cap bench      -- "${C[@]}" --name bench bench

"$PY" "$CHECKS" summary --jsonl "$JSONL" --out "$OUT/acceptance_summary.json" \
  --seconds "$(( $(date +%s) - START ))" --budget "$BUDGET" --expected "$EXPECTED"
status=$?
echo "acceptance: $OUT/acceptance_summary.json (work dir $WORK)"
exit $status
