//! The node agent's integration tests, one test binary with a module per area (one binary links
//! once, which keeps CI fast on two cores): the template cache against a local HTTP server, the
//! durable outbox against a real folder, the supervisor against real processes, and the
//! `node-agent` binary itself (`parse-log`, `run --log-file`, `run --dump-config`, registration
//! retries).
//! Fixtures stay in `node-agent/tests/fixtures/`.

mod cache;
mod dump_config;
mod outbox;
mod parse_log_cli;
mod retries;
mod run_log_file;
mod supervisor;
