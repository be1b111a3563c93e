#!/usr/bin/env bash
# The one command of a GPU session (a lent H100 / H200: bare, offline, Python 3.12 with torch, lightning and
# transformers but not our other packages). Prepare HERE first with `bash bench/gpu_prepare.sh`, then run THERE:
#
#   run(command="bash bench/gpu_session.sh", carry=[".whl", ".gpu_assets"], timeout_s=540)
#
# Steps, each under `timeout`, the whole script done within DEADLINE (480 s) even if a step hangs:
#   1. setup (~30 s; at most 2 x 30 + 60 + 60 + 60 + 90 s): nvidia-smi; the carried wheels (.whl) installed into
#      /tmp/site; lamini_lm.conf made importable (editable install, else a link in the machine's copy of src/);
#      offline environment, LAMINI_LM_CACHE=.gpu_assets; pip list; an import check with the versions in use
#                                                                                               -> $OUT/setup.txt
#   2. the GPU acceptance suite, tests/test_gpu.py, in two runs: the measuring tests and the preflight first, then
#      the rest (<= 270 s together, 150 s a test)             -> $OUT/gpu_suite.txt, gpu_suite_1.xml, gpu_suite_2.xml
#   3. the bf16 bench, python3 -m bench.train_throughput --device cuda, the time left as its --budget
#                                                                                            -> $OUT/bench_gpu.txt
#   4. $OUT/summary.txt: the card, each step's exit code and seconds, the suite's result line and figures, the
#      bench's table; printed last, so the reply's output_tail holds it.
#
#   bash bench/gpu_session.sh --bench-only   # THERE, a rerun without the suite: setup and the bench alone
#   bash bench/gpu_session.sh --dry-run   # HERE, on a CPU: the same steps without a GPU: no nvidia-smi, the suite
#                                         # collected (every test skips), a CPU smoke bench instead of the cuda one;
#                                         # $OUT defaults to a new /tmp/gpu_out.*, the wheels go to a
#                                         # temporary folder; ~3 minutes on the 2-core machine
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
DRY=0 SUITE=1
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    --bench-only) SUITE=0 ;;
    *) echo "usage: bash bench/gpu_session.sh [--dry-run] [--bench-only]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/gpu_out.XXXXXX)}  # the tool sets OUT there
mkdir -p "$OUT"
DEADLINE=${DEADLINE:-480}  # seconds from the start; run's timeout_s=540 leaves a minute over it
START=$SECONDS
SUMMARY=$OUT/summary.txt
SETUP=$OUT/setup.txt
: >"$SUMMARY"
: >"$SETUP"

left() { echo $((DEADLINE - (SECONDS - START))); }
# cap WANT RESERVE: WANT seconds, or what is left before the deadline less RESERVE (kept for the steps after)
cap() {
  local want=$1 l=$(($(left) - $2))
  ((l < want)) && want=$l
  ((want < 5)) && want=5
  echo "$want"
}
# step NAME LOG SECONDS CMD...: CMD under timeout (its whole process group), its output shown and appended to LOG;
# its exit code and time go to the summary
step() {
  local name=$1 log=$2 secs=$3 t0=$SECONDS rc note=""
  shift 3
  echo "== $name (at most $secs s; $(left) s left of $DEADLINE)" | tee -a "$log"
  timeout -k 10 "$secs" "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  ((rc == 124 || rc == 137)) && note=" (stopped at its $secs s limit)"
  echo "$name: exit $rc in $((SECONDS - t0)) s$note" | tee -a "$SUMMARY"
  return "$rc"
}

# -- 1. setup ---------------------------------------------------------------------------------------------
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export LAMINI_LM_CACHE=$ROOT/.gpu_assets
if ((DRY)); then
  SITE=$(mktemp -d)
  echo "dry run on $(hostname): no GPU steps" | tee -a "$SUMMARY"
else
  SITE=/tmp/site
  timeout 30 nvidia-smi 2>&1 | tee -a "$SETUP"
  timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit \
    --format=csv,noheader 2>&1 | sed 's/^/card: /' | tee -a "$SUMMARY"
fi
if [ ! -d .whl ] || [ ! -d .gpu_assets/assets ]; then
  echo "no .whl or .gpu_assets: run bash bench/gpu_prepare.sh here first and name both in carry" | tee -a "$SUMMARY"
  exit 2
