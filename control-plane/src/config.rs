//! Layered configuration: defaults in code → TOML file → `FLATRENDER_*` environment → command-line
//! overrides, then one validation pass whose errors name the key.
//!
//! Environment variables map to keys by section: `FLATRENDER_DISPATCH__LEASE_TTL_SECONDS=90` sets
//! `dispatch.lease_ttl_seconds` (double underscore separates the section). Values parse as TOML
//! scalars when they can (numbers, booleans) and as strings otherwise.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use flatrender_layered_config::{LayeredConfigError, load_layered};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Prefix of the environment variables that configure the control plane.
pub const ENV_PREFIX: &str = "FLATRENDER_";

/// `FLATRENDER_` variables that are not settings: the config file and migrate URL (command-line
/// flags' variables), the PostgreSQL binaries folder, and the node agent's own prefix (both may
/// share a machine's environment).
pub const NOT_CONFIG_ENV: &[&str] = &[
    "FLATRENDER_CONFIG",
    "FLATRENDER_MIGRATE_URL",
    "FLATRENDER_PG_BIN_DIR",
    "FLATRENDER_AGENT_",
];

/// A configuration problem, naming the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A layer could not be read, named an unknown key, or gave a value of the wrong type.
    #[error(transparent)]
    Layer(#[from] LayeredConfigError),
    /// A value parsed but makes no sense.
    #[error("config key {key}: {message}")]
    Invalid {
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole control-plane configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the data lives.
    pub database: DatabaseConfig,
    /// Listeners.
    pub server: ServerConfig,
    /// Job splitting, leases and fair share.
    pub dispatch: DispatchConfig,
    /// Health-sample ingestion.
    pub health: HealthConfig,
    /// Monthly partitions upkeep.
    pub partitions: PartitionsConfig,
}

/// `[database]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL for the `flatrender_render` role. Empty: run the embedded private cluster.
    pub url: String,
    /// Folder for the embedded cluster and its generated secrets.
    pub data_dir: PathBuf,
    /// Pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            data_dir: PathBuf::from("data"),
            max_connections: 16,
        }
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listener.
    pub grpc_listen: String,
    /// HTTP listener for `/metrics`, `/healthz`, `/readyz`.
    pub http_listen: String,
    /// PEM certificate chain for TLS on the gRPC listener (empty: plaintext).
    pub tls_cert: PathBuf,
    /// PEM private key for TLS.
    pub tls_key: PathBuf,
    /// Largest accepted gRPC message.
    pub max_message_bytes: usize,
    /// How long a token lookup is cached per replica. Revocations reach every replica at once
    /// (NOTIFY); this bounds them only while a replica cannot hear notifications.
    pub auth_cache_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_listen: "127.0.0.1:50051".into(),
            http_listen: "127.0.0.1:9464".into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            max_message_bytes: 4 * 1024 * 1024,
            auth_cache_seconds: 10,
        }
    }
}

/// `[dispatch]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Frames per chunk for long jobs.
    pub chunk_frames: i32,
    /// Jobs are split into at least this many chunks when they have enough frames, so short
    /// jobs still spread over several nodes.
    pub min_chunks_per_job: i32,
    /// Largest frame range a job may ask for.
    pub max_frames_per_job: i32,
    /// Attempts per chunk before the job fails.
    pub max_attempts: i32,
    /// Lease lifetime without renewal.
    pub lease_ttl_seconds: u64,
    /// How often agents heartbeat.
    pub heartbeat_interval_seconds: u64,
    /// A node silent this long is offline and its leases are requeued.
    pub node_offline_after_seconds: u64,
    /// How often the reaper looks for expired leases and silent nodes.
    pub reaper_interval_ms: u64,
    /// Longest AcquireWork long-poll.
    pub max_acquire_wait_seconds: u64,
    /// Guaranteed concurrent leases for tenants without a quota row.
    pub default_guaranteed_leases: i32,
    /// Burst cap for tenants without a quota row (0: no cap).
    pub default_burst_leases: i32,
    /// A node on a job's bad-node list gets the job's chunks again only after they waited this
    /// long with no other taker: crashes prefer other nodes without starving a small farm.
    pub bad_node_grace_seconds: u64,
    /// A finished (completed or cancelled) job's frames are removed from the nodes that rendered
    /// them this long after it ended (0: at once). Failed jobs keep theirs for a retry.
    pub frames_retention_seconds: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            chunk_frames: 50,
            min_chunks_per_job: 4,
            max_frames_per_job: 200_000,
            max_attempts: 3,
            lease_ttl_seconds: 60,
            heartbeat_interval_seconds: 10,
            node_offline_after_seconds: 45,
            reaper_interval_ms: 1000,
            max_acquire_wait_seconds: 30,
            default_guaranteed_leases: 1,
            default_burst_leases: 0,
            bad_node_grace_seconds: 300,
            frames_retention_seconds: 3 * 24 * 3600,
        }
    }
}

