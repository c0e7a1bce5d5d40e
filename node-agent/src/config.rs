//! The agent's configuration: defaults → TOML file → `FLATRENDER_AGENT_*` environment →
//! `--set section.key=value`, then one validation pass naming the bad key (the same layering as
//! the control plane, `flatrender_layered_config`).

use std::{path::PathBuf, time::Duration};

use flatrender_layered_config::{LayeredConfigError, load_layered};
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod export;

pub use export::{DEFAULT_EXPORT_FOLDER_NAME, ExportSettings, ExportStoreKind};

/// Prefix of the environment variables that configure the agent.
pub const ENV_PREFIX: &str = "FLATRENDER_AGENT_";

/// `FLATRENDER_AGENT_` variables that are not settings (the `--config` flag's variable).
pub const NOT_CONFIG_ENV: &[&str] = &["FLATRENDER_AGENT_CONFIG"];

/// What a secret is replaced with in `--dump-config` output.
const REDACTED: &str = "***";

/// A configuration problem, naming the key.
#[derive(Debug, Error)]
pub enum AgentConfigError {
    /// A layer did not load.
    #[error(transparent)]
    Layer(#[from] LayeredConfigError),
    /// A value makes no sense.
    #[error("config key {key}: {message}")]
    Invalid {
        /// Dotted key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole agent configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the control plane is.
    pub control_plane: ControlPlaneConfig,
    /// Who this node is.
    pub node: NodeConfig,
    /// How aerender is run.
    pub aerender: AerenderConfig,
    /// Hang detection budgets.
    pub watchdog: WatchdogConfig,
    /// Crash-loop handling.
    pub recovery: RecoveryConfig,
    /// The template cache.
    pub cache: CacheSettings,
    /// Health sampling.
    pub health: HealthSettings,
    /// The agent's own metrics endpoint.
    pub metrics: MetricsSettings,
    /// The durable outbox.
    pub outbox: OutboxSettings,
    /// Where finished videos are stored.
    pub export: ExportSettings,
}

/// `[control_plane]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// gRPC endpoints, tried in order; the agent fails over between them.
    pub endpoints: Vec<String>,
    /// Join token for the first registration (or use `join_token_file`).
    pub join_token: String,
    /// File holding the join token.
    pub join_token_file: PathBuf,
    /// Timeout of ordinary calls.
    pub request_timeout_seconds: u64,
    /// Long-poll wait passed to `AcquireWork`.
    pub acquire_wait_seconds: u64,
    /// PEM of the CA that signed the control plane's certificate; required for `https://`
    /// endpoints (the agent trusts nothing else).
    pub ca_cert: PathBuf,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:50051".into()],
            join_token: String::new(),
            join_token_file: PathBuf::new(),
            request_timeout_seconds: 20,
            acquire_wait_seconds: 20,
            ca_cert: PathBuf::new(),
        }
    }
}

/// `[node]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name (default: the host name).
    pub name: String,
    /// Tags jobs can require.
    pub tags: Vec<String>,
    /// Chunks rendered at once.
    pub max_leases: i32,
    /// Folder for the node credential, the outbox and logs.
    pub state_dir: PathBuf,
    /// On stop, how long running chunks may take to finish before they are handed back.
    pub shutdown_grace_seconds: u64,
    /// aerender's raw logs under `<state_dir>/render-logs/` are removed after this many days
    /// (0: kept forever).
    pub render_log_retention_days: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            tags: Vec::new(),
            max_leases: 1,
            state_dir: PathBuf::from("agent-state"),
            shutdown_grace_seconds: 60,
            render_log_retention_days: 14,
        }
    }
}

/// `[aerender]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AerenderConfig {
    /// Path to aerender (empty: the newest After Effects install found).
    pub path: PathBuf,
    /// Where frames are written (`<output_root>/<job id>/<name>_#####.<ext>`).
    pub output_root: PathBuf,
    /// Output module template used when a job names none (must write an image sequence).
    pub output_module_template: String,
    /// Extension of the frames that output module writes.
    pub frame_extension: String,
    /// `-mem_usage` image cache and max memory percent (0 0: leave to AE).
    pub mem_usage_image_cache_percent: u32,
    /// See above.
    pub mem_usage_max_percent: u32,
    /// Use Multi-Frame Rendering where AE supports it.
    pub mfr: bool,
    /// MFR CPU limit.
    pub mfr_max_cpu_percent: u8,
    /// AE's disk cache folder, cleared after repeated cache errors (empty: never cleared).
    pub disk_cache_dir: PathBuf,
    /// Where the agent installs its After Effects startup hook, `flatrender_hook.jsx` (empty:
    /// `Scripts/Startup` beside aerender, where After Effects looks).
    pub startup_scripts_dir: PathBuf,
}

impl Default for AerenderConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::new(),
            output_root: PathBuf::from("renders"),
            output_module_template: "PNG Sequence".into(),
            frame_extension: "png".into(),
            mem_usage_image_cache_percent: 0,
            mem_usage_max_percent: 0,
            mfr: true,
            mfr_max_cpu_percent: 90,
            disk_cache_dir: PathBuf::new(),
            startup_scripts_dir: PathBuf::new(),
        }
    }
}

