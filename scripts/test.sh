#!/usr/bin/env bash
# The whole check, as CI runs it: set-up, format, lints, build, then every test against a private
# PostgreSQL started for this run and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build" >&2
cargo build --workspace --bins --locked
scripts/check-platforms.sh

# A throwaway cluster in a folder the unprivileged postgres user can reach when we are root.
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/flatrender-test-pg.XXXXXX")
chmod 755 "$pg_dir"
stop_pg() {
  target/debug/control-plane pg stop --data-dir "$pg_dir/cluster" || true
  rm -rf "$pg_dir"
}
trap stop_pg EXIT
DATABASE_URL=$(target/debug/control-plane pg start --data-dir "$pg_dir/cluster" --ephemeral)
export DATABASE_URL

echo "== tests" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
