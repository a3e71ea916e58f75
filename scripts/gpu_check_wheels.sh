#!/usr/bin/env bash
# Downloads, here, the wheels a GPU machine without internet lacks for scripts/gpu_check.sh: the
# packages in scripts/gpu_check_carry.txt at the GPU set's versions (requirements/gpu.txt), for
# x86-64 Linux. About 25 MB.
#   scripts/gpu_check_wheels.sh [python version, default 3.12] [folder, default .whl]
set -euo pipefail
cd "$(dirname "$0")/.."
python_version=${1:-3.12}
folder=${2:-.whl}
[ "$folder" = .whl ] && { grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude; }
pins=()
while read -r name; do
  case "$name" in ''|'#'*) continue ;; esac
  pin=$(grep -iE "^${name//-/[-_]}==" requirements/gpu.txt) || { echo "$name is not in requirements/gpu.txt" >&2; exit 2; }
  pins+=("$pin")
done < scripts/gpu_check_carry.txt
rm -rf "$folder" && mkdir -p "$folder"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$folder" "${pins[@]}" 2>&1 | { grep -v 'is neither a file nor a directory' || true; }
ls "$folder"
