#!/usr/bin/env bash
# Downloads, here, the wheels a GPU machine without internet lacks for scripts/gpu_check.sh (it has
# torch, transformers, accelerate, peft, pandas, pyarrow and PyYAML): TRL and datasets for training,
# pydantic for the parameter blocks; transformers, accelerate and tokenizers at the
# versions the CPU rehearsal ran (the machine has older ones). Python 3.12, x86-64 Linux. About 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 pydantic-core==2.50.5 \
  annotated-types==0.8.0 typing-inspection==0.4.5 transformers==5.24.0 accelerate==1.16.0 \
  tokenizers==0.23.3
ls -la .whl
