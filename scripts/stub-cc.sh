#!/usr/bin/env bash
# A stand-in C compiler for `cargo check --target aarch64-apple-darwin` on Linux: ring's build
# script compiles C for the target, which needs Apple's SDK. `cargo check` links nothing, so an
# empty object per compile is enough to type-check every Rust crate. Never used for real builds.
for arg in "$@"; do
  # cc-rs asks the preprocessor which compiler family this is.
  [ "$arg" = "-E" ] && { echo '#pragma message "clang"'; exit 0; }
  [ "$arg" = "-?" ] && exit 1
done
out=""
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then out="$2"; shift; fi
  shift
done
[ -n "$out" ] && : > "$out"
exit 0
