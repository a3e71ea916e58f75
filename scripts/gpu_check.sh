#!/usr/bin/env bash
# The GPU check on a GPU machine with no internet (scripts/gpu_check.py says what it checks).
#   scripts/gpu_check_wheels.sh        here, once: what the machine lacks (scripts/gpu_check_carry.txt)
#                                      at the GPU set's versions (requirements/gpu.txt), into .whl/
#   bash scripts/gpu_check.sh          there, from the repository root (.whl carried beside it)
# Writes $OUT/gpu_check.json (OUT defaults to data/08_reporting) and stops itself after 7.5 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-data/08_reporting}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu check: could not install the carried wheels" >&2; exit 2; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 450 python3 scripts/gpu_check.py --device cuda --out "$out/gpu_check.json" "$@"
