//! Harness for FlatRender's cross-process end-to-end tests: the real `control-plane` binary on a
//! private test database, real `node-agent` processes driving the `fake-aerender` test double,
//! and a local HTTP server that serves the template.
//!
//! The binaries are the ones `cargo build --workspace --bins` put next to the test executable
//! (`scripts/test.sh` builds them first). Everything started here is killed on drop.
//!
//! `quickstart` holds the `quickstart` binary's farm orchestration (`scripts/demo.sh`); `sample`
//! the saved project it submits, which the scaling benchmark (`benches/scaling.rs`) submits too.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use flatrender_control_plane::{auth, testing::TestDb};
use flatrender_proto::{
    pb::{self, render_service_client::RenderServiceClient},
    types::{TenantId, TokenKind},
};
use tonic::transport::Channel;

pub mod file_service;
pub mod frames;
pub mod quickstart;
pub mod sample;

/// How long a test waits for something that should happen (a process ready, a job finished, a
/// row written) before calling it lost. Generous on purpose: the machine is shared and slow, so
/// only a real failure reaches it; the condition is polled, never slept on.
pub const WAIT_LIMIT: Duration = flatrender_proto::testing::PATIENCE;

/// A project file the double understands: one comp of 25 fps.
pub fn project_file(comp: &str, frames: i32) -> Vec<u8> {
    format!("comp \"{comp}\" fps=25 frames={frames} start=0 width=64 height=36\n").into_bytes()
}

/// The folder holding the workspace's built binaries (next to `deps/` of the test executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("target profile folder").to_path_buf()
}

/// A binary of the workspace, failing loudly with the fix when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Serves template files over HTTP and counts downloads.
pub struct TemplateServer {
    /// `http://127.0.0.1:port`.
    pub base_url: String,
    /// Requests per path.
    pub hits: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    files: Arc<std::sync::Mutex<HashMap<String, Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TemplateServer {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        Self::try_start().await.expect("start template server")
    }

    /// Starts on a free loopback port, or says why it could not.
    pub async fn try_start() -> std::io::Result<Self> {
        let files: Arc<std::sync::Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let hits: Arc<std::sync::Mutex<HashMap<String, usize>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (served, counted) = (files.clone(), hits.clone());
        let router = axum::Router::new().route(
            "/{*path}",
            axum::routing::get(move |axum::extract::Path(path): axum::extract::Path<String>| {
                let (served, counted) = (served.clone(), counted.clone());
                async move {
                    *counted.lock().expect("hits").entry(path.clone()).or_default() += 1;
                    match served.lock().expect("files").get(&path) {
                        Some(bytes) => (axum::http::StatusCode::OK, bytes.clone()),
                        None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                    }
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            base_url: format!("http://{address}"),
            hits,
            files,
            task,
        })
    }

    /// Publishes `bytes` at `/path`; returns (url, BLAKE3 hex, size).
    pub fn publish(&self, path: &str, bytes: Vec<u8>) -> (String, String, i64) {
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let size = i64::try_from(bytes.len()).expect("size");
        self.files.lock().expect("files").insert(path.to_owned(), bytes);
        (format!("{}/{path}", self.base_url), hash, size)
    }

    /// Downloads of `/path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("hits").get(path).copied().unwrap_or(0)
    }
}

impl Drop for TemplateServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running control plane with its database, tokens and template server.
pub struct Farm {
    /// The test database.
    pub db: TestDb,
    /// gRPC endpoint URL.
    pub endpoint: String,
    /// HTTP address (metrics, probes).
    pub http: SocketAddr,
    /// Tokens.
    pub admin_token: String,
    /// For backends.
    pub service_token: String,
    /// For agents.
    pub join_token: String,
    /// Serves templates.
    pub templates: TemplateServer,
    /// Scratch folder of this farm.
    pub dir: tempfile::TempDir,
    grpc_port: u16,
    control_plane: Option<Child>,
    extra_env: Vec<(String, String)>,
}

impl Farm {
    /// Starts a control plane with test timings (`extra_env` are `FLATRENDER_*` settings).
    pub async fn start(extra_env: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let admin_token = auth::create_token(db.pool(), TokenKind::Admin, "e2e", None, None, None)
            .await
            .expect("token")
            .1;
        let service_token = auth::create_token(db.pool(), TokenKind::Service, "e2e", None, None, None)
            .await
            .expect("token")
            .1;
        let join_token = auth::create_token(db.pool(), TokenKind::Join, "e2e", None, None, None)
            .await
            .expect("token")
            .1;
        let grpc_port = free_port();
        let http_port = free_port();
        let dir = tempfile::tempdir().expect("scratch folder");
        let mut farm = Self {
            db,
            endpoint: format!("http://127.0.0.1:{grpc_port}"),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            admin_token,
            service_token,
            join_token,
            templates: TemplateServer::start().await,
            dir,
            grpc_port,
            control_plane: None,
            extra_env: extra_env
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        };
        // The ports were free when chosen, but any outgoing connection on the machine may take
        // one before the control plane binds it: then it exits at once, and new ports are tried.
        for _ in 0..3 {
            if farm.spawn_control_plane().await {
                return farm;
            }
            let (grpc_port, http_port) = (free_port(), free_port());
            farm.grpc_port = grpc_port;
            farm.endpoint = format!("http://127.0.0.1:{grpc_port}");
            farm.http = SocketAddr::from(([127, 0, 0, 1], http_port));
        }
        panic!(
            "control plane exited at start three times; see {}",
            farm.dir.path().join("control-plane.log").display()
        );
    }

