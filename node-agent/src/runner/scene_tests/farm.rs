//! The scene tests' node: a local file server for the template and assets, and a `ChunkContext`
//! whose aerender is a shell script recording what it was given before it behaves as told.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flatrender_proto::pb::{self, field_value::Value as WireValue};
use flatrender_proto::types::{ContentHash, FrameJobId, JobId};

use super::super::*;
use super::LOGO;
use crate::cache::CacheConfig;
use crate::config::AgentConfig;
use crate::leases::LeaseTable;
use crate::outbox::OutboxLimits;
use crate::supervisor::AerenderInstall;

/// Files served, requests counted per name, and names whose bytes are sent damaged.
#[derive(Default)]
pub(super) struct Files {
    pub(super) bytes: Mutex<HashMap<String, Vec<u8>>>,
    pub(super) requests: Mutex<HashMap<String, usize>>,
    pub(super) corrupt: Mutex<Vec<String>>,
}

async fn serve(State(files): State<Arc<Files>>, UrlPath(name): UrlPath<String>) -> Response {
    *files.requests.lock().unwrap().entry(name.clone()).or_default() += 1;
    let Some(mut bytes) = files.bytes.lock().unwrap().get(&name).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if files.corrupt.lock().unwrap().contains(&name) {
        bytes[0] ^= 0xff;
    }
    bytes.into_response()
}

pub(super) struct Farm {
    pub(super) dir: tempfile::TempDir,
    pub(super) files: Arc<Files>,
    base_url: String,
    pub(super) context: ChunkContext,
    pub(super) leases: LeaseTable,
}

impl Farm {
    /// A node whose aerender is a shell script running `behaviour` after recording its arguments
    /// (one per line in `marks/args`), its script (`marks/apply.jsx`) and its working folder's
    /// files (`marks/tree`), then touching `marks/started`.
    pub(super) async fn start(behaviour: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(Files::default());
        let router = axum::Router::new()
            .route("/files/{name}", axum::routing::get(serve))
            .with_state(Arc::clone(&files));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/files", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });

        let marks = dir.path().join("marks");
        std::fs::create_dir_all(&marks).unwrap();
        let aerender = dir.path().join("aerender");
        let script = format!(
            r#"#!/bin/sh
marks='{marks}'
printf '%s\n' "$@" > "$marks/args"
while [ $# -gt 0 ]; do
  case "$1" in
    -s) first="$2"; shift 2;;
    -e) last="$2"; shift 2;;
    -output) output="$2"; shift 2;;
    -r) script="$2"; shift 2;;
    *) shift;;
  esac
done
if [ -n "$script" ]; then
  cp "$script" "$marks/apply.jsx"
  (cd "$(dirname "$script")" && find . -type f | sort) > "$marks/tree"
