#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, and runs a whole render farm on this machine
# with no configuration (the control plane on its embedded PostgreSQL under ./data/demo, two node
# agents driving the aerender test double, since After Effects does not run on Linux, and encoding
# with the system's ffmpeg), renders a two-scene sample project with music, sound effects and a
# voiceover submitted through RenderService, ends with a playable MP4 (prints the file, its
# duration and streams, and how to play it), and stops everything again, also on Ctrl-C.
# Running it again reuses ./data/demo.
# Arguments go to the quickstart: --frames N, --keep (leave the farm up to try frctl),
# --data-dir DIR, --timeout SECONDS, --help.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== cargo build (the first build takes a few minutes)" >&2
cargo build --locked --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/debug/quickstart" "$@"