impl DispatchConfig {
    /// Lease lifetime.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_seconds)
    }

    /// How long a finished job's frames are kept.
    pub fn frames_retention(&self) -> Duration {
        Duration::from_secs(self.frames_retention_seconds)
    }

    /// Heartbeat period agents are told to use.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_seconds)
    }

    /// Silence after which a node is offline.
    pub fn node_offline_after(&self) -> Duration {
        Duration::from_secs(self.node_offline_after_seconds)
    }

    /// A gap this long between any two reaper passes (of all replicas together) means the
    /// control plane could not hear nodes: an outage, after which every node and lease gets its
    /// full grace again. Longer than a heartbeat period and than ten reaper periods, so a slow
    /// pass on a busy machine is not mistaken for one.
    /// It stays under half a lease and half the offline time, so any outage long enough to
    /// hurt a node is noticed.
    pub fn outage_gap(&self) -> Duration {
        self.heartbeat_interval()
            .max(Duration::from_millis(self.reaper_interval_ms.saturating_mul(10)))
            .max(Duration::from_secs(5))
            .min(self.lease_ttl() / 2)
            .min(self.node_offline_after() / 2)
    }
}

/// `[health]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Samples are written at least this often.
    pub flush_interval_ms: u64,
    /// Samples buffered before a write is forced; beyond 4× this, new samples are dropped
    /// (counted in metrics) rather than blocking heartbeats.
    pub batch_size: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            flush_interval_ms: 1000,
            batch_size: 2000,
        }
    }
}

/// `[partitions]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionsConfig {
    /// Months after the current one kept ready.
    pub months_ahead: i32,
    /// Months of health logs kept (older monthly partitions are dropped); 0 keeps everything.
    pub retention_months: i32,
    /// How often upkeep runs.
    pub interval_seconds: u64,
}

impl Default for PartitionsConfig {
    fn default() -> Self {
        Self {
            months_ahead: 3,
            retention_months: 6,
            interval_seconds: 86_400,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then the environment `vars`, then `overrides`
    /// (`key=value`), then validates.
    pub fn load(
        file: Option<&std::path::Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let config: Config = load_layered(file, ENV_PREFIX, NOT_CONFIG_ENV, vars, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        }
        let url = &self.database.url;
        if !(url.is_empty() || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return invalid("database.url", "must start with postgres:// or postgresql://");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.server.grpc_listen.parse::<SocketAddr>().is_err() {
            return invalid("server.grpc_listen", "must be an address like 127.0.0.1:50051");
        }
        if self.server.http_listen.parse::<SocketAddr>().is_err() {
            return invalid("server.http_listen", "must be an address like 127.0.0.1:9464");
        }
        if self.server.tls_cert.as_os_str().is_empty() != self.server.tls_key.as_os_str().is_empty() {
            return invalid("server.tls_key", "tls_cert and tls_key must be set together");
        }
        if self.server.max_message_bytes < 64 * 1024 {
            return invalid("server.max_message_bytes", "must be at least 65536");
        }
        let dispatch = &self.dispatch;
        if !(1..=10_000).contains(&dispatch.chunk_frames) {
            return invalid("dispatch.chunk_frames", "must be between 1 and 10000");
        }
        if !(1..=1000).contains(&dispatch.min_chunks_per_job) {
            return invalid("dispatch.min_chunks_per_job", "must be between 1 and 1000");
        }
        if dispatch.max_frames_per_job < 1 {
            return invalid("dispatch.max_frames_per_job", "must be at least 1");
        }
        if !(1..=20).contains(&dispatch.max_attempts) {
            return invalid("dispatch.max_attempts", "must be between 1 and 20");
        }
        if dispatch.lease_ttl_seconds < 2 {
            return invalid("dispatch.lease_ttl_seconds", "must be at least 2");
        }
        if dispatch.heartbeat_interval_seconds == 0
            || dispatch.heartbeat_interval_seconds * 2 > dispatch.lease_ttl_seconds
        {
            return invalid(
                "dispatch.heartbeat_interval_seconds",
                "must be at least 1 and at most half of lease_ttl_seconds",
            );
        }
        if dispatch.node_offline_after_seconds <= dispatch.heartbeat_interval_seconds {
            return invalid(
                "dispatch.node_offline_after_seconds",
                "must be longer than heartbeat_interval_seconds",
            );
        }
        if dispatch.reaper_interval_ms < 10 {
            return invalid("dispatch.reaper_interval_ms", "must be at least 10");
        }
        if dispatch.max_acquire_wait_seconds > 300 {
            return invalid("dispatch.max_acquire_wait_seconds", "must be at most 300");
        }
        if dispatch.default_guaranteed_leases < 0 {
            return invalid("dispatch.default_guaranteed_leases", "must be >= 0");
        }
        if dispatch.default_burst_leases < 0
            || (dispatch.default_burst_leases > 0 && dispatch.default_burst_leases < dispatch.default_guaranteed_leases)
        {
            return invalid(
                "dispatch.default_burst_leases",
                "must be 0 (no cap) or >= default_guaranteed_leases",
            );
        }
        if self.health.flush_interval_ms == 0 {
            return invalid("health.flush_interval_ms", "must be at least 1");
        }
        if self.health.batch_size == 0 {
            return invalid("health.batch_size", "must be at least 1");
        }
        if !(0..=24).contains(&self.partitions.months_ahead) {
            return invalid("partitions.months_ahead", "must be between 0 and 24");
        }
        if self.partitions.retention_months < 0 {
            return invalid("partitions.retention_months", "must be >= 0 (0 keeps everything)");
        }
        if self.partitions.interval_seconds < 60 {
            return invalid("partitions.interval_seconds", "must be at least 60");
        }
        Ok(())
    }

    /// The configuration as TOML with secrets (the database password) hidden.
    pub fn to_redacted_toml(&self) -> String {
        let mut redacted = self.clone();
        redacted.database.url = redact_url_password(&redacted.database.url);
        toml::to_string_pretty(&redacted).unwrap_or_default()
    }
}

/// Replaces the password in a `scheme://user:password@host` URL with `***`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// With nothing set, the defaults load and validate.
    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::load(None, vec![], &[]).unwrap(), Config::default());
    }

