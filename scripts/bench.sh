#!/usr/bin/env bash
# The benchmarks of README's "Benchmarks", built in release:
#   scripts/bench.sh [encode] [OPTIONS]  the encode step against plain ffmpeg on the same frames and
#                                        audio, alternating in one run (a few minutes on 2 cores)
# OPTIONS go to the benchmark (`scripts/bench.sh encode --help`).
# Each prints its progress and a summary on stderr and one JSON line on stdout:
#   scripts/bench.sh encode --rounds 9 > encode.json
set -euo pipefail
cd "$(dirname "$0")/.."

what=encode
case "${1:-}" in
  encode) what=$1; shift ;;
  -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

scripts/setup.sh

encode() {
  echo "== cargo bench encode_overhead (release; the first build takes a few minutes)" >&2
  cargo bench --locked -p flatrender-node-agent --bench encode_overhead -- "$@"
}

case "$what" in
  encode) encode "$@" ;;
esac
