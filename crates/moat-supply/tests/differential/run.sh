#!/usr/bin/env bash
# Regenerates the differential-test expectations from the ecosystems' own implementations:
# npm's `semver` package and Python's `packaging`, both pinned below. Installs them under
# this directory (gitignored), generates deterministic cases, writes expected/*.json, then
# runs the Rust comparison (`cargo test -p moat-supply --test differential`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

NODE_SEMVER_VERSION="7.8.6"
PACKAGING_VERSION="26.4"

if [ "$(node -p "try{require('./node_modules/semver/package.json').version}catch(e){''}")" != "$NODE_SEMVER_VERSION" ]; then
  npm install --prefix "$here" --no-save --no-package-lock --no-audit --no-fund "semver@$NODE_SEMVER_VERSION"
fi
if ! PYTHONPATH="$here/.pydeps" python3 -c "import packaging,sys; sys.exit(packaging.__version__ != '$PACKAGING_VERSION')" 2>/dev/null; then
  python3 -m pip install --quiet --upgrade --target "$here/.pydeps" "packaging==$PACKAGING_VERSION"
fi

mkdir -p expected
node gen_npm.js > expected/npm.json
PYTHONPATH="$here/.pydeps" python3 gen_pypi.py > expected/pypi.json
ls -l expected

if [ "${SKIP_CARGO:-}" != "1" ]; then
  cd "$here/../../../.."
  cargo test -p moat-supply --test differential -- --nocapture
fi