    /// Each layer overrides the one before: file < env < override.
    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp.toml");
        std::fs::write(&file, "[dispatch]\nlease_ttl_seconds = 90\nchunk_frames = 10\n").unwrap();
        let config = Config::load(
            Some(&file),
            vars(&[("FLATRENDER_DISPATCH__CHUNK_FRAMES", "20"), ("UNRELATED", "x")]),
            &["dispatch.max_attempts=5".into()],
        )
        .unwrap();
        assert_eq!(config.dispatch.lease_ttl_seconds, 90);
        assert_eq!(config.dispatch.chunk_frames, 20);
        assert_eq!(config.dispatch.max_attempts, 5);
    }

    /// The config-file variable, the PostgreSQL binaries folder and the agent's settings are not
    /// control-plane keys: `serve` starts with them set (it refused to before).
    #[test]
    fn variables_that_are_not_settings_are_ignored() {
        let config = Config::load(
            None,
            vars(&[
                ("FLATRENDER_CONFIG", "/etc/flatrender/cp.toml"),
                ("FLATRENDER_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"),
                ("FLATRENDER_AGENT_NODE__NAME", "render-01"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(config, Config::default());
    }

    /// Unknown keys, wrong types and bad values are refused, naming the key.
    #[test]
    fn errors_name_the_key() {
        let error = Config::load(None, vars(&[("FLATRENDER_DISPATCH__LEASE_TTL", "1")]), &[]).unwrap_err();
        assert!(error.to_string().contains("dispatch.lease_ttl"), "{error}");
        let error = Config::load(None, vars(&[("FLATRENDER_DISPATCH__CHUNK_FRAMES", "ten")]), &[]).unwrap_err();
        assert!(
            error.to_string().contains("dispatch.chunk_frames must be an integer"),
            "{error}"
        );
        let error = Config::load(None, vec![], &["server.grpc_listen=nowhere".into()]).unwrap_err();
        assert!(error.to_string().contains("server.grpc_listen"), "{error}");
        let error = Config::load(None, vec![], &["dispatch.heartbeat_interval_seconds=40".into()]).unwrap_err();
        assert!(
            error.to_string().contains("dispatch.heartbeat_interval_seconds"),
            "{error}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cp.toml");
        std::fs::write(&file, "[dispatch]\nbogus = 1\n").unwrap();
        let error = Config::load(Some(&file), vec![], &[]).unwrap_err();
        assert!(error.to_string().contains("bogus"), "{error}");
    }

    /// Dumped configuration hides the database password.
    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url_password("postgres://render:s3cret@db:5432/fr"),
            "postgres://render:***@db:5432/fr"
        );
        let mut config = Config::default();
        config.database.url = "postgres://render:s3cret@db/fr".into();
        assert!(!config.to_redacted_toml().contains("s3cret"));
    }
}
