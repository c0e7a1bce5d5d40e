#!/usr/bin/env bash
# Builds the node agent for Windows (cross-compiled with mingw-w64) and type-checks it for
# macOS (aarch64): the agent runs on Windows and macOS After Effects machines, CI runs on Linux.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== node-agent for x86_64-pc-windows-gnu" >&2
cargo build --locked -p flatrender-node-agent --bin node-agent --target x86_64-pc-windows-gnu
echo "== node-agent check for aarch64-apple-darwin" >&2
CC_aarch64_apple_darwin="$PWD/scripts/stub-cc.sh" AR_aarch64_apple_darwin=ar \
  cargo check --locked -p flatrender-node-agent --all-targets --target aarch64-apple-darwin
