//! Completions, batched: concurrent `CompleteWork` calls are recorded together in one statement
//! and their jobs advanced in a second (docs/dispatch.md, "Completions"). While one batch runs,
//! the next gathers (group commit), so a quiet farm waits for nothing and a busy one pays the
//! statements' fixed costs once per batch instead of once per chunk.

use std::sync::Arc;

use flatrender_proto::types::{FieldError, FrameJobId, JobId, JobStatus, NodeId};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    db::{
        self, DbError,
        completions::{BatchItem, Completion, CompletionVerdict, Judgement},
    },
    error::{ControlPlaneError, ControlPlaneResult},
    metrics::Metrics,
};

/// Requests waiting for a batch before callers wait for room.
const QUEUE: usize = 10_000;
/// Items recorded by one statement at most.
const MAX_BATCH_ITEMS: usize = 256;
/// Batches running at once (each on its own connection): PostgreSQL works on two while the
/// control plane prepares the next.
const WORKERS: usize = 2;

/// One request's verdicts, or the index of its first invalid item (nothing of it was recorded).
type Reply = oneshot::Sender<Result<Result<Vec<(FrameJobId, CompletionVerdict)>, usize>, DbError>>;

/// A `CompleteWork` call waiting for its batch.
struct Request {
    node_id: NodeId,
    completions: Vec<Completion>,
    reply: Reply,
}

/// Records completions in batches.
pub struct Completer {
    sender: mpsc::Sender<Request>,
}

impl Completer {
    /// Starts the batching workers on `pool`.
    pub fn start(pool: PgPool, metrics: Arc<Metrics>) -> Self {
        let (sender, receiver) = mpsc::channel::<Request>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..WORKERS {
            let receiver = Arc::clone(&receiver);
            let pool = pool.clone();
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&receiver).await {
                    run_batch(&pool, &metrics, batch).await;
                }
            });
        }
        Self { sender }
    }

    /// Records `completions` reported by `node_id`, each judged on its own fencing token, and
    /// advances their jobs before answering: once this returns, a job whose last chunk it was
    /// shows it.
    pub async fn complete(
        &self,
        node_id: NodeId,
        completions: Vec<Completion>,
    ) -> ControlPlaneResult<Vec<(FrameJobId, CompletionVerdict)>> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request {
                node_id,
                completions,
                reply,
            })
            .await
            .map_err(|_| ControlPlaneError::Unavailable("completions are shutting down".into()))?;
        let judged = answer
            .await
            .map_err(|_| ControlPlaneError::Unavailable("completions stopped".into()))??;
        judged.map_err(|index| {
            FieldError::new(
                format!("chunks[{index}].export"),
                "is required for an encode item and must be unset for a chunk of frames",
            )
            .into()
        })
    }
}

/// The next requests to record together: the first to arrive and whatever queued behind it.
async fn next_batch(receiver: &Mutex<mpsc::Receiver<Request>>) -> Option<Vec<Request>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut items = first.completions.len();
    let mut batch = vec![first];
    while items < MAX_BATCH_ITEMS {
        match receiver.try_recv() {
            Ok(next) => {
                items += next.completions.len();
                batch.push(next);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Records one batch, advances its jobs, answers every request.
async fn run_batch(pool: &PgPool, metrics: &Metrics, batch: Vec<Request>) {
    let result = record(pool, &batch).await;
    for (index, request) in batch.into_iter().enumerate() {
        let answer = match &result {
            Ok(per_request) => Ok(per_request[index].clone()),
            Err(error) => Err(DbError::Other(sqlx::Error::Protocol(error.to_string()))),
        };
        if let Ok(Ok(verdicts)) = &answer {
            for (frame_job_id, verdict) in verdicts {
                log_verdict(metrics, request.node_id, *frame_job_id, *verdict);
            }
        }
        // The caller may have given up waiting; the completions stand either way.
        let _ = request.reply.send(answer);
    }
}

/// Per request: its verdicts, or the index of its first invalid item.
type Judged = Vec<Result<Vec<(FrameJobId, CompletionVerdict)>, usize>>;

/// Records the batch in one statement, then advances the jobs it touched.
async fn record(pool: &PgPool, batch: &[Request]) -> Result<Judged, DbError> {
    let items: Vec<BatchItem<'_>> = batch
        .iter()
        .enumerate()
        .flat_map(|(request, r)| {
            r.completions.iter().map(move |completion| BatchItem {
                request: i32::try_from(request).unwrap_or(i32::MAX),
                node_id: r.node_id,
                completion,
            })
        })
        .collect();
    let mut connection = pool.acquire().await?;
    let outcome = db::completions::complete(&mut connection, &items).await?;
    if !outcome.jobs.is_empty()
        && let Err(error) = advance_jobs(&mut connection, &outcome.jobs).await
    {
        // Recorded is recorded: the nodes are told so, and the reaper advances the jobs.
        warn!(%error, jobs = ?outcome.jobs, "cannot advance jobs after a completion; the reaper will");
    }
    let mut judgements = outcome.judgements.into_iter();
    Ok(batch
        .iter()
        .map(|request| {
            let mine: Vec<(FrameJobId, Judgement)> = judgements.by_ref().take(request.completions.len()).collect();
            match mine.iter().position(|(_, judgement)| *judgement == Judgement::Invalid) {
                Some(index) => Err(index),
                None => Ok(mine
                    .into_iter()
                    .map(|(id, judgement)| match judgement {
                        Judgement::Verdict(verdict) => (id, verdict),
                        Judgement::Invalid => (id, CompletionVerdict::Stale),
                    })
                    .collect()),
            }
        })
        .collect())
}

fn log_verdict(metrics: &Metrics, node_id: NodeId, frame_job_id: FrameJobId, verdict: CompletionVerdict) {
    metrics.completion(verdict);
    match verdict {
        CompletionVerdict::Accepted => info!(%frame_job_id, %node_id, "chunk completed"),
        CompletionVerdict::Duplicate => {
            info!(%frame_job_id, %node_id, "chunk completion redelivered; already recorded")
        }
        CompletionVerdict::Stale => warn!(%frame_job_id, %node_id, "completion for a lost lease discarded"),
        CompletionVerdict::JobEnded => {
            warn!(%frame_job_id, %node_id, "completion discarded: the job was cancelled or failed meanwhile")
        }
    }
}

/// Advances jobs whose work items completed (`db::completions::advance`), logging what changed
/// and waking nodes for queued encodes.
pub(crate) async fn advance_jobs(connection: &mut PgConnection, jobs: &[JobId]) -> Result<(), DbError> {
    let advanced = db::completions::advance(connection, jobs).await?;
    if advanced.iter().any(|job| job.encode_queued) {
        db::frame_jobs::notify_work(connection).await?;
    }
    for job in advanced {
        let job_id = job.job_id;
        if job.encode_queued {
            info!(%job_id, "every frame rendered; encode queued");
        } else if job.status == JobStatus::Completed {
            info!(%job_id, "job completed");
        }
    }
    Ok(())
}
