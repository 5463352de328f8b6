#!/usr/bin/env bash
# The one build every script shares: the whole workspace with all its targets (the binary, every
# test and benchmark), in the release profile, into $CARGO_TARGET_DIR. Building the binary alone
# (`--bin mainstay`) resolves other features than the tests do (their dev-dependencies switch on
# features of tokio, tracing, serde, hyper-util, tower, regex …), so about forty crates would be
# compiled twice; one build of all targets keeps one feature set, and `scripts/dev.sh` followed by
# `scripts/test.sh` compiles each crate once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
exec cargo build --release --workspace --all-targets "$@"
