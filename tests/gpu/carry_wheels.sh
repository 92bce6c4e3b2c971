#!/usr/bin/env bash
# Make the wheel set that tests/gpu/acceptance.sh installs on the GPU machine (no network
# there; Python 3.12, torch/transformers/accelerate present; trl, deepspeed, datasets and
# pydantic missing). Run here, from the repository root, with network:
#
#   tests/gpu/carry_wheels.sh            # -> .whl/ (git-ignored, ~7 MB)
#
# The device `run` tool copies only tracked and untracked-not-ignored files: name `.whl` in
# its `carry` list (tests/gpu/README.md has the exact call). Recipe from
# ../shared/notes/gpu-recipes.md: binary wheels for cp312 manylinux, no dependencies resolved
# (the machine has the rest), plus a pure-Python deepspeed wheel built here (its CUDA ops
# JIT-compile there; the stage uses torch's AdamW so none is needed). The bubblewrap binary of
# this machine goes to .whl/bin/bwrap when there is one (the rl and eval checks need the
# sandbox; the driver uses it only if the GPU machine has no bwrap and it runs there).
#
# Environment: PYTHON (default .venv/bin/python, else python3), WHEEL_DIR (default .whl),
# TRL_VERSION (default 1.16.0), DEEPSPEED_VERSION (default: the one installed here).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}
DEST=${WHEEL_DIR:-.whl}
TRL_VERSION=${TRL_VERSION:-1.16.0}
DS_VERSION=${DEEPSPEED_VERSION:-$("$PY" -c 'import importlib.metadata as m; print(m.version("deepspeed"))' 2>/dev/null || echo "")}
mkdir -p "$DEST"
# The versions installed here where there are some (pydantic and pydantic_core must match).
read -r -a PKGS <<< "$("$PY" - "$TRL_VERSION" <<'PYEOF'
import importlib.metadata as m, sys
out = [f"trl=={sys.argv[1]}"]
for name in ("datasets", "dill", "multiprocess", "hjson", "pydantic", "pydantic_core",
             "annotated_types", "typing_inspection"):
    try:
        out.append(f"{name}=={m.version(name)}")
    except m.PackageNotFoundError:
        out.append(name)
print(" ".join(out))
PYEOF
)"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  -d "$DEST" "${PKGS[@]}"
"$PY" -m pip wheel --no-deps -w "$DEST" "deepspeed${DS_VERSION:+==$DS_VERSION}"
if command -v bwrap > /dev/null; then
  mkdir -p "$DEST/bin"
  cp "$(command -v bwrap)" "$DEST/bin/bwrap"
fi
ls -la "$DEST" && du -sh "$DEST"
