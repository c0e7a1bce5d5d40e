//! The agent's own Prometheus metrics (prefix `flatrender_agent`) and the small HTTP server that
//! serves them on `/metrics`, with a liveness probe on `/healthz`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::warn;

use flatrender_proto::types::CrashClass;

use crate::cache::CacheStats;

/// The content type of the OpenMetrics text that `prometheus-client` encodes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Buckets for the time from aerender's start to its first frame: After Effects takes seconds to
/// a few minutes to launch and open a project.
const TIME_TO_FIRST_FRAME_BUCKETS: [f64; 11] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0];

/// Buckets for one frame's render time.
const FRAME_SECONDS_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: String,
}

/// Every metric the agent exports. Updates are lock-free; share it in an `Arc`.
pub struct AgentMetrics {
    registry: Registry,
    frames_rendered: Counter,
    time_to_first_frame: Histogram,
    frame_seconds: Histogram,
    cache_bytes: Gauge,
    cache_hit_ratio: Gauge<f64, AtomicU64>,
    crashes: Family<ClassLabel, Counter>,
    aerender_running: Gauge,
    chunks_completed: Counter,
    chunks_failed: Counter,
    encodes_completed: Counter,
    encodes_failed: Counter,
    outbox_pending: Gauge,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flatrender_agent");
        // Counters get their `_total` suffix from the encoder.
        let frames_rendered = Counter::default();
        registry.register(
            "frames_rendered",
            "Frames rendered and verified",
            frames_rendered.clone(),
        );
        let time_to_first_frame = Histogram::new(TIME_TO_FIRST_FRAME_BUCKETS);
        registry.register(
            "time_to_first_frame_seconds",
            "Time from starting aerender to its first rendered frame",
            time_to_first_frame.clone(),
        );
        let frame_seconds = Histogram::new(FRAME_SECONDS_BUCKETS);
        registry.register("frame_seconds", "Render time of one frame", frame_seconds.clone());
        let cache_bytes = Gauge::default();
        registry.register("cache_bytes", "Bytes held by the template cache", cache_bytes.clone());
        let cache_hit_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "cache_hit_ratio",
            "Share of template requests served from the cache",
            cache_hit_ratio.clone(),
        );
        let crashes = Family::<ClassLabel, Counter>::default();
        registry.register("crashes", "Render failures by crash class", crashes.clone());
        let aerender_running = Gauge::default();
        registry.register(
            "aerender_running",
            "aerender processes running (0 or 1 unless node.max_leases > 1)",
            aerender_running.clone(),
        );
        let chunks_completed = Counter::default();
        registry.register(
            "chunks_completed",
            "Chunks rendered to completion",
            chunks_completed.clone(),
        );
        let chunks_failed = Counter::default();
        registry.register("chunks_failed", "Chunks that failed", chunks_failed.clone());
        let encodes_completed = Counter::default();
        registry.register(
            "encodes_completed",
            "Encodes whose video was verified and stored",
            encodes_completed.clone(),
        );
        let encodes_failed = Counter::default();
        registry.register("encodes_failed", "Encodes that failed", encodes_failed.clone());
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Items waiting in the durable outbox",
            outbox_pending.clone(),
        );
        Self {
            registry,
            frames_rendered,
            time_to_first_frame,
            frame_seconds,
            cache_bytes,
            cache_hit_ratio,
            crashes,
            aerender_running,
            chunks_completed,
            chunks_failed,
            encodes_completed,
            encodes_failed,
            outbox_pending,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            warn!(%error, "metrics encoding failed");
        }
        text
    }

    /// `num_frames` more frames were rendered and verified.
    pub fn frames_rendered(&self, num_frames: u64) {
        self.frames_rendered.inc_by(num_frames);
    }

    /// One frame took `seconds` to render.
    pub fn observe_frame_seconds(&self, seconds: f64) {
        self.frame_seconds.observe(seconds);
    }

    /// aerender produced its first frame `seconds` after it started.
    pub fn observe_time_to_first_frame(&self, seconds: f64) {
        self.time_to_first_frame.observe(seconds);
    }

    /// The template cache changed or was asked for a template: mirrors its size and hit ratio.
    pub fn observe_cache(&self, stats: &CacheStats) {
        self.cache_bytes
            .set(i64::try_from(stats.bytes_used).unwrap_or(i64::MAX));
        self.cache_hit_ratio.set(stats.hit_ratio());
    }

    /// A render failed with `class`.
    pub fn crash(&self, class: CrashClass) {
        self.crashes
            .get_or_create(&ClassLabel {
                class: class.as_str().to_owned(),
            })
            .inc();
    }

    /// An aerender process started; it counts as running until the guard is dropped (also on an
    /// early return), so concurrent chunks each count once.
    pub fn aerender_started(&self) -> AerenderRunning {
        self.aerender_running.inc();
        AerenderRunning {
            gauge: self.aerender_running.clone(),
        }
    }

    /// A chunk was rendered and its completion queued.
    pub fn chunk_completed(&self) {
        self.chunks_completed.inc();
    }

    /// A chunk failed and its failure was queued.
    pub fn chunk_failed(&self) {
        self.chunks_failed.inc();
    }

    /// An encode's video was stored and its completion queued.
    pub fn encode_completed(&self) {
        self.encodes_completed.inc();
    }

    /// An encode failed and its failure was queued.
    pub fn encode_failed(&self) {
        self.encodes_failed.inc();
    }

    /// Items now waiting in the outbox.
    pub fn set_outbox_pending(&self, num_items: usize) {
        self.outbox_pending.set(i64::try_from(num_items).unwrap_or(i64::MAX));
    }
}

