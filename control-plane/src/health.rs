//! Health-sample ingestion: heartbeats hand samples to a bounded queue and never wait on the
//! database; a writer task inserts them in batches (one multi-row statement per flush) into the
//! partitioned `render.node_health_logs`. When the queue is full, new samples are dropped and
//! counted, rather than slowing heartbeats.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{config::HealthConfig, db, metrics::Metrics, views::HealthSample};

/// The heartbeat side of ingestion.
#[derive(Clone)]
pub struct HealthIngest {
    sender: mpsc::Sender<HealthSample>,
    metrics: Arc<Metrics>,
}

impl HealthIngest {
    /// Starts the writer; it drains what is queued and stops when `shutdown` fires.
    pub fn start(pool: PgPool, config: &HealthConfig, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        let (sender, receiver) = mpsc::channel(config.batch_size * 4);
        tokio::spawn(write_batches(
            pool,
            receiver,
            config.batch_size,
            Duration::from_millis(config.flush_interval_ms),
            metrics.clone(),
            shutdown,
        ));
        Self { sender, metrics }
    }

    /// Queues samples without waiting; returns how many were accepted.
    pub fn submit(&self, samples: Vec<HealthSample>) -> usize {
        let mut accepted = 0;
        for sample in samples {
            self.metrics.node_health(&sample);
            match self.sender.try_send(sample) {
                Ok(()) => accepted += 1,
                Err(_) => self.metrics.health_samples_dropped(1),
            }
        }
        accepted
    }
}

async fn write_batches(
    pool: PgPool,
    mut receiver: mpsc::Receiver<HealthSample>,
    batch_size: usize,
    flush_interval: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut ticker = tokio::time::interval(flush_interval);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = ticker.tick() => false,
            received = receiver.recv() => match received {
                Some(sample) => {
                    batch.push(sample);
                    if batch.len() < batch_size {
                        continue;
                    }
                    false
                }
                None => true,
            },
        };
        while batch.len() < batch_size * 4 {
            match receiver.try_recv() {
                Ok(sample) => batch.push(sample),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let written = match pool.acquire().await {
                Ok(mut connection) => db::health_logs::insert_batch(&mut connection, &batch).await,
                Err(error) => Err(error.into()),
            };
            match written {
                Ok(count) => metrics.health_samples_written(count),
                Err(error) => {
                    warn!(%error, samples = batch.len(), "health samples could not be written; dropped");
                    metrics.health_samples_dropped(batch.len() as u64);
                }
            }
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}