/// `[watchdog]`: when a render counts as hung.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// From launch to the first frame.
    pub startup_seconds: u64,
    /// Silence allowed mid-render, at least this...
    pub no_output_min_seconds: u64,
    /// ...and at least this many times the slowest frame seen so far.
    pub no_output_frame_multiplier: u32,
    /// After the finish line, how long aerender may take to exit before outputs are judged and
    /// the tree is killed (the hang-after-finish case).
    pub tail_seconds: u64,
    /// Hard cap for one aerender run.
    pub absolute_cap_seconds: u64,
    /// Between terminate and kill.
    pub kill_grace_seconds: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            startup_seconds: 300,
            no_output_min_seconds: 180,
            no_output_frame_multiplier: 10,
            tail_seconds: 30,
            absolute_cap_seconds: 6 * 3600,
            kill_grace_seconds: 10,
        }
    }
}

/// `[recovery]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Crashes within the window that quarantine the node.
    pub crash_loop_threshold: u32,
    /// The window.
    pub crash_loop_window_seconds: u64,
    /// Pause before taking work again after a back-off failure (licence, AE busy).
    pub back_off_seconds: u64,
    /// Base of the back-off between canary probes of a quarantined node: the first waits about
    /// this long, each failed one doubles it (with jitter) up to `probe_interval_max_seconds`.
    pub probe_interval_seconds: u64,
    /// Cap of that back-off.
    pub probe_interval_max_seconds: u64,
    /// A project on this machine to render as the canary (empty: the last chunk this node
    /// rendered successfully, while its template is still cached).
    pub canary_project: PathBuf,
    /// The composition of `canary_project` to render.
    pub canary_composition: String,
    /// The frame of it to render.
    pub canary_frame: i32,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            crash_loop_threshold: 3,
            crash_loop_window_seconds: 600,
            back_off_seconds: 30,
            probe_interval_seconds: 300,
            probe_interval_max_seconds: 3600,
            canary_project: PathBuf::new(),
            canary_composition: String::new(),
            canary_frame: 0,
        }
    }
}

/// `[cache]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Cache folder.
    pub dir: PathBuf,
    /// Byte budget (LRU eviction beyond it).
    pub budget_bytes: u64,
    /// Per download attempt.
    pub download_timeout_seconds: u64,
    /// Attempts per download.
    pub max_attempts: u32,
    /// Folder of the asset cache: the images, videos and audio files saved projects' fields
    /// name (empty: `<dir>/assets`, beside the template entries, which the template cache leaves
    /// alone).
    pub asset_dir: PathBuf,
    /// Byte budget of the asset cache (LRU eviction beyond it, never of an asset in use).
    pub asset_budget_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("template-cache"),
            budget_bytes: 20 << 30,
            download_timeout_seconds: 600,
            max_attempts: 4,
            asset_dir: PathBuf::new(),
            asset_budget_bytes: 20 << 30,
        }
    }
}

/// `[health]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Sampling period.
    pub interval_seconds: u64,
}

impl CacheSettings {
    /// The asset cache's folder: `asset_dir`, or `<dir>/assets` when it is empty.
    pub fn asset_dir(&self) -> PathBuf {
        if self.asset_dir.as_os_str().is_empty() {
            self.dir.join("assets")
        } else {
            self.asset_dir.clone()
        }
    }
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { interval_seconds: 15 }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Listener for `/metrics` (empty: off).
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9465".into(),
        }
    }
}

/// `[outbox]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// Health samples kept while the control plane is unreachable.
    pub max_health_samples: usize,
    /// Bytes kept on disk.
    pub max_bytes: u64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_health_samples: 20_000,
            max_bytes: 256 << 20,
        }
    }
}