fi
touch "$marks/started"
{behaviour}
"#,
            marks = marks.display()
        );
        std::fs::write(&aerender, script).unwrap();
        std::fs::set_permissions(&aerender, std::fs::Permissions::from_mode(0o755)).unwrap();

        let mut config = AgentConfig::default();
        config.node.state_dir = dir.path().join("state");
        config.aerender.output_root = dir.path().join("renders");
        config.aerender.frame_extension = "tif".into();
        config.cache.dir = dir.path().join("cache");
        config.watchdog.kill_grace_seconds = 1;
        let cache_config = |dir: PathBuf| CacheConfig {
            max_attempts: 1,
            ..CacheConfig::new(dir, 1 << 30)
        };
        let context = ChunkContext {
            client: Arc::new(ControlPlaneClient::new(
                vec!["http://127.0.0.1:1".into()],
                Duration::from_secs(1),
                None,
            )),
            cache: TemplateCache::open(cache_config(config.cache.dir.clone()))
                .await
                .unwrap(),
            assets: AssetCache::open(cache_config(config.cache.asset_dir())).await.unwrap(),
            outbox: Arc::new(
                Outbox::open(
                    dir.path().join("outbox"),
                    OutboxLimits {
                        max_health_samples: 10,
                        max_bytes: 1 << 20,
                    },
                )
                .await
                .unwrap(),
            ),
            metrics: Arc::new(AgentMetrics::new()),
            install: Some(AerenderInstall {
                path: aerender,
                version: None,
            }),
            encoder: None,
            exports: Arc::new(crate::export::ExportStore::Folder(
                crate::export::FolderStore::new(&dir.path().join("exports")).unwrap(),
            )),
            process_tag_prefix: format!("flatrender-test/{}/", uuid::Uuid::new_v4().simple()),
            config: Arc::new(config),
        };
        Self {
            dir,
            files,
            base_url,
            context,
            leases: LeaseTable::default(),
        }
    }

    pub(super) fn publish(&self, name: &str, bytes: &[u8]) -> (String, String) {
        self.files.bytes.lock().unwrap().insert(name.into(), bytes.to_vec());
        (
            format!("{}/{name}", self.base_url),
            ContentHash::from_bytes(*blake3::hash(bytes).as_bytes()).to_hex(),
        )
    }

    pub(super) fn requests(&self, name: &str) -> usize {
        self.files.requests.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    pub(super) fn mark(&self, name: &str) -> PathBuf {
        self.dir.path().join("marks").join(name)
    }

    pub(super) fn work_root(&self) -> PathBuf {
        self.dir.path().join("state").join("work")
    }

    /// A chunk of frames 10..=12 of "Intro", with `scene` (a headline and a logo when `Some`).
    pub(super) fn assignment(&self, job_id: JobId, scene: Option<pb::AssignedScene>) -> pb::WorkAssignment {
        let (url, blake3_hex) = self.publish("template.aep", b"RIFX the cached template");
        pb::WorkAssignment {
            frame_job_id: FrameJobId::new_random().to_string(),
            lease_token: 7,
            job_id: job_id.to_string(),
            frame_range: Some(pb::FrameRange { start: 10, end: 12 }),
            template: Some(pb::TemplateRef {
                download_url: url,
                blake3_hex,
                size_bytes: 24,
                ..pb::TemplateRef::default()
            }),
            composition: "Intro".into(),
            output: Some(pb::OutputSettings {
                output_name: "out".into(),
                ..pb::OutputSettings::default()
            }),
            scene,
            ..pb::WorkAssignment::default()
        }
    }

    pub(super) fn scene(&self) -> pb::AssignedScene {
        let (url, blake3_hex) = self.publish("logo-upload", LOGO);
        let logo = pb::Asset {
            url,
            blake3_hex,
            size_bytes: LOGO.len() as i64,
            file_name: "Logo.png".into(),
        };
        let field = |key: &str, layer: &str, value| pb::FieldValue {
            key: key.into(),
            layer_name: layer.into(),
            property: String::new(),
            value: Some(value),
        };
        pb::AssignedScene {
            index: 2,
            scene_id: String::new(),
            fields: vec![
                field("headline", "Title", WireValue::Text("\"); app.quit(); //\nHi".into())),
                field("logo", "Logo", WireValue::Image(logo)),
            ],
        }
    }

    pub(super) async fn run(&self, assignment: &pb::WorkAssignment) -> ChunkOutcome {
        let lease = self.leases.insert(assignment);
        let outcome = run_chunk(&self.context, assignment, lease, |failure| failure).await;
        self.leases.remove(&assignment.frame_job_id);
        outcome
    }

    pub(super) fn args(&self) -> Vec<String> {
        std::fs::read_to_string(self.mark("args"))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(super) fn last_failure(&self) -> crate::outbox::ChunkFailure {
        self.context
            .outbox
            .pending_results()
            .into_iter()
            .rev()
            .find_map(|(_, item)| match item {
                OutboxItem::Failure(failure) => Some(failure),
                _ => None,
            })
            .expect("a failure in the outbox")
    }

    /// Nothing is left under the work root (the job folders go with their last render).
    pub(super) fn assert_no_working_folder(&self) {
        let left: Vec<_> = std::fs::read_dir(self.work_root())
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "working folders left: {left:?}");
    }
}

pub(super) fn value_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let position = args.iter().position(|arg| arg == flag)?;
    args.get(position + 1).map(String::as_str)
}