fi
step install "$SETUP" "$(cap 60 300)" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target "$SITE" .whl/*.whl
export PYTHONPATH=$SITE:$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}
# lamini_lm.conf is the repository's conf/ (pyproject's package-dir): an editable install maps it; where pip cannot
# make one (no setuptools there), a link in this copy of src/ does the same
if ! "$PY" -c "import lamini_lm.conf" 2>/dev/null; then
  if ! timeout 60 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e . \
    >>"$SETUP" 2>&1; then
    echo "editable install failed: linking src/lamini_lm/conf -> ../../conf" | tee -a "$SETUP"
    ln -sfn ../../conf src/lamini_lm/conf
  fi
fi
{ echo "== pip list"; timeout 60 "$PY" -m pip list 2>/dev/null; } >>"$SETUP"
IMPORTS=$(cat <<'EOF'
import importlib, os, sys, time
t = time.perf_counter()
print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "transformers", "tokenizers", "huggingface_hub", "lightning", "accelerate", "datasets", "trl",
             "hydra", "omegaconf", "pyarrow", "numpy", "pytest"):
    mod = importlib.import_module(name)
    print(f"  {name:16s} {getattr(mod, '__version__', '?'):14s} {os.path.dirname(mod.__file__)}")
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
from lamini_lm import assets, config
from lamini_lm.models.backbone import load_tokenizer
from lamini_lm.models.spec import ModelSpec
for name in ("tiny_gpt2", "tiny_t5"):
    load_tokenizer(config.typed(config.compose("train", [f"model={name}"]).model, ModelSpec, "model"))
print("trainer=gpu precision:", config.compose("train", ["trainer=gpu"]).trainer.precision, "| assets:",
      assets.cache_root(), f"| import check {time.perf_counter() - t:.1f} s")
EOF
)
if ! step imports "$SETUP" "$(cap 90 300)" "$PY" -c "$IMPORTS"; then
  echo "setup failed: the steps below run anyway, their errors say what is missing" | tee -a "$SUMMARY"
fi

# -- 2. the GPU acceptance suite ----------------------------------------------------------------------------
# In two runs, so that a suite slower than its limit still returns the figures: first the tests that measure (the
# true-shape throughput and memory, the attention kernel) and the preflight, then every other (-k "not ..."): the two
# together are the whole of -m gpu. -m gpu: tests/conftest.py keeps it in one process; --timeout: a hanging test fails
# alone; --log-level: the DEBUG trace logs of torch.compile stay out of the -rP report; junit_family=legacy: the XML
# keeps the throughput tests' record_property figures (tokens_per_s, peak_memory_gb).
if ((SUITE)); then
  FIRST="throughput or fused_sdpa or preflight"
  suite_secs=$(cap 270 120) suite_t0=$SECONDS  # the two runs together; the bench keeps at least 120 s
  for part in 1 2; do
    if ((part == 1)); then  # at most 150 s, and 60 s left for the second run
      only=$FIRST secs=$((suite_secs - 60 < 150 ? suite_secs - 60 : 150))
    else
      only="not ($FIRST)" secs=$((suite_secs - (SECONDS - suite_t0)))
    fi
    ((secs < 5)) && secs=5
    step "gpu_suite_$part" "$OUT/gpu_suite.txt" "$secs" "$PY" -m pytest tests/test_gpu.py -m gpu -k "$only" -v -rP \
      -n 0 -p no:cacheprovider --timeout 150 --log-level=WARNING --junitxml="$OUT/gpu_suite_$part.xml" \
      -o junit_family=legacy
  done
  # the result lines, the failures, and the figures the passing tests printed (-rP)
  grep -E "^=+ .*[0-9]+ (passed|failed|skipped|error)|^(FAILED|ERROR) | tokens/s, peak |^attention: |cosine" \
    "$OUT/gpu_suite.txt" | tail -n 40 | sed 's/^/suite: /' >>"$SUMMARY"
fi

# -- 3. the bf16 bench -----------------------------------------------------------------------------------------
secs=$(cap 420 15)
budget=$((secs - 40))  # the bench's clock starts after its imports (~5 s), and the table comes after the last run
((budget < 30)) && budget=30
if ((DRY)); then  # the same entry point on the CPU, as small as it goes
  bench=(-m bench.train_throughput --quick --shapes gpt2 --recipes "ours,trl_grouped" --budget "$budget")
else
  bench=(-m bench.train_throughput --device cuda --budget "$budget")
fi
step bench "$OUT/bench_gpu.txt" "$secs" "$PY" "${bench[@]}"
# the table and the ratios: from the roof line on (or the last lines when the bench stopped before its table)
if grep -q "^shape " "$OUT/bench_gpu.txt"; then
  sed -n '/^\(fp32 matmul roof\|.*: bf16 roof\)/,$p' "$OUT/bench_gpu.txt" | sed 's/^/bench: /' >>"$SUMMARY"
else
  tail -n 15 "$OUT/bench_gpu.txt" | sed 's/^/bench: /' >>"$SUMMARY"
fi

# -- 4. summary ------------------------------------------------------------------------------------------------
echo "total: $((SECONDS - START)) s of $DEADLINE" >>"$SUMMARY"
((DRY)) && rm -rf "$SITE"
echo
echo "======== summary ($OUT/summary.txt)"
cat "$SUMMARY"
