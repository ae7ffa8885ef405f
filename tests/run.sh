#!/usr/bin/env bash
# The one command that runs every test: build + install (install/setup.sh --no-tour --cluster), the Rust
# tests, then the Python kernel/notebook tests against the real binary.
#
#   tests/run.sh                 everything
#   tests/run.sh -k protocol     extra arguments go to pytest
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export LAKEBOOK_CACHE=${LAKEBOOK_CACHE:-$HOME/.cache/lakebook}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAKEBOOK_CACHE/target}
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi

install/setup.sh --no-tour --cluster

failed=()
printf '\033[1m==> cargo test --workspace\033[0m\n' >&2
cargo test --workspace || failed+=("cargo test")

printf '\033[1m==> pytest tests/\033[0m\n' >&2
# The venv's kernelspecs come first so a user-level 'lakebook' install cannot shadow this build.
export JUPYTER_PATH="$repo/.venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
.venv/bin/python -m pytest tests/ -q --timeout=180 "$@" || failed+=("pytest")

if ((${#failed[@]})); then
  printf '\033[1;31mFAILED: %s\033[0m\n' "${failed[*]}" >&2
  exit 1
fi
printf '\033[1;32mall tests passed\033[0m\n' >&2
