#!/usr/bin/env bash
# Installs what FlatRender needs to build and test, idempotently: safe to run again and again.
# On a fresh Debian/Ubuntu machine run it as root (CI does); as a normal user it uses sudo when
# something is missing. It installs only what is absent.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "missing packages ($*) and no apt-get: install them with your package manager"; exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# PostgreSQL 15+ server binaries (initdb, pg_ctl): looked up where the control plane looks.
have_pg_server() {
  local dir
  for dir in ${FLATRENDER_PG_BIN_DIR:-} $(printf '%s' "$PATH" | tr ':' ' ') /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      local major
      major=$("$dir/initdb" --version | sed -E 's/^[^)]*\) *([0-9]+).*/\1/')
      [ "${major:-0}" -ge 15 ] && return 0
    fi
  done
  return 1
}

missing=()
have_pg_server || missing+=(postgresql-15)
# The node agent is cross-built for Windows (scripts/check-platforms.sh).
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
command -v psql >/dev/null || missing+=(postgresql-client-15)
command -v cc >/dev/null || missing+=(build-essential)
# The TLS end-to-end test makes its throwaway CA and server certificate with openssl.
command -v openssl >/dev/null || missing+=(openssl)
# The encode step (node-agent/src/encode) runs the system's ffmpeg and ffprobe; its tests too.
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then missing+=(ffmpeg); fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# PostgreSQL refuses to run as root: the private clusters run as this unprivileged user then.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  log "creating system user postgres"
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

# buf checks the wire contract in scripts/test.sh (lint, breaking changes). The npm package ships
# the binary; it goes into this checkout's .tools/ (git-ignored), pinned so CI runs are alike.
buf_version=1.75.0
tools_dir="$(cd "$(dirname "$0")/.." && pwd)/.tools"
if [ "$("$tools_dir/node_modules/.bin/buf" --version 2>/dev/null)" != "$buf_version" ]; then
  command -v npm >/dev/null || apt_install nodejs npm
  log "installing buf $buf_version into $tools_dir"
  npm install --prefix "$tools_dir" --no-save --no-audit --no-fund --loglevel=error "@bufbuild/buf@$buf_version" >/dev/null
  "$tools_dir/node_modules/.bin/buf" --version >/dev/null
fi

command -v cargo >/dev/null || { log "cargo not found: install Rust from https://rustup.rs"; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
for target in x86_64-pc-windows-gnu aarch64-apple-darwin; do
  rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
done

log "ok"
