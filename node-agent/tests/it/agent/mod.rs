//! The whole agent in this process (`Agent::start` and `run`, configured as an operator would)
//! against a fake control plane over real gRPC (`control_plane`), the real `ffmpeg` and `ffprobe`,
//! the folder export store and a local HTTP server for audio assets: encode items from
//! assignment to stored export and reported completion (`encode`).
//!
//! Every node here is encode-only: `aerender.required = false` and an aerender path that does
//! not exist, nothing else, which is all an operator (or a cross-process harness) sets.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod control_plane;
mod encode;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flatrender_node_agent::config::AgentConfig;
use flatrender_node_agent::service::Agent;
use flatrender_proto::pb;
use flatrender_proto::types::{FrameJobId, JobId, TenantId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ffmpeg;

use control_plane::{FakeControlPlane, Recorded};

/// Generous: reached only when something is really wrong, however loaded the machine.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// Waits until `condition` holds on what the control plane recorded.
async fn wait_for(fake: &FakeControlPlane, what: &str, condition: impl Fn(&Recorded) -> bool) {
    wait_until(what, || fake.recorded(&condition)).await;
}

/// Waits until `condition` holds, polling.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Audio files served over HTTP by name.
#[derive(Default)]
struct Files(Mutex<HashMap<String, Vec<u8>>>);

async fn serve(State(files): State<Arc<Files>>, UrlPath(name): UrlPath<String>) -> Response {
    match files.0.lock().unwrap().get(&name).cloned() {
        Some(bytes) => bytes.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// One encode-only node: its folders, the fake control plane and the file server.
struct Node {
    dir: tempfile::TempDir,
    fake: Arc<FakeControlPlane>,
    config: AgentConfig,
    files: Arc<Files>,
    files_url: String,
    running: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl Node {
    /// A node whose ffmpeg is `ffmpeg` (`None`: the one on `PATH`).
    async fn new(ffmpeg: Option<PathBuf>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (fake, endpoint) = FakeControlPlane::start().await;
        let files = Arc::new(Files::default());
        let router = axum::Router::new()
            .route("/files/{name}", axum::routing::get(serve))
            .with_state(Arc::clone(&files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let files_url = format!("http://{}/files", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let mut config = AgentConfig::default();
        config.control_plane.endpoints = vec![endpoint];
        config.control_plane.join_token = "fr_join_test".into();
        config.control_plane.acquire_wait_seconds = 1;
        config.control_plane.request_timeout_seconds = 10;
        config.node.name = "encode-node".into();
        config.node.state_dir = dir.path().join("state");
        config.node.shutdown_grace_seconds = 30;
        config.aerender.required = false;
        config.aerender.path = dir.path().join("no-after-effects").join("aerender");
        config.aerender.output_root = dir.path().join("renders");
        config.cache.dir = dir.path().join("cache");
        config.cache.max_attempts = 1;
        config.cache.download_timeout_seconds = 30;
        config.metrics.listen = String::new();
        config.export.folder = dir.path().join("exports");
        if let Some(ffmpeg) = ffmpeg {
            config.encode.ffmpeg = ffmpeg;
        }
        config.validate().unwrap();
        Self {
            dir,
            fake,
            config,
            files,
            files_url,
            running: None,
        }
    }

    /// Starts the agent (a new run: the credential stays in the state folder).
    async fn start(&mut self) {
        let agent = Agent::start(self.config.clone()).await.expect("the agent starts");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(agent.run(shutdown.clone()));
        self.running = Some((shutdown, task));
    }

    /// Stops the running agent and waits for it.
    async fn stop(&mut self) {
        let (shutdown, task) = self.running.take().expect("a running agent");
        shutdown.cancel();
        tokio::time::timeout(WAIT_LIMIT, task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap();
    }

    /// Publishes `bytes` as `name`; returns it as an asset.
    fn publish(&self, name: &str, bytes: Vec<u8>) -> pb::Asset {
        let asset = pb::Asset {
            url: format!("{}/{name}", self.files_url),
            blake3_hex: blake3::hash(&bytes).to_hex().to_string(),
            size_bytes: bytes.len() as i64,
            file_name: name.into(),
        };
        self.files.0.lock().unwrap().insert(name.into(), bytes);
        asset
    }

    /// `count` frames of a solid `color`, numbered from `first`, where the render runner writes
    /// the frames of `job`'s scene `scene` (`None`: a single composition) named `promo`.
    fn frames(&self, job_id: JobId, scene: Option<u32>, color: &str, first: i32, count: u32) {
        let mut dir = self.config.aerender.output_root.join(job_id.to_string());
        if let Some(index) = scene {
            dir = dir.join(format!("scene-{index:03}"));
        }
        std::fs::create_dir_all(&dir).unwrap();
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("color=c={color}:s=64x36:r=25"),
            "-frames:v",
            &count.to_string(),
            "-start_number",
            &first.to_string(),
            dir.join("promo_%05d.png").to_str().unwrap(),
        ]);
    }

    /// Where exports are stored.
    fn exports(&self) -> &Path {
        &self.config.export.folder
    }

    /// Files left under the agent's work root.
    fn work_left(&self) -> Vec<PathBuf> {
        let work = self.config.node.state_dir.join("work");
        std::fs::read_dir(work)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default()
    }
}

/// A WAV tone of `seconds`, as bytes.
fn tone(dir: &Path, name: &str, seconds: f64) -> Vec<u8> {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}:sample_rate=48000"),
        path.to_str().unwrap(),
    ]);
    std::fs::read(path).unwrap()
}

/// An encode item of `job_id`: an mp4 at 480p, 25 fps, named `promo`, of `scenes` (index, first,
/// last; none: frames `0..=frames_end` of a single composition), with `audio`.
fn encode_assignment(
    tenant_id: TenantId,
    job_id: JobId,
    scenes: &[(i32, i32, i32)],
    frames_end: i32,
    audio: Option<pb::ProjectAudio>,
) -> pb::WorkAssignment {
    pb::WorkAssignment {
        frame_job_id: FrameJobId::new_random().to_string(),
        lease_token: 11,
        job_id: job_id.to_string(),
        tenant_id: tenant_id.to_string(),
        frame_range: Some(pb::FrameRange {
            start: 0,
            end: frames_end,
        }),
        fps: 25.0,
        output: Some(pb::OutputSettings {
            output_name: "promo".into(),
            container: "mp4".into(),
            resolution: pb::Resolution::Resolution480p as i32,
            ..pb::OutputSettings::default()
        }),
        kind: pb::WorkKind::Encode as i32,
        encode: Some(pb::EncodeWork {
            scenes: scenes
                .iter()
                .map(|&(index, start, end)| pb::EncodeScene {
                    index,
                    frame_range: Some(pb::FrameRange { start, end }),
                })
                .collect(),
            audio,
        }),
        ..pb::WorkAssignment::default()
    }
}

/// BLAKE3 of a file, hex.
fn file_blake3(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

/// Files (not folders) anywhere under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}
