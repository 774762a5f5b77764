#!/usr/bin/env bash
# tessera's GPU suite (issue 15): ViT-B/16 at 224 px in bf16 on one GPU, at most ~5 minutes in all.
#
#   bash benchmarks/gpu_suite.sh [OUT_JSON] [--smoke]
#
# Each section runs in its own process under its own timeout (benchmarks/gpu_suite.py) and merges its result
# into OUT_JSON (default benchmarks/results_gpu.json) as soon as it is measured, so a run cut short still reports.
# Self-contained on a machine with PyTorch + transformers (+ numpy): the simulated store is made here with NumPy
# only (benchmarks/_simstore.py; no astropy, no pandas), tessera is imported from src/ of this checkout.
# Order: what matters most first; compile (slowest to warm up) last. The whole suite stops at SUITE_BUDGET s.
set -u
cd "$(dirname "$0")/.."
OUT="benchmarks/results_gpu.json"
SMOKE=""
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE="--smoke" ;;
    *) OUT="$arg" ;;
  esac
done
PY="${PYTHON:-python}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
STORE="${GPU_SUITE_STORE:-${TMPDIR:-/tmp}/tessera_gpu_store${SMOKE:+_smoke}}"
BUDGET="${SUITE_BUDGET:-300}"
START=$(date +%s)
rm -f "$OUT"

# section timeout(s): the per-section limit; the remaining suite budget caps it.
SECTIONS="env:20 mae:50 contrastive:30 views:25 loader:35 pretrain:80 dino:30 compile:60"
for entry in $SECTIONS; do
  name="${entry%%:*}"; limit="${entry##*:}"
  left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -lt 10 ]; then
    echo "[gpu_suite] $name: skipped, suite budget spent" >&2
    "$PY" -c "import json,sys,pathlib; p=pathlib.Path(sys.argv[1]); d=json.loads(p.read_text()) if p.exists() else {}; d[sys.argv[2]]={'skipped':'suite budget spent'}; p.write_text(json.dumps(d, indent=2)+'\n')" "$OUT" "$name"
    continue
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo "[gpu_suite] $name (timeout ${limit}s)" >&2
  extra=""
  [ "$name" = "pretrain" ] && [ -z "$SMOKE" ] && extra="--seconds $(( limit > 30 ? limit - 20 : 10 ))"
  timeout --signal=KILL "$limit" "$PY" benchmarks/gpu_suite.py --section "$name" --out "$OUT" --store "$STORE" $SMOKE $extra
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "[gpu_suite] $name: exit $rc" >&2
    "$PY" -c "import json,sys,pathlib; p=pathlib.Path(sys.argv[1]); d=json.loads(p.read_text()) if p.exists() else {}; d.setdefault(sys.argv[2], {'error': 'exit ' + sys.argv[3] + (' (timeout)' if sys.argv[3] in ('124', '137') else '')}); p.write_text(json.dumps(d, indent=2)+'\n')" "$OUT" "$name" "$rc"
  fi
done
echo "[gpu_suite] done in $(( $(date +%s) - START ))s -> $OUT" >&2