/// Counts one aerender process in `flatrender_agent_aerender_running` while it lives.
#[must_use = "the process counts as running only while the guard lives"]
pub struct AerenderRunning {
    gauge: Gauge,
}

impl Drop for AerenderRunning {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The `/metrics` and `/healthz` routes.
pub fn router(metrics: Arc<AgentMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(metrics)
}

async fn metrics_handler(State(metrics): State<Arc<AgentMetrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], metrics.render())
}

/// Serves [`router`] on `listener` until `shutdown` completes, then finishes open requests. An
/// accept-loop failure is logged: metrics are not worth stopping the agent for.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<AgentMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(error) = axum::serve(listener, router(metrics))
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(%error, "metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The running gauge counts processes: two concurrent ones read 2, and each guard dropped
    /// (however its render ended) takes one away.
    #[test]
    fn aerender_running_counts_concurrent_processes() {
        let metrics = AgentMetrics::new();
        let first = metrics.aerender_started();
        let second = metrics.aerender_started();
        assert!(metrics.render().contains("flatrender_agent_aerender_running 2\n"));
        drop(first);
        assert!(metrics.render().contains("flatrender_agent_aerender_running 1\n"));
        drop(second);
        assert!(metrics.render().contains("flatrender_agent_aerender_running 0\n"));
    }

    /// The server answers /metrics and /healthz over HTTP and stops on shutdown.
    #[tokio::test]
    async fn server_answers_metrics_and_healthz() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = Arc::new(AgentMetrics::new());
        metrics.chunk_completed();
        let (stop_sender, stop_receiver) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics, async {
            let _ = stop_receiver.await;
        }));
        let metrics_response = http_get(address, "/metrics").await;
        assert!(metrics_response.starts_with("HTTP/1.1 200"), "{metrics_response}");
        assert!(metrics_response.contains("application/openmetrics-text"));
        assert!(metrics_response.contains("flatrender_agent_chunks_completed_total 1"));
        let health_response = http_get(address, "/healthz").await;
        assert!(health_response.starts_with("HTTP/1.1 200"), "{health_response}");
        stop_sender.send(()).unwrap();
        server.await.unwrap();
    }

    async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }
}
