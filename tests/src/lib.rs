//! Harness for FlatRender's cross-process end-to-end tests.
//!
//! It will own: spawning the real `control-plane` and `node-agent` binaries against a private
//! PostgreSQL, and the `fake-aerender` test double (`src/bin/fake-aerender.rs`), the only
//! stand-in the project allows.
