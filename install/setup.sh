#!/usr/bin/env bash
# Build the Lakebook kernel, install its kernelspec into a cached venv and (by default)
# execute the tour notebook.
#
#   install/setup.sh             set up, then run notebooks/00-tour.ipynb -> notebooks/out/
#   install/setup.sh --no-tour   set up only (what tests/run.sh uses)
#   install/setup.sh --lab       set up, then open JupyterLab on notebooks/ (127.0.0.1 only)
#   install/setup.sh --no-rust   (with any of the above) skip building the Rust-cell worker;
#                                plain cells then say how to get it, magics work as ever
#   install/setup.sh --cluster   (with any of the above) also build the Ballista cluster binary
#                                (`lakebook cluster start`, `%sql engine connect`; ~20 min once)
#   install/setup.sh --release   (with any of the above) build the kernel in the release profile
#                                (opt-level 3, thin LTO: TPC-H 0.80x the time, Firehose 1.35x
#                                the MB/s of the default dev build; ~40 min the first time)
#
# Idempotent: the venv is created once and re-populated only when install/requirements.txt
# changes; cargo only rebuilds what changed.
#
# Environment:
#   LAKEBOOK_CACHE    cache root (default ~/.cache/lakebook): venv/ and target/ live there
#   CARGO_TARGET_DIR  cargo's target dir (default $LAKEBOOK_CACHE/target)
#   PYTHON            interpreter used to create the venv (default python3, needs >= 3.10)
set -euo pipefail

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

run_tour=1
open_lab=0
build_rust=1
build_cluster=0
profile=dev
for arg in "$@"; do
  case "$arg" in
    --cluster) build_cluster=1 ;;
    --release) profile=release ;;
    --no-tour) run_tour=0 ;;
    --lab) run_tour=0 open_lab=1 ;;
    --no-rust) build_rust=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAKEBOOK_CACHE=${LAKEBOOK_CACHE:-$HOME/.cache/lakebook}
export LAKEBOOK_CACHE
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$LAKEBOOK_CACHE/target}
venv=$LAKEBOOK_CACHE/venv
PYTHON=${PYTHON:-python3}
mkdir -p "$LAKEBOOK_CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# --- system prerequisites ------------------------------------------------------------------
# A fresh Debian has python3 but not its venv/ensurepip module, rustup does not bring a
# linker, and the browser test (tests/test_browser.py) drives Debian's chromium through
# Playwright (which must never download a browser of its own). Install what is missing via apt
# when we are allowed to, otherwise say what to do.
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); Lakebook needs Python >= 3.10"

