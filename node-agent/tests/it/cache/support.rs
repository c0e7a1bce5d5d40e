//! Test support: a cache configuration for tests, fake project and zip bytes, and the file
//! server: axum on `127.0.0.1:0` serving published bytes, counting requests,
//! honouring `Range`, and failing, stalling, truncating or corrupting responses on demand.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_stream::wrappers::ReceiverStream;

use flatrender_node_agent::cache::{CacheConfig, TemplateSpec};
use flatrender_proto::content::Asset;
use flatrender_proto::types::{ContentHash, HttpUrl, TemplateId};

/// Knobs and counters of the test server; every `*_next` knob applies to that many requests.
#[derive(Default)]
pub struct ServerState {
    pub files: Mutex<HashMap<String, Vec<u8>>>,
    pub num_requests: AtomicUsize,
    pub num_range_requests: AtomicUsize,
    pub last_range_start: AtomicU64,
    pub fail_next: AtomicU32,
    pub fail_status: Mutex<Option<StatusCode>>,
    pub corrupt_next: AtomicU32,
    /// Responses that send only `truncate_at` bytes and then break the connection.
    pub truncate_next: AtomicU32,
    pub truncate_at: AtomicUsize,
    /// Responses delayed by `delay_ms` before the headers.
    pub delay_next: AtomicU32,
    pub delay_ms: AtomicU64,
    /// Answer `Range` requests with a full `200`.
    pub ignore_range: AtomicBool,
}

impl ServerState {
    pub fn requests(&self) -> usize {
        self.num_requests.load(Ordering::SeqCst)
    }

    pub fn fail(&self, count: u32, status: StatusCode) {
        *self.fail_status.lock().unwrap() = Some(status);
        self.fail_next.store(count, Ordering::SeqCst);
    }
}

/// Decrements a `*_next` knob; `true` if this request is affected.
fn take(knob: &AtomicU32) -> bool {
    knob.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
        .is_ok()
}

fn parse_range_start(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get(header::RANGE)?.to_str().ok()?;
    value.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

async fn serve_file(
    State(server): State<Arc<ServerState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    server.num_requests.fetch_add(1, Ordering::SeqCst);
    if take(&server.delay_next) {
        tokio::time::sleep(Duration::from_millis(server.delay_ms.load(Ordering::SeqCst))).await;
    }
    if take(&server.fail_next) {
        let status = server
            .fail_status
            .lock()
            .unwrap()
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return status.into_response();
    }
    let Some(mut bytes) = server.files.lock().unwrap().get(&name).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if take(&server.corrupt_next) && !bytes.is_empty() {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
    }
    let total = bytes.len();
    let range_start = parse_range_start(&headers).filter(|_| !server.ignore_range.load(Ordering::SeqCst));
    let (status, body_bytes) = match range_start {
        Some(start) if start < total => {
            server.num_range_requests.fetch_add(1, Ordering::SeqCst);
            server.last_range_start.store(start as u64, Ordering::SeqCst);
            (StatusCode::PARTIAL_CONTENT, bytes[start..].to_vec())
        }
        _ => (StatusCode::OK, bytes),
    };
    let content_length = body_bytes.len();
    let body = if take(&server.truncate_next) {
        let cut = server.truncate_at.load(Ordering::SeqCst).min(content_length);
        broken_body(body_bytes[..cut].to_vec())
    } else {
        Body::from(body_bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let response_headers = response.headers_mut();
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
    if status == StatusCode::PARTIAL_CONTENT {
        let start = total - content_length;
        let content_range = format!("bytes {start}-{}/{total}", total - 1);
        response_headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&content_range).unwrap());
    }
    response
}

/// A body that sends `prefix`, then fails, so the connection breaks mid-download.
fn broken_body(prefix: Vec<u8>) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _ = sender.send(Ok(Bytes::from(prefix))).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = sender
            .send(Err(std::io::Error::other("connection cut by the test")))
            .await;
    });
    Body::from_stream(ReceiverStream::new(receiver))
}

pub struct TestServer {
    pub state: Arc<ServerState>,
    base_url: String,
}

impl TestServer {
    pub async fn start() -> Self {
        let state = Arc::new(ServerState::default());
        let router = Router::new()
            .route("/files/{name}", get(serve_file))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            state,
            base_url: format!("http://{address}/files"),
        }
    }

    /// Publishes `bytes` under `name` and describes it as a template.
    pub fn publish(&self, name: &str, bytes: &[u8]) -> TemplateSpec {
        self.state.files.lock().unwrap().insert(name.to_owned(), bytes.to_vec());
        TemplateSpec {
            template_id: Some(TemplateId::new_random()),
            version: 3,
            url: HttpUrl::parse(&format!("{}/{name}", self.base_url), "url").unwrap(),
            hash: ContentHash::from_bytes(*blake3::hash(bytes).as_bytes()),
            size_bytes: bytes.len() as u64,
        }
    }

    /// Publishes `bytes` under `name` and describes it as an asset a field names `file_name`.
    pub fn publish_asset(&self, name: &str, bytes: &[u8], file_name: &str) -> Asset {
        let template = self.publish(name, bytes);
        Asset {
            url: template.url,
            hash: template.hash,
            size_bytes: template.size_bytes,
            file_name: file_name.to_owned(),
        }
    }
}

/// How long a test waits for background work (index writes, deletions of evicted folders) before
/// calling it lost: generous, so that only a real failure reaches it on a loaded machine.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// A cache in `dir`; downloads time out only when really stuck (tests that stall a response on
/// purpose set a shorter `download_timeout` themselves).
pub fn config(dir: &Path, budget_bytes: u64) -> CacheConfig {
    CacheConfig {
        dir: dir.to_path_buf(),
        budget_bytes,
        download_timeout: Duration::from_secs(30),
        max_attempts: 3,
        retry_base_delay: Duration::from_millis(10),
    }
}

/// Fake project bytes: distinct per seed, `size` long, not starting with the zip magic.
pub fn project_bytes(seed: u8, size: usize) -> Vec<u8> {
    let mut bytes = b"RIFX".to_vec();
    bytes.extend((0..size.saturating_sub(4)).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(contents).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

pub fn temp_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-"))
        .collect()
}

/// Asserts that no temporary name is left once background work (index writes, deletions of
/// evicted folders) has settled: polls until none is left, up to [`WAIT_LIMIT`].
pub async fn assert_no_temp_names(dir: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while tokio::time::Instant::now() < deadline {
        if temp_names(dir).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("temporary files left in {}: {:?}", dir.display(), temp_names(dir));
}

/// Waits until the background deletion of an evicted folder has happened, up to [`WAIT_LIMIT`].
pub async fn wait_until_gone(path: &Path) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while tokio::time::Instant::now() < deadline {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} still exists", path.display());
}

/// Waits until the server has received `count` requests, up to [`WAIT_LIMIT`].
pub async fn wait_for_requests(state: &ServerState, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while state.requests() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} requests arrived",
            state.requests()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
