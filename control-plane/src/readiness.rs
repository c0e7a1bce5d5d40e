//! Readiness: whether this control plane can do useful work, i.e. its database answers and it
//! is not shutting down. One probe loop feeds both `/readyz` and gRPC health
//! (`grpc.health.v1`), so load balancers and Kubernetes see the same answer from either, and
//! neither probe ever waits on a database that does not answer: they read the last verdict.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::{info, warn};

use crate::shutdown::sleep_or_shutdown;

/// The gRPC services whose health follows readiness ("" is the server as a whole).
pub const SERVICES: [&str; 4] = [
    "",
    "flatrender.render.v1.RenderService",
    "flatrender.render.v1.NodeService",
    "flatrender.render.v1.AdminService",
];
/// How often the database is checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A database slower than this to answer `SELECT 1` counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared verdict.
pub struct Readiness {
    ready: AtomicBool,
    reason: Mutex<String>,
    reporter: HealthReporter,
}

impl Readiness {
    /// Starts ready (the caller has just reached the database) and publishes it.
    pub async fn new(reporter: HealthReporter) -> Arc<Self> {
        let readiness = Arc::new(Self {
            ready: AtomicBool::new(true),
            reason: Mutex::new("ready".into()),
            reporter,
        });
        readiness.publish(ServingStatus::Serving).await;
        readiness
    }

    /// Whether ready, and why not.
    pub fn state(&self) -> (bool, String) {
        let reason = self.reason.lock().map(|reason| reason.clone()).unwrap_or_default();
        (self.ready.load(Ordering::Acquire), reason)
    }

    /// Checks the database every second until `shutdown`, then reports not serving for good.
    pub async fn run(self: Arc<Self>, pool: PgPool, shutdown: CancellationToken) {
        loop {
            let verdict = match tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("database unreachable: {error}")),
                Err(_) => Err(format!(
                    "database did not answer within {} ms",
                    PROBE_TIMEOUT.as_millis()
                )),
            };
            if shutdown.is_cancelled() {
                break;
            }
            self.set(verdict).await;
            if sleep_or_shutdown(PROBE_INTERVAL, &shutdown).await {
                break;
            }
        }
        self.set(Err("shutting down".into())).await;
    }

    async fn set(&self, verdict: Result<(), String>) {
        let ready = verdict.is_ok();
        let reason = verdict.err().unwrap_or_else(|| "ready".into());
        if let Ok(mut current) = self.reason.lock() {
            *current = reason.clone();
        }
        let was = self.ready.swap(ready, Ordering::AcqRel);
        if was == ready {
            return;
        }
        if ready {
            info!("ready: the database answers again");
            self.publish(ServingStatus::Serving).await;
        } else {
            warn!(%reason, "not ready");
            self.publish(ServingStatus::NotServing).await;
        }
    }

    async fn publish(&self, status: ServingStatus) {
        for name in SERVICES {
            self.reporter.set_service_status(name, status).await;
        }
    }
}
