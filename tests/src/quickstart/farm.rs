//! Starting and stopping the demo farm: one `control-plane serve` on its embedded PostgreSQL
//! under the data folder, and node agents driving the aerender double, each configured only
//! through `FLATRENDER_*` / `FLATRENDER_AGENT_*` variables (the same keys a real deployment sets).

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Context;
use flatrender_proto::pb::{self, admin_service_client::AdminServiceClient};
use tonic::transport::Channel;

use super::processes::Managed;
use crate::{authed, http_get};

/// How long an agent gets to hand back its chunks and exit on SIGTERM.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(20);
/// How long the control plane gets to drain and stop its PostgreSQL on SIGTERM.
const CONTROL_PLANE_STOP_GRACE: Duration = Duration::from_secs(30);

/// Where things are and how the agents render.
pub struct FarmSettings {
    /// Absolute data folder (embedded PostgreSQL, tokens, agent state, renders, logs).
    pub data_dir: PathBuf,
    /// Folder holding `control-plane`, `node-agent` and `fake-aerender`.
    pub bin_dir: PathBuf,
    /// Number of node agents.
    pub num_agents: usize,
    /// Milliseconds the double spends on one frame.
    pub frame_ms: u64,
    /// Frames per chunk (`dispatch.chunk_frames`).
    pub chunk_frames: u32,
}

impl FarmSettings {
    /// Folder of the log files.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// Shared output root of the agents: frames land in `<output_root>/<job id>/`.
    pub fn output_root(&self) -> PathBuf {
        self.data_dir.join("renders")
    }

    /// File holding the admin token the control plane writes on first start.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.bin_dir.join(name);
        anyhow::ensure!(
            path.exists(),
            "{} not built: run `cargo build --workspace --bins` (scripts/demo.sh does)",
            path.display()
        );
        Ok(path)
    }
}

/// A running node agent.
pub struct DemoAgent {
    /// Node name (`demo-node-1`).
    pub name: String,
    /// Its Prometheus endpoint.
    pub metrics: SocketAddr,
    /// The process.
    pub process: Managed,
}

/// The running control plane and agents; empty until started. Processes are recorded as soon
/// as they are spawned, so that [`DemoFarm::stop`] stops them whatever happened after.
#[derive(Default)]
pub struct DemoFarm {
    /// gRPC endpoint URL of the control plane.
    pub endpoint: String,
    /// The control plane's HTTP listener (`/metrics`, `/readyz`).
    pub http: Option<SocketAddr>,
    /// The admin token (from the data folder).
    pub admin_token: String,
    /// The control plane process (None once stopped).
    pub control_plane: Option<Managed>,
    /// The agents.
    pub agents: Vec<DemoAgent>,
}

