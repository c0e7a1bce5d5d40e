#!/usr/bin/env bash
# The whole check, as CI runs it: set-up, format, lints, build, then every test against a private
# PostgreSQL started for this run and stopped at the end, then the quickstart (scripts/demo.sh's
# farm) end to end, checking that it leaves no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage says when it starts (seconds since this script began), so a slow CI run shows where.
stage() { echo "== [${SECONDS}s] $*" >&2; }

stage "setup"
scripts/setup.sh

stage "cargo fmt --check"
cargo fmt --all --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo build"
cargo build --workspace --bins --locked
stage "check-platforms"
scripts/check-platforms.sh
# frctl must build on an ops laptop without the server: none of the server's crates may reach it.
stage "frctl without the server's crates"
frctl_tree=$(cargo tree -p frctl -e normal --locked --prefix none)
if server_crates=$(grep -E '^(sqlx[a-z-]*|axum[a-z-]*|flatrender-control-plane) ' <<<"$frctl_tree"); then
  echo "FAIL: frctl depends on server crates:" >&2
  printf '%s\n' "$server_crates" | sort -u >&2
  exit 1
fi

# The wire contract: other teams generate clients from proto/, so flatrender.render.v1 only grows.
# `buf breaking` compares with the protos of the last release; until the first release is tagged,
# that is the commit that last changed them (on main, so every full clone has it; replace it with
# the tag when there is one).
PROTO_BASELINE=70d150e79af0e7c6df0ecd814277a17fece48deb
buf=.tools/node_modules/.bin/buf
stage "buf lint, buf breaking against $PROTO_BASELINE"
if ! git cat-file -e "$PROTO_BASELINE^{commit}" 2>/dev/null; then
  echo "FAIL: commit $PROTO_BASELINE (the proto baseline) is not in this clone; a shallow clone needs \`git fetch --unshallow\`" >&2
  exit 1
fi
"$buf" lint proto
"$buf" breaking proto --against ".git#ref=$PROTO_BASELINE,subdir=proto"

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

stage "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi

# The quickstart, kept short, on a fresh data folder: what a newcomer's first run does.
demo_dir="$pg_dir/demo"
mkdir -p "$demo_dir"
demo_dir=$(cd "$demo_dir" && pwd -P)
target_dir=$(cd "${CARGO_TARGET_DIR:-target}" && pwd -P)
# "pid command line" of every process of this checkout's farm binaries, and of every process
# carrying the quickstart's marker for our data folder (FR_QUICKSTART_DIR, inherited by the
# aerender double's children and PostgreSQL) or naming that folder (postgres -D).
farm_processes() {
  local proc exe
  for proc in /proc/[0-9]*; do
    exe=$(readlink "$proc/exe" 2>/dev/null) || continue
    case "$exe" in
      "$target_dir"/debug/control-plane | "$target_dir"/debug/node-agent | "$target_dir"/debug/fake-aerender) ;;
      *)
        grep -qzxF "FR_QUICKSTART_DIR=$demo_dir" "$proc/environ" 2>/dev/null \
          || grep -qzF "$demo_dir" "$proc/cmdline" 2>/dev/null || continue
        ;;
    esac
    printf '%s %s\n' "${proc#/proc/}" "$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null)"
  done
}
before=" $(farm_processes | cut -d' ' -f1 | tr '\n' ' ') "
stage "quickstart"
"$target_dir/debug/quickstart" --frames 40 --timeout 120 --data-dir "$demo_dir" </dev/null
left=$(farm_processes | while read -r pid command_line; do
  case "$before" in *" $pid "*) ;; *) printf '%s %s\n' "$pid" "$command_line" ;; esac
done)
if [ -n "$left" ]; then
  echo "FAIL: the quickstart left processes running:" >&2
  printf '%s\n' "$left" >&2
  exit 1
fi
stage "quickstart: rendered the sample job and left no process behind"
