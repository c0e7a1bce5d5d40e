#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the control plane. With no database
# configured it starts the embedded default, a private PostgreSQL under ./data, prints where
# the admin and join tokens are, and serves gRPC on 127.0.0.1:50051 and metrics on :9464.
# Extra arguments go to `control-plane serve` (e.g. --config farm.toml, --set key=value).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p flatrender-control-plane --bin control-plane
exec target/release/control-plane serve "$@"
