//! Registration: the node credential kept on disk (read and written off the async threads), or a
//! registration with the join token that is retried with back-off while the control plane is
//! unreachable; the timing the control plane hands out (heartbeat interval, lease TTL).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use flatrender_proto::pb;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Agent, lock};
use crate::retry::Backoff;

/// Back-off of registration retries (the control plane unreachable at start-up).
const REGISTER_RETRY_BASE: Duration = Duration::from_secs(1);
const REGISTER_RETRY_CAP: Duration = Duration::from_secs(60);

/// The node identity kept on disk after registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    /// Node id.
    pub node_id: String,
    /// Bearer token of the node.
    pub node_token: String,
}

impl Agent {
    pub(super) fn credential_path(&self) -> PathBuf {
        self.config.node.state_dir.join("credential.json")
    }

    /// Loads the stored credential, or registers with the join token and stores the new one.
    pub(super) async fn ensure_registered(&self) -> anyhow::Result<()> {
        if let Some(credential) = read_credential(self.credential_path()).await {
            self.client.set_token(&credential.node_token);
            info!(node_id = %credential.node_id, "using stored node credential");
            return Ok(());
        }
        self.register().await
    }

    pub(super) async fn register(&self) -> anyhow::Result<()> {
        let join_token = self.config.join_token()?;
        self.client.set_token(&join_token);
        let system = sysinfo::System::new_with_specifics(
            sysinfo::RefreshKind::nothing().with_memory(sysinfo::MemoryRefreshKind::everything()),
        );
        let request = pb::RegisterNodeRequest {
            name: self.config.node.name.clone(),
            hostname: sysinfo::System::host_name().unwrap_or_else(|| self.config.node.name.clone()),
            os: current_os() as i32,
            os_version: sysinfo::System::long_os_version().unwrap_or_default(),
            ae_version: self
                .chunk
                .install
                .as_ref()
                .and_then(|install| install.version.clone())
                .unwrap_or_default(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            cpu_cores: i32::try_from(std::thread::available_parallelism().map_or(1, |cores| cores.get())).unwrap_or(1),
            memory_bytes: i64::try_from(system.total_memory()).unwrap_or(i64::MAX),
            tags: self.config.node.tags.clone(),
            max_leases: self.config.node.max_leases,
            capabilities: Some(self.capabilities()),
        };
        let mut backoff = Backoff::new(REGISTER_RETRY_BASE, REGISTER_RETRY_CAP);
        let response = loop {
            match self.client.register(request.clone()).await {
                Ok(response) => break response,
                Err(error) if error.code().is_some() => anyhow::bail!("registration refused: {error}"),
                Err(error) => {
                    let delay = backoff.next_delay();
                    warn!(%error, ?delay, "control plane unreachable; retrying registration");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let credential = Credential {
            node_id: response.node_id.clone(),
            node_token: response.node_token.clone(),
        };
        write_credential(self.credential_path(), credential.clone()).await?;
        self.client.set_token(&credential.node_token);
        self.apply_timing(response.heartbeat_interval.as_ref(), response.lease_ttl.as_ref());
        info!(node_id = %credential.node_id, "registered with the control plane");
        Ok(())
    }

    /// Takes the heartbeat interval and lease TTL the control plane hands out (zero: unchanged).
    pub(super) fn apply_timing(
        &self,
        heartbeat: Option<&prost_types::Duration>,
        lease_ttl: Option<&prost_types::Duration>,
    ) {
        if let Some(interval) = heartbeat.and_then(to_duration).filter(|interval| !interval.is_zero()) {
            *lock(&self.heartbeat_interval) = interval;
        }
        if let Some(ttl) = lease_ttl.and_then(to_duration).filter(|ttl| !ttl.is_zero()) {
            *lock(&self.lease_ttl) = ttl;
        }
    }
}

fn current_os() -> pb::OperatingSystem {
    if cfg!(windows) {
        pb::OperatingSystem::Windows
    } else if cfg!(target_os = "macos") {
        pb::OperatingSystem::Macos
    } else {
        pb::OperatingSystem::Linux
    }
}

fn to_duration(value: &prost_types::Duration) -> Option<Duration> {
    Some(Duration::new(
        u64::try_from(value.seconds).ok()?,
        u32::try_from(value.nanos).ok()?,
    ))
}

/// The stored credential; `None` when there is none or it cannot be read (then the node registers).
async fn read_credential(path: PathBuf) -> Option<Credential> {
    let text = tokio::fs::read_to_string(&path).await.ok()?;
    match serde_json::from_str(&text) {
        Ok(credential) => Some(credential),
        Err(error) => {
            warn!(%error, path = %path.display(), "ignoring an unreadable credential file; registering again");
            None
        }
    }
}

/// Stores the credential (owner-only on Unix) on a blocking thread: write, chmod, rename.
async fn write_credential(path: PathBuf, credential: Credential) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write_credential_blocking(&path, &credential))
        .await
        .map_err(std::io::Error::other)?
}

/// Written to a temporary file first, so a crash never leaves a half-written credential.
fn write_credential_blocking(path: &Path, credential: &Credential) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, serde_json::to_vec_pretty(credential)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temp, path)
}
