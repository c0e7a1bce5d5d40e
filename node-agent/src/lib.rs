//! The FlatRender node agent: the daemon on every After Effects machine.
//!
//! It will own, one module per concern: the run loop against the control plane (`service`,
//! `client`), aerender supervision as a process tree (`supervisor`), the pure aerender log parser
//! (`aerender_log`), crash classification and recovery (`recovery`), the BLAKE3-addressed LRU
//! template cache (`cache`) and health sampling (`health`).
