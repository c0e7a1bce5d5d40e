//! A control plane served over real loopback gRPC against a private test database, plus
//! clients and request builders.

use std::{net::SocketAddr, time::Duration};

use flatrender_control_plane::{auth, config::Config, server, testing::TestDb};
use flatrender_proto::{
    pb::{
        self, admin_service_client::AdminServiceClient, node_service_client::NodeServiceClient,
        render_service_client::RenderServiceClient,
    },
    types::{TenantId, TokenKind},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A BLAKE3 hex digest for tests (any 64 hex characters).
pub const HASH_A: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
/// Another.
pub const HASH_B: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A running control plane with tokens of every kind.
pub struct Farm {
    pub db: TestDb,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub admin_token: String,
    pub service_token: String,
    pub join_token: String,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Test defaults: long leases unless a test shortens them, fast housekeeping.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.server.grpc_listen = "127.0.0.1:0".into();
    config.server.http_listen = "127.0.0.1:0".into();
    config.dispatch.reaper_interval_ms = 100;
    config.dispatch.chunk_frames = 10;
    config.dispatch.min_chunks_per_job = 1;
    config.health.flush_interval_ms = 50;
    config
}

impl Farm {
    pub async fn start() -> Self {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let mut farm = Self::without_server().await;
        let (grpc, http, handle) = farm.serve(config).await;
        farm.grpc = grpc;
        farm.http = http;
        farm.server = Some(handle);
        farm
    }

    /// Starts this farm's own control plane on `pool` (a pool of the test's making).
    pub async fn attach(&mut self, config: Config, pool: sqlx::PgPool) {
        let (grpc, http, handle) = self.serve_with_pool(config, pool).await;
        self.grpc = grpc;
        self.http = http;
        self.server = Some(handle);
    }

    /// The database and tokens, no control plane yet.
    pub async fn without_server() -> Self {
        let db = TestDb::new().await;
        let admin_token = auth::create_token(db.pool(), TokenKind::Admin, "test admin", None, None, None)
            .await
            .unwrap()
            .1;
        let service_token = auth::create_token(db.pool(), TokenKind::Service, "test service", None, None, None)
            .await
            .unwrap()
            .1;
        let join_token = auth::create_token(db.pool(), TokenKind::Join, "test join", None, None, None)
            .await
            .unwrap()
            .1;
        Self {
            db,
            grpc: "127.0.0.1:1".parse().unwrap(),
            http: "127.0.0.1:1".parse().unwrap(),
            admin_token,
            service_token,
            join_token,
            shutdown: CancellationToken::new(),
            server: None,
        }
    }

    /// Starts one more control plane on the same database (for multi-instance tests).
    pub async fn serve(&self, config: Config) -> (SocketAddr, SocketAddr, tokio::task::JoinHandle<()>) {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .connect(&self.db.url())
            .await
            .unwrap();
        self.serve_with_pool(config, pool).await
    }

    /// Starts one more control plane on `pool` (a pool of a test's own making: its size,
    /// timeouts, or a route through a fault-injecting proxy).
    pub async fn serve_with_pool(
        &self,
        config: Config,
        pool: sqlx::PgPool,
    ) -> (SocketAddr, SocketAddr, tokio::task::JoinHandle<()>) {
        let (bound_sender, bound_receiver) = tokio::sync::oneshot::channel();
        let shutdown = self.shutdown.clone();
        let handle = tokio::spawn(async move {
            server::run(config, pool, shutdown, move |bound| {
                let _ = bound_sender.send(bound);
            })
            .await
            .expect("control plane runs");
        });
        let bound = bound_receiver.await.expect("server bound its listeners");
        (bound.grpc, bound.http, handle)
    }

    pub async fn channel_to(address: SocketAddr) -> Channel {
        Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn render(&self) -> RenderServiceClient<Channel> {
        RenderServiceClient::new(Self::channel_to(self.grpc).await)
    }

    pub async fn nodes(&self) -> NodeServiceClient<Channel> {
        NodeServiceClient::new(Self::channel_to(self.grpc).await)
    }

    pub async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(Self::channel_to(self.grpc).await)
    }

    /// Registers a node named `name` with `tags`; returns (node id, node token).
    pub async fn register(&self, name: &str, tags: &[&str]) -> TestNode {
        self.register_at(self.grpc, name, tags).await
    }

    pub async fn register_at(&self, address: SocketAddr, name: &str, tags: &[&str]) -> TestNode {
        self.register_as(address, registration(name, tags)).await
    }

    /// Registers a node described by `request` at `address`.
    pub async fn register_as(&self, address: SocketAddr, request: pb::RegisterNodeRequest) -> TestNode {
        let mut client = NodeServiceClient::new(Self::channel_to(address).await);
        let response = client
            .register_node(authed(request, &self.join_token))
            .await
            .expect("registration succeeds")
            .into_inner();
        TestNode {
            id: response.node_id,
            token: response.node_token,
            client,
        }
    }

    /// Submits a valid job for `tenant` over `frames` (inclusive) with template `hash`.
    pub async fn submit(&self, tenant: TenantId, start: i32, end: i32, hash: &str) -> pb::RenderJob {
        let mut request = job_request(tenant, start, end);
        request.template.as_mut().unwrap().blake3_hex = hash.into();
        self.render()
            .await
            .submit_render_job(authed(request, &self.service_token))
            .await
            .expect("submit")
            .into_inner()
            .job
            .unwrap()
    }

    pub async fn job(&self, job_id: &str) -> pb::RenderJob {
        self.render()
            .await
            .get_render_job(authed(
                pb::GetRenderJobRequest { job_id: job_id.into() },
                &self.service_token,
            ))
            .await
            .unwrap()
            .into_inner()
            .job
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(self.db.pool()).await.unwrap()
    }

    /// Every row of the tables a node's report can change (chunks with their leases, jobs with
    /// their counters, crashes, bad-node marks), as text: equal snapshots mean nothing was written.
    pub async fn render_state(&self) -> String {
        let mut snapshot = String::new();
        for table in [
            "render.frame_jobs",
            "render.render_jobs",
            "render.node_crashes",
            "render.job_bad_nodes",
        ] {
            let rows: String = sqlx::query_scalar(&format!(
                "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t::text), '[]')::text FROM {table} t"
            ))
            .fetch_one(self.db.pool())
            .await
            .unwrap();
            snapshot.push_str(&format!("{table}: {rows}\n"));
        }
        snapshot
    }

    /// Submits each case (`base()` changed by the case) and expects INVALID_ARGUMENT naming the
    /// case's field.
    pub async fn assert_submissions_refused(
        &self,
        cases: &[(&str, Mutation)],
        base: impl Fn() -> pb::SubmitRenderJobRequest,
    ) {
        let mut client = self.render().await;
        for (field, mutate) in cases {
            let mut request = base();
            mutate(&mut request);
            let status = client
                .submit_render_job(authed(request, &self.service_token))
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{field}: {status:?}");
            assert!(
                names_field(&status, field),
                "expected field {field}, got {:?}",
                status.message()
            );
        }
    }

    /// The body of `/metrics`.
    pub async fn metrics(&self) -> String {
        let (status, body) = http_get(self.http, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.server.take() {
            handle.abort();
        }
    }
}

/// A registered node and its client.
pub struct TestNode {
    pub id: String,
    pub token: String,
    pub client: NodeServiceClient<Channel>,
}

impl TestNode {
    pub async fn acquire(&mut self, max_chunks: i32) -> Vec<pb::WorkAssignment> {
        self.acquire_waiting(max_chunks, Duration::ZERO).await
    }

    pub async fn acquire_waiting(&mut self, max_chunks: i32, wait: Duration) -> Vec<pb::WorkAssignment> {
        let request = pb::AcquireWorkRequest {
            max_chunks,
            wait: Some(prost_types::Duration {
                seconds: wait.as_secs() as i64,
                nanos: wait.subsec_nanos() as i32,
            }),
        };
        self.client
            .acquire_work(authed(request, &self.token))
            .await
            .expect("acquire")
            .into_inner()
            .assignments
    }

    pub async fn complete(&mut self, assignment: &pb::WorkAssignment) -> pb::CompletionOutcome {
        let request = pb::CompleteWorkRequest {
            chunks: vec![completed_chunk(assignment)],
        };
        let response = self
            .client
            .complete_work(authed(request, &self.token))
            .await
            .expect("complete")
            .into_inner();
        response.results[0].outcome()
    }

    pub async fn fail(
        &mut self,
        assignment: &pb::WorkAssignment,
        class: pb::CrashClass,
        action: pb::RecoveryAction,
    ) -> Result<bool, tonic::Status> {
        let request = pb::FailWorkRequest {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            crash_class: class as i32,
            error_class: "ae_runtime_error".into(),
            exit_code: Some(-1073741819),
            log_tail: "aerender Error: After Effects error: crashed".into(),
            message: "After Effects crashed".into(),
            frames_written: vec![],
            recovery_action: action as i32,
        };
        self.client
            .fail_work(authed(request, &self.token))
            .await
            .map(|response| response.into_inner().will_retry)
    }

    pub async fn heartbeat(&mut self, request: pb::HeartbeatRequest) -> pb::HeartbeatResponse {
        self.client
            .heartbeat(authed(request, &self.token))
            .await
            .expect("heartbeat")
            .into_inner()
    }
}

/// A valid completion of `assignment`: one output per frame of its range.
pub fn completed_chunk(assignment: &pb::WorkAssignment) -> pb::CompletedChunk {
    let range = assignment.frame_range.unwrap();
    pb::CompletedChunk {
        frame_job_id: assignment.frame_job_id.clone(),
        lease_token: assignment.lease_token,
        outputs: (range.start..=range.end)
            .map(|frame| pb::FrameOutput {
                frame,
                path: format!("out/frame_{frame:05}.png"),
                size_bytes: 1000,
                blake3_hex: HASH_A.into(),
            })
            .collect(),
        render_seconds: 1.5,
        export: (assignment.kind() == pb::WorkKind::Encode).then(|| export_of(assignment)),
    }
}

/// The templates a heartbeat reply tells the node to prefetch (BLAKE3 hex).
pub fn prefetches(response: &pb::HeartbeatResponse) -> Vec<String> {
    response
        .commands
        .iter()
        .filter_map(|command| match &command.command {
            Some(pb::node_command::Command::PrefetchTemplate(prefetch)) => {
                Some(prefetch.template.as_ref().unwrap().blake3_hex.clone())
            }
            _ => None,
        })
        .collect()
}

/// A plausible stored video for an encode assignment.
pub fn export_of(assignment: &pb::WorkAssignment) -> pb::Export {
    pb::Export {
        location: format!("/farm/exports/{}/{}/promo.mp4", assignment.tenant_id, assignment.job_id),
        format: "mp4".into(),
        width: 1280,
        height: 720,
        size_bytes: 123_456,
        duration: Some(prost_types::Duration {
            seconds: 2,
            nanos: 680_000_000,
        }),
        blake3_hex: HASH_A.into(),
        video_codec: "h264".into(),
        audio_codec: "aac".into(),
        ..Default::default()
    }
}

/// A node that also encodes (ffmpeg found), or only encodes (`encode_only`).
pub fn encoder_registration(name: &str, encode_only: bool) -> pb::RegisterNodeRequest {
    pb::RegisterNodeRequest {
        capabilities: Some(pb::NodeCapabilities {
            encoder: Some(pb::Encoder {
                ffmpeg_version: "5.1.6-0+deb12u1".into(),
                ffprobe_version: "5.1.6-0+deb12u1".into(),
            }),
            encode_only,
        }),
        os: pb::OperatingSystem::Linux as i32,
        ae_version: String::new(),
        ..registration(name, &[])
    }
}

pub fn registration(name: &str, tags: &[&str]) -> pb::RegisterNodeRequest {
    pb::RegisterNodeRequest {
        name: name.into(),
        hostname: format!("{name}.farm.local"),
        os: pb::OperatingSystem::Windows as i32,
        os_version: "10.0.19045".into(),
        ae_version: "24.1.0".into(),
        agent_version: "0.1.0".into(),
        cpu_cores: 16,
        memory_bytes: 64 << 30,
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        max_leases: 4,
        capabilities: None,
    }
}

/// A change to a valid submission that should make it invalid.
pub type Mutation = fn(&mut pb::SubmitRenderJobRequest);

/// A valid submission.
pub fn job_request(tenant: TenantId, start: i32, end: i32) -> pb::SubmitRenderJobRequest {
    pb::SubmitRenderJobRequest {
        tenant_id: tenant.to_string(),
        user_id: uuid::Uuid::new_v4().to_string(),
        saved_project_id: uuid::Uuid::new_v4().to_string(),
        idempotency_key: String::new(),
        kind: pb::JobKind::Export as i32,
        priority: 0,
        template: Some(pb::TemplateRef {
            template_id: uuid::Uuid::new_v4().to_string(),
            version: 3,
            download_url: "https://cdn.example.com/templates/promo.aep".into(),
            blake3_hex: HASH_A.into(),
            size_bytes: 123_456,
        }),
        composition: "Main Comp".into(),
        frame_range: Some(pb::FrameRange { start, end }),
        fps: 25.0,
        // Frames only: the URL-only tracks below are refused for a video (its audio is `audio`).
        output: Some(pb::OutputSettings {
            output_name: "promo".into(),
            container: "png_sequence".into(),
            ..Default::default()
        }),
        music: Some(pb::AudioTrack {
            url: "https://cdn.example.com/music.mp3".into(),
            volume: 0.8,
        }),
        sfx: None,
        voiceover: Some(pb::AudioTrack {
            url: "https://cdn.example.com/vo.wav".into(),
            volume: 1.0,
        }),
        has_voiceover: true,
        requirements: None,
        scenes: Vec::new(),
        audio: None,
    }
}

pub use flatrender_proto::testing::{PATIENCE, authed, eventually};

/// A plain HTTP/1.1 GET over a TCP socket; returns the status code and the body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    (status, body)
}

/// The value of the sample `name{labels}` in a Prometheus text exposition: the label set must
/// match exactly (order aside). `None` when there is no such sample; HELP/TYPE lines never count.
pub fn metric_sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    wanted.sort();
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, mut sample_labels) = match series.split_once('{') {
                Some((sample_name, rest)) => (sample_name, parse_labels(rest.strip_suffix('}')?)?),
                None => (series, Vec::new()),
            };
            sample_labels.sort();
            (sample_name == name && sample_labels == wanted).then(|| value.parse().ok())?
        })
}

/// `k="v",k2="v2"` (no escapes: the tests' label values are ids and words).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, quoted) = pair.split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Whether `status` names exactly `field` (messages read `<field>: <what is wrong>`), so that
/// `template` does not pass for `template.template_id`, nor `chunks[1]` for `chunks[10]`.
pub fn names_field(status: &tonic::Status, field: &str) -> bool {
    status
        .message()
        .split_once(": ")
        .is_some_and(|(named, _)| named == field)
}