    /// (Re)starts the control-plane process and waits until it serves.
    pub async fn start_control_plane(&mut self) {
        assert!(
            self.spawn_control_plane().await,
            "control plane exited at start; see {}",
            self.dir.path().join("control-plane.log").display()
        );
    }

    /// Starts the control-plane process and waits until it serves (true) or exits (false).
    async fn spawn_control_plane(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("control-plane.log")).expect("log file");
        let mut command = Command::new(binary("control-plane"));
        command
            .arg("serve")
            .env("FLATRENDER_DATABASE__URL", self.db.url())
            .env(
                "FLATRENDER_SERVER__GRPC_LISTEN",
                format!("127.0.0.1:{}", self.grpc_port),
            )
            .env("FLATRENDER_SERVER__HTTP_LISTEN", self.http.to_string())
            .env("FLATRENDER_DISPATCH__LEASE_TTL_SECONDS", "6")
            .env("FLATRENDER_DISPATCH__HEARTBEAT_INTERVAL_SECONDS", "1")
            .env("FLATRENDER_DISPATCH__NODE_OFFLINE_AFTER_SECONDS", "5")
            .env("FLATRENDER_DISPATCH__REAPER_INTERVAL_MS", "200")
            .env("FLATRENDER_DISPATCH__CHUNK_FRAMES", "5")
            .env("FLATRENDER_DISPATCH__MIN_CHUNKS_PER_JOB", "2")
            .env("FLATRENDER_DISPATCH__MAX_ACQUIRE_WAIT_SECONDS", "5")
            .env("RUST_LOG", "info")
            .envs(self.extra_env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = command.spawn().expect("spawn control-plane");
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            if http_get(self.http, "/readyz")
                .await
                .is_some_and(|body| body.contains("ready"))
            {
                self.control_plane = Some(child);
                return true;
            }
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "control plane did not become ready; see {}",
                self.dir.path().join("control-plane.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the control plane (SIGKILL), as a crash or an outage would.
    pub fn kill_control_plane(&mut self) {
        if let Some(mut child) = self.control_plane.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A render client.
    pub async fn render(&self) -> RenderServiceClient<Channel> {
        RenderServiceClient::new(
            Channel::from_shared(self.endpoint.clone())
                .expect("url")
                .connect()
                .await
                .expect("connect"),
        )
    }

    /// Publishes a project with `comp` of `frames` frames and submits a job over `first..=last`.
    pub async fn submit(&self, name: &str, comp: &str, frames: i32, first: i32, last: i32) -> pb::RenderJob {
        self.submit_with(self.submit_request(name, comp, frames, first, last))
            .await
    }

    /// Publishes a project with `comp` of `frames` frames; the request for a job over
    /// `first..=last` (for tests that submit over a channel of their own).
    pub fn submit_request(
        &self,
        name: &str,
        comp: &str,
        frames: i32,
        first: i32,
        last: i32,
    ) -> pb::SubmitRenderJobRequest {
        let (url, hash, size) = self
            .templates
            .publish(&format!("{name}.aep"), project_file(comp, frames));
        pb::SubmitRenderJobRequest {
            tenant_id: TenantId::new_random().to_string(),
            user_id: uuid::Uuid::new_v4().to_string(),
            template: Some(pb::TemplateRef {
                template_id: uuid::Uuid::new_v4().to_string(),
                version: 1,
                download_url: url,
                blake3_hex: hash,
                size_bytes: size,
            }),
            composition: comp.into(),
            frame_range: Some(pb::FrameRange {
                start: first,
                end: last,
            }),
            fps: 25.0,
            output: Some(pb::OutputSettings {
                output_name: name.into(),
                container: "png_sequence".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A saved-project request over `scenes`, its template (`template_bytes`) published as
    /// `name.aep`.
    pub fn project_request(
        &self,
        name: &str,
        template_bytes: Vec<u8>,
        scenes: Vec<pb::Scene>,
    ) -> pb::SubmitRenderJobRequest {
        let mut request = self.submit_request(name, "unused", 1, 0, 0);
        let (url, hash, size) = self.templates.publish(&format!("{name}.aep"), template_bytes);
        let template = request.template.as_mut().expect("template");
        (template.download_url, template.blake3_hex, template.size_bytes) = (url, hash, size);
        request.composition.clear();
        request.frame_range = None;
        request.scenes = scenes;
        request
    }

    /// Submits `request` as the service.
    pub async fn submit_with(&self, request: pb::SubmitRenderJobRequest) -> pb::RenderJob {
        self.render()
            .await
            .submit_render_job(authed(request, &self.service_token))
            .await
            .expect("submit")
            .into_inner()
            .job
            .expect("job")
    }

    /// Reads a job.
    pub async fn job(&self, job_id: &str) -> pb::RenderJob {
        let request = pb::GetRenderJobRequest { job_id: job_id.into() };
        self.render()
            .await
            .get_render_job(authed(request, &self.service_token))
            .await
            .expect("get")
            .into_inner()
            .job
            .expect("job")
    }

    /// Waits for the job to reach a terminal state.
    pub async fn wait_terminal(&self, job_id: &str, limit: Duration) -> pb::RenderJob {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let job = self.job(job_id).await;
            if matches!(
                job.status(),
                pb::JobStatus::Completed | pb::JobStatus::Failed | pb::JobStatus::Cancelled
            ) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} still {:?} after {limit:?}: {job:?}\n{}",
                job.status(),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The tail of every log under the farm's folder (control plane and agents), for failure messages.
    pub fn logs(&self) -> String {
        let mut logs = Vec::new();
        collect_logs(self.dir.path(), &mut logs);
        logs.sort();
        logs.iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(80)..].join("\n");
                format!("==== {} (last 80 lines)\n{tail}", path.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The id of the node registered as `name`.
    pub async fn node_id(&self, name: &str) -> String {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM render.nodes WHERE name = $1")
            .bind(name)
            .fetch_one(self.db.pool())
            .await
            .expect("node registered")
            .to_string()
    }

    /// One number from SQL.
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(self.db.pool()).await.expect("query")
    }

    /// Starts an agent named `name`; `fake_env` drives the double (`FAKE_AERENDER_*`).
    pub fn agent(&self, name: &str, fake_aerender: &Path, fake_env: &[(&str, &str)]) -> Agent {
        Agent::start(self, name, fake_aerender, fake_env, self.dir.path().join("renders"))
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.kill_control_plane();
    }
}

fn collect_logs(dir: &Path, logs: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // aerender's own per-run logs are too many to print; the agent's log names them.
            if !path.ends_with("render-logs") && !path.ends_with("renders") {
                collect_logs(&path, logs);
            }
        } else if path.extension().is_some_and(|extension| extension == "log") {
            logs.push(path);
        }
    }
}

/// A running `node-agent` process.
pub struct Agent {
    /// Its name.
    pub name: String,
    /// Its state folder.
    pub state_dir: PathBuf,
    /// Where the double keeps its run counter and child pids.
    pub fake_state_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn start(farm: &Farm, name: &str, fake_aerender: &Path, fake_env: &[(&str, &str)], output_root: PathBuf) -> Self {
        let base = farm.dir.path().join(name);
        let state_dir = base.join("state");
        let fake_state_dir = base.join("fake");
        std::fs::create_dir_all(&fake_state_dir).expect("fake state folder");
        let log = base.join("agent.log");
        let mut command = Command::new(binary("node-agent"));
        command
            .arg("run")
            .env("FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS", &farm.endpoint)
            .env("FLATRENDER_AGENT_CONTROL_PLANE__JOIN_TOKEN", &farm.join_token)
            .env("FLATRENDER_AGENT_CONTROL_PLANE__ACQUIRE_WAIT_SECONDS", "2")
            .env("FLATRENDER_AGENT_CONTROL_PLANE__REQUEST_TIMEOUT_SECONDS", "3")
            .env("FLATRENDER_AGENT_NODE__NAME", name)
            .env("FLATRENDER_AGENT_NODE__STATE_DIR", &state_dir)
            .env("FLATRENDER_AGENT_NODE__SHUTDOWN_GRACE_SECONDS", "5")
            .env("FLATRENDER_AGENT_AERENDER__PATH", fake_aerender)
            .env("FLATRENDER_AGENT_AERENDER__OUTPUT_ROOT", &output_root)
            .env("FLATRENDER_AGENT_CACHE__DIR", base.join("cache"))
            .env("FLATRENDER_AGENT_HEALTH__INTERVAL_SECONDS", "1")
            .env("FLATRENDER_AGENT_METRICS__LISTEN", "")
            .env("FLATRENDER_AGENT_WATCHDOG__STARTUP_SECONDS", "10")
            .env("FLATRENDER_AGENT_WATCHDOG__NO_OUTPUT_MIN_SECONDS", "3")
            .env("FLATRENDER_AGENT_WATCHDOG__TAIL_SECONDS", "2")
            .env("FLATRENDER_AGENT_WATCHDOG__KILL_GRACE_SECONDS", "1")
            .env("FLATRENDER_AGENT_RECOVERY__BACK_OFF_SECONDS", "2")
            .env("FLATRENDER_AGENT_RECOVERY__PROBE_INTERVAL_SECONDS", "1")
            .env("FAKE_AERENDER_STATE_DIR", &fake_state_dir)
            .env("FAKE_AERENDER_FRAME_MS", "20")
            .env("RUST_LOG", "info")
            .envs(fake_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"));
        let child = command.spawn().expect("spawn node-agent");
        Self {
            name: name.into(),
            state_dir,
            fake_state_dir,
            log,
            child: Some(child),
        }
    }

    /// SIGKILL, as a crashed machine would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit (at most `limit`).
    pub async fn stop(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many times the double was started by this agent.
    pub fn fake_runs(&self) -> u32 {
        std::fs::read_to_string(self.fake_state_dir.join("runs"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Processes started for `agent` (they carry the agent's process tag and inherit its double's
/// state folder), found through `/proc`: what a render left behind. Scoped to one agent so that
/// tests running side by side do not see each other's renders.
pub fn leftover_processes(agent: &Agent) -> Vec<u32> {
    let marker = format!("FAKE_AERENDER_STATE_DIR={}", agent.fake_state_dir.display()).into_bytes();
    processes_where_env(|vars| {
        vars.iter().any(|var| var.starts_with(b"FLATRENDER_PROCESS_TAG=")) && vars.contains(&marker.as_slice())
    })
}

/// The processes (other than this one) whose environment variables (`NAME=value` each) satisfy
/// `matches`, found through `/proc`. Processes that vanish or cannot be read (zombies have an
/// empty environment) are skipped.
pub fn processes_where_env(matches: impl Fn(&[&[u8]]) -> bool) -> Vec<u32> {
    let own_pid = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own_pid)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                let vars: Vec<&[u8]> = environ.split(|byte| *byte == 0).collect();
                matches(&vars)
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Kills what `agent`'s renders left behind (after the agent was killed itself).
pub fn kill_leftovers(agent: &Agent) {
    for pid in leftover_processes(agent) {
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
}

pub use flatrender_proto::testing::{authed, eventually_within as wait_until};

/// A plain HTTP/1.1 GET; `None` when nothing answers.
pub async fn http_get(address: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

/// A plain HTTP/1.1 GET of `url` (`http://host:port/path`): the status code and the body's
/// bytes; `None` when nothing answers or the response is not HTTP.
pub async fn http_get_bytes(url: &str) -> Option<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = url.strip_prefix("http://")?.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    stream
        .write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let end_of_head = response.windows(4).position(|window| window == b"\r\n\r\n")?;
    let status_line = String::from_utf8_lossy(&response[..end_of_head])
        .lines()
        .next()?
        .to_owned();
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    Some((status, response.split_off(end_of_head + 4)))
}
