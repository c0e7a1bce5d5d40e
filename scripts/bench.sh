#!/usr/bin/env bash
# The benchmarks of README's "Benchmarks", built in release:
#   scripts/bench.sh [encode] [OPTIONS]  the encode step against plain ffmpeg on the same frames and
#                                        audio, alternating in one run (a few minutes on 2 cores)
#   scripts/bench.sh scaling [OPTIONS]   submit-to-MP4 time of a 4-scene project on 1, 2 and 4
#                                        agents (real control plane and agents, aerender double)
#   scripts/bench.sh all                 both, with their defaults
# OPTIONS go to the benchmark (`scripts/bench.sh encode --help`, `scripts/bench.sh scaling --help`).
# Each prints its progress and a summary on stderr and one JSON line on stdout:
#   scripts/bench.sh encode --rounds 9 > encode.json
set -euo pipefail
cd "$(dirname "$0")/.."

what=encode
case "${1:-}" in
  encode | scaling | all) what=$1; shift ;;
  -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

scripts/setup.sh
target_dir=${CARGO_TARGET_DIR:-target}
pg_dir=""
stop_pg() {
  if [ -n "$pg_dir" ]; then
    "$target_dir/release/control-plane" pg stop --data-dir "$pg_dir/cluster" || true
    rm -rf "$pg_dir"
  fi
}
trap stop_pg EXIT

encode() {
  echo "== cargo bench encode_overhead (release; the first build takes a few minutes)" >&2
  cargo bench --locked -p flatrender-node-agent --bench encode_overhead -- "$@"
}

scaling() {
  echo "== cargo build --release (control plane, node agent, aerender double)" >&2
  cargo build --locked --release --workspace --bins
  if [ -z "${DATABASE_URL:-}" ]; then
    # A throwaway cluster in a folder the unprivileged postgres user can reach when we are root.
    pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/flatrender-bench-pg.XXXXXX")
    chmod 755 "$pg_dir"
    DATABASE_URL=$("$target_dir/release/control-plane" pg start --data-dir "$pg_dir/cluster" --ephemeral)
    export DATABASE_URL
  fi
  echo "== cargo bench scaling" >&2
  cargo bench --locked -p flatrender-e2e --bench scaling -- "$@"
}

case "$what" in
  encode) encode "$@" ;;
  scaling) scaling "$@" ;;
  all) encode; scaling ;;
esac