impl AgentConfig {
    /// Loads all layers, fills in the defaults that derive from other keys (the node name, the
    /// export folder) and validates.
    pub fn load(
        file: Option<&std::path::Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, AgentConfigError> {
        let mut config: AgentConfig = load_layered(file, ENV_PREFIX, NOT_CONFIG_ENV, vars, overrides)?;
        if config.node.name.is_empty() {
            config.node.name = default_node_name();
        }
        config.export.resolve_default_folder(&config.aerender.output_root);
        config.validate()?;
        Ok(config)
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), AgentConfigError> {
        fn invalid(key: &'static str, message: impl Into<String>) -> Result<(), AgentConfigError> {
            Err(AgentConfigError::Invalid {
                key,
                message: message.into(),
            })
        }
        if self.control_plane.endpoints.is_empty() {
            return invalid("control_plane.endpoints", "name at least one endpoint");
        }
        if let Some(bad) = self
            .control_plane
            .endpoints
            .iter()
            .find(|endpoint| !(endpoint.starts_with("http://") || endpoint.starts_with("https://")))
        {
            return invalid(
                "control_plane.endpoints",
                format!("{bad:?} must start with http:// or https://"),
            );
        }
        if self.control_plane.ca_cert.as_os_str().is_empty()
            && self
                .control_plane
                .endpoints
                .iter()
                .any(|endpoint| endpoint.starts_with("https://"))
        {
            return invalid(
                "control_plane.ca_cert",
                "required for https:// endpoints: the PEM of the CA that signed the control plane's certificate",
            );
        }
        if self.control_plane.acquire_wait_seconds > 60 {
            return invalid("control_plane.acquire_wait_seconds", "must be at most 60");
        }
        if self.control_plane.request_timeout_seconds == 0 {
            return invalid("control_plane.request_timeout_seconds", "must be at least 1");
        }
        let name = &self.node.name;
        if name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return invalid("node.name", "must be 1..128 of letters, digits, '.', '_', '-'");
        }
        if !(1..=64).contains(&self.node.max_leases) {
            return invalid("node.max_leases", "must be between 1 and 64");
        }
        if self.aerender.frame_extension.is_empty()
            || !self.aerender.frame_extension.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return invalid("aerender.frame_extension", "must be letters and digits, e.g. png");
        }
        if self.aerender.mem_usage_image_cache_percent > 100 || self.aerender.mem_usage_max_percent > 100 {
            return invalid("aerender.mem_usage_max_percent", "percentages are 0..=100");
        }
        if !(1..=100).contains(&self.aerender.mfr_max_cpu_percent) {
            return invalid("aerender.mfr_max_cpu_percent", "must be between 1 and 100");
        }
        if self.watchdog.startup_seconds == 0
            || self.watchdog.no_output_min_seconds == 0
            || self.watchdog.tail_seconds == 0
        {
            return invalid("watchdog.startup_seconds", "watchdog budgets must be at least 1 second");
        }
        if self.watchdog.absolute_cap_seconds < self.watchdog.startup_seconds {
            return invalid("watchdog.absolute_cap_seconds", "must be at least startup_seconds");
        }
        if self.recovery.crash_loop_threshold == 0 {
            return invalid("recovery.crash_loop_threshold", "must be at least 1");
        }
        if self.recovery.probe_interval_seconds == 0 {
            return invalid("recovery.probe_interval_seconds", "must be at least 1");
        }
        if self.recovery.probe_interval_max_seconds < self.recovery.probe_interval_seconds {
            return invalid(
                "recovery.probe_interval_max_seconds",
                "must be at least probe_interval_seconds",
            );
        }
        if !self.recovery.canary_project.as_os_str().is_empty() && self.recovery.canary_composition.is_empty() {
            return invalid("recovery.canary_composition", "required with recovery.canary_project");
        }
        if self.cache.budget_bytes < 1 << 20 {
            return invalid("cache.budget_bytes", "must be at least 1 MiB");
        }
        if self.cache.asset_budget_bytes < 1 << 20 {
            return invalid("cache.asset_budget_bytes", "must be at least 1 MiB");
        }
        if self.cache.asset_dir() == self.cache.dir {
            return invalid(
                "cache.asset_dir",
                "must be a folder of its own, not cache.dir (each cache drops the other's entries)",
            );
        }
        if self.cache.max_attempts == 0 {
            return invalid("cache.max_attempts", "must be at least 1");
        }
        if self.health.interval_seconds == 0 {
            return invalid("health.interval_seconds", "must be at least 1");
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("metrics.listen", "must be an address like 127.0.0.1:9465, or empty");
        }
        if let Err((key, message)) = self.export.check() {
            return invalid(key, message);
        }
        Ok(())
    }

    /// The join token, from the setting or its file.
    pub fn join_token(&self) -> Result<String, AgentConfigError> {
        if !self.control_plane.join_token.is_empty() {
            return Ok(self.control_plane.join_token.trim().to_owned());
        }
        if self.control_plane.join_token_file.as_os_str().is_empty() {
            return Err(AgentConfigError::Invalid {
                key: "control_plane.join_token",
                message: "the node is not registered yet: set control_plane.join_token or join_token_file (ops create one with `control-plane token create --kind join`)".into(),
            });
        }
        std::fs::read_to_string(&self.control_plane.join_token_file)
            .map(|token| token.trim().to_owned())
            .map_err(|error| AgentConfigError::Invalid {
                key: "control_plane.join_token_file",
                message: format!("cannot read {}: {error}", self.control_plane.join_token_file.display()),
            })
    }

    /// The configuration as TOML (itself a valid configuration file), with the one secret, the
    /// join token, shown as `***` when set.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut redacted = self.clone();
        if !redacted.control_plane.join_token.is_empty() {
            redacted.control_plane.join_token = REDACTED.to_owned();
        }
        toml::to_string_pretty(&redacted)
    }

    /// Time between terminating and killing a process tree.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs(self.watchdog.kill_grace_seconds)
    }
}

fn default_node_name() -> String {
    let raw = sysinfo::System::host_name().unwrap_or_else(|| "render-node".into());
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned.chars().take(128).collect()
}

#[cfg(test)]
mod tests;