missing=()
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=("python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
fi
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=()
    if [[ $(id -u) != 0 ]]; then
      sudo -n true 2>/dev/null || die "missing system packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
      sudo=(sudo -n)
    fi
    say "installing system packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    die "missing system packages: ${missing[*]}"
  fi
fi

# --- Python venv -------------------------------------------------------------------------
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  say "creating venv $venv"
  rm -rf "$venv" # a half-created venv (e.g. ensurepip was missing) is useless
  "$PYTHON" -m venv "$venv"
fi

requirements=$repo/install/requirements.txt
stamp=$venv/.lakebook-requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
  say "installing Python requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi

# papermill's parameter translator for the lakebook kernel (a local package, reinstalled when it changes).
plugin=$repo/install/papermill-lakebook
plugin_stamp=$venv/.lakebook-papermill.sha256
plugin_want=$(cat "$plugin/pyproject.toml" "$plugin/lakebook_papermill.py" | sha256sum | cut -d' ' -f1)
if [[ ! -f $plugin_stamp || $(<"$plugin_stamp") != "$plugin_want" ]]; then
  say "installing the papermill translator for lakebook"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$plugin"
  echo "$plugin_want" >"$plugin_stamp"
fi

# .venv at the repo root points at the cached venv.
if [[ -L $repo/.venv ]]; then
  [[ $(readlink "$repo/.venv") == "$venv" ]] || ln -sfn "$venv" "$repo/.venv"
elif [[ -e $repo/.venv ]]; then
  die "$repo/.venv exists and is not a symlink; move it away (setup.sh links it to $venv)"
else
  ln -s "$venv" "$repo/.venv"
fi

# --- build and install the kernel ----------------------------------------------------------
if [[ $profile == release ]]; then
  say "building lakebook, release profile (target dir $CARGO_TARGET_DIR)"
  (cd "$repo" && cargo build --quiet --release --bin lakebook)
  lakebook=$CARGO_TARGET_DIR/release/lakebook
else
  say "building lakebook (target dir $CARGO_TARGET_DIR)"
  (cd "$repo" && cargo build --quiet --bin lakebook)
  lakebook=$CARGO_TARGET_DIR/debug/lakebook
fi
[[ -x $lakebook ]] || die "cargo build succeeded but $lakebook is missing"

# --- the Rust-cell worker (evcxr, its own workspace rust/; ~15 min the first time) ---------
rust_worker=$LAKEBOOK_CACHE/rust-target/release/lakebook-rust
if ((build_rust)); then
  say "building the Rust-cell worker (target dir $LAKEBOOK_CACHE/rust-target)"
  (cd "$repo/rust" && CARGO_TARGET_DIR=$LAKEBOOK_CACHE/rust-target cargo build --quiet --release --locked)
  [[ -x $rust_worker ]] || die "cargo build succeeded but $rust_worker is missing"
  # rust-analyzer (in evcxr) infers a variable's type from the standard library's sources.
  if [[ ! -d $(rustc --print sysroot)/lib/rustlib/src/rust/library/std ]]; then
    command -v rustup >/dev/null 2>&1 && rustup component add rust-src >/dev/null 2>&1 || true
    [[ -d $(rustc --print sysroot)/lib/rustlib/src/rust/library/std ]] ||
      say "note: no rust-src component: in Rust cells, write the types of variables kept across cells"
  fi
fi

# --- the Ballista cluster (its own workspace cluster/; ~20 min the first time) --------------
if ((build_cluster)); then
  say "building the Ballista cluster (target dir $LAKEBOOK_CACHE/cluster-target)"
  (cd "$repo/cluster" && CARGO_TARGET_DIR=$LAKEBOOK_CACHE/cluster-target cargo build --quiet --locked)
  [[ -x $LAKEBOOK_CACHE/cluster-target/debug/lakebook-cluster ]] || die "cargo build succeeded but lakebook-cluster is missing"
fi

LAKEBOOK_RUST_WORKER=$rust_worker VIRTUAL_ENV=$venv "$lakebook" install --sys-prefix >/dev/null
say "kernelspec 'lakebook' installed into $venv/share/jupyter/kernels ($("$lakebook" --version), $profile build)"

# --- the tour ------------------------------------------------------------------------------
if ((run_tour)); then
  out=$repo/notebooks/out
  workspace=$out/tour-workspace
  rm -rf "$workspace"
  mkdir -p "$out"
  say "executing notebooks/00-tour.ipynb (workspace $workspace)"
  # JUPYTER_PATH first: a stale user-level 'lakebook' kernelspec must not shadow this build.
  LAKEBOOK_HOME=$workspace JUPYTER_PATH="$venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}" \
    "$venv/bin/jupyter" nbconvert --log-level=WARN --to html --execute \
    "$repo/notebooks/00-tour.ipynb" --output-dir "$out"
  say "tour written to $out/00-tour.html"
fi

# --- JupyterLab ----------------------------------------------------------------------------
if ((open_lab)); then
  say "opening JupyterLab on notebooks/ (each notebook keeps its workspace in notebooks/lakebook-data/)"
  cd "$repo/notebooks"
  JUPYTER_PATH="$venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}" exec "$venv/bin/jupyter" lab --ServerApp.ip=127.0.0.1
fi