impl DemoFarm {
    /// Starts the control plane and waits until it is ready and has written its tokens.
    pub async fn start_control_plane(&mut self, settings: &FarmSettings, limit: Duration) -> anyhow::Result<()> {
        let grpc = loopback_port(50051)?;
        let http = loopback_port(9464)?;
        let mut command = Command::new(settings.binary("control-plane")?);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&settings.data_dir)
            .args(["--database-url", ""])
            .arg("--grpc-listen")
            .arg(grpc.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            // Small chunks so that both agents get a share of a short job.
            .env("FLATRENDER_DISPATCH__CHUNK_FRAMES", settings.chunk_frames.to_string())
            .env("RUST_LOG", "info");
        let log = settings.log_dir().join("control-plane.log");
        self.endpoint = format!("http://{grpc}");
        self.http = Some(http);
        let control_plane =
            self.control_plane
                .insert(Managed::spawn("control-plane", command, &log, &settings.data_dir)?);
        let token_file = settings.admin_token_file();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = control_plane.exited() {
                anyhow::bail!("control plane exited ({status}):\n{}", log_tail(&log, 30));
            }
            let ready = http_get(http, "/readyz")
                .await
                .is_some_and(|response| response.starts_with("HTTP/1.1 200"));
            if ready && token_file.exists() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("control plane not ready after {limit:?}:\n{}", log_tail(&log, 30));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.admin_token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("read {}", token_file.display()))?
            .trim()
            .to_owned();
        Ok(())
    }

    /// Starts the agents and waits until every one has registered and been seen since `since`.
    pub async fn start_agents(
        &mut self,
        settings: &FarmSettings,
        since: std::time::SystemTime,
        limit: Duration,
    ) -> anyhow::Result<()> {
        for index in 1..=settings.num_agents {
            let name = format!("demo-node-{index}");
            let metrics = loopback_port(0)?;
            let command = self.agent_command(settings, &name, metrics)?;
            let log = settings.log_dir().join(format!("{name}.log"));
            let process = Managed::spawn(&name, command, &log, &settings.data_dir)?;
            self.agents.push(DemoAgent { name, metrics, process });
        }
        self.wait_for_nodes(since, limit).await
    }

    /// The command of one agent: a render node driving the aerender double that also encodes
    /// (it finds `ffmpeg` and `ffprobe` on `PATH` at start and reports them; by default an agent
    /// with ffmpeg takes encode work too). Another kind of node (an encode-only Linux box, say) is
    /// this command with other `FLATRENDER_AGENT_*` settings.
    fn agent_command(&self, settings: &FarmSettings, name: &str, metrics: SocketAddr) -> anyhow::Result<Command> {
        let base = settings.data_dir.join("agents").join(name);
        let fake_state_dir = base.join("aerender-state");
        std::fs::create_dir_all(&fake_state_dir).with_context(|| format!("create {}", fake_state_dir.display()))?;
        let mut command = Command::new(settings.binary("node-agent")?);
        command
            .arg("run")
            .env("FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS", &self.endpoint)
            .env(
                "FLATRENDER_AGENT_CONTROL_PLANE__JOIN_TOKEN_FILE",
                settings.data_dir.join("join.token"),
            )
            .env("FLATRENDER_AGENT_NODE__NAME", name)
            .env("FLATRENDER_AGENT_NODE__STATE_DIR", base.join("state"))
            .env("FLATRENDER_AGENT_NODE__SHUTDOWN_GRACE_SECONDS", "10")
            .env("FLATRENDER_AGENT_AERENDER__PATH", settings.binary("fake-aerender")?)
            .env("FLATRENDER_AGENT_AERENDER__OUTPUT_ROOT", settings.output_root())
            .env("FLATRENDER_AGENT_CACHE__DIR", base.join("cache"))
            .env("FLATRENDER_AGENT_METRICS__LISTEN", metrics.to_string())
            // The double keeps its instance lock per agent, as two machines would.
            .env("FAKE_AERENDER_STATE_DIR", &fake_state_dir)
            .env("FAKE_AERENDER_FRAME_MS", settings.frame_ms.to_string())
            .env("RUST_LOG", "info");
        Ok(command)
    }

    async fn wait_for_nodes(&mut self, since: std::time::SystemTime, limit: Duration) -> anyhow::Result<()> {
        let since_seconds = since
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            for agent in &mut self.agents {
                if let Some(status) = agent.process.exited() {
                    anyhow::bail!(
                        "{} exited ({status}):\n{}",
                        agent.name,
                        log_tail(&agent.process.log, 30)
                    );
                }
            }
            let online = self.online_nodes(since_seconds).await.unwrap_or_default();
            if self.agents.iter().all(|agent| online.contains(&agent.name)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .agents
                    .iter()
                    .map(|agent| format!("{}:\n{}", agent.name, log_tail(&agent.process.log, 15)))
                    .collect();
                anyhow::bail!(
                    "agents not online after {limit:?} (online: {online:?}):\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Names of the nodes that are online and were seen at or after `since_seconds`.
    async fn online_nodes(&self, since_seconds: i64) -> anyhow::Result<Vec<String>> {
        let channel = Channel::from_shared(self.endpoint.clone())?.connect().await?;
        let request = pb::ListNodesRequest {
            states: vec![pb::NodeState::Online.into()],
            page_size: 1000,
            page_token: String::new(),
        };
        let nodes = AdminServiceClient::new(channel)
            .list_nodes(authed(request, &self.admin_token))
            .await?
            .into_inner()
            .nodes;
        Ok(nodes
            .into_iter()
            .filter(|node| {
                node.last_seen_at
                    .as_ref()
                    .is_some_and(|seen| seen.seconds >= since_seconds)
            })
            .map(|node| node.name)
            .collect())
    }

    /// Stops the agents (SIGTERM to all at once), then the control plane, which stops PostgreSQL.
    pub async fn stop(&mut self) {
        for agent in &self.agents {
            agent.process.terminate();
        }
        for agent in &mut self.agents {
            agent.process.wait_or_kill(AGENT_STOP_GRACE).await;
        }
        if let Some(mut control_plane) = self.control_plane.take() {
            control_plane.terminate();
            control_plane.wait_or_kill(CONTROL_PLANE_STOP_GRACE).await;
        }
    }
}

/// `preferred` on loopback if it is free (the defaults a newcomer's tools expect), else any free port.
fn loopback_port(preferred: u16) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", preferred))
        .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
        .context("find a free loopback port")?;
    listener.local_addr().context("local address")
}

/// The last `lines` lines of a log file, indented, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n    ");
    format!("  ({})\n    {tail}", path.display())
}
