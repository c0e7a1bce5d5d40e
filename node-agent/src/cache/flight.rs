//! Single flight: one download per content hash, however many renders ask for it at once.
//!
//! The first `acquire` of a missing hash registers a [`Flight`] in the shared state and spawns
//! the download as its own task (so a caller that gives up does not cancel it for the others).
//! Later callers join the flight. When the task ends it installs the entry and, under the same
//! lock, pins it once per waiting caller, removes the flight and publishes the result on a
//! `watch` channel; each [`Waiter`] then turns its pin into a [`CacheLease`]. A waiter dropped
//! early gives its place (or its pin) back.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::{Instrument, info_span};

use flatrender_proto::types::ContentHash;

use super::error::{CacheError, CacheResult};
use super::index::IndexEntry;
use super::lease::CacheLease;
use super::manifest::EntryManifest;
use super::store;
use super::{EntryRequest, Shared, State, download, spawn_blocking_in_span};

/// The published outcome; `Ok` means the entry is installed and pinned for every waiter.
type FlightResult = Result<(), CacheError>;

/// A download in progress.
pub(super) struct Flight {
    id: u64,
    /// Callers that will receive a pin when the download succeeds.
    num_waiters: usize,
    done: watch::Receiver<Option<FlightResult>>,
}

/// Joins the flight for `request.hash`, starting one if none is running. Called with the state
/// lock held, right after the index lookup missed.
pub(super) fn join_or_start(shared: &Arc<Shared>, state: &mut State, request: &EntryRequest) -> Waiter {
    let hash = request.hash;
    if let Some(flight) = state.flights.get_mut(&hash) {
        flight.num_waiters += 1;
        return Waiter {
            shared: Arc::clone(shared),
            hash,
            flight_id: flight.id,
            done: flight.done.clone(),
            settled: false,
        };
    }
    let flight_id = state.next_flight_id;
    state.next_flight_id += 1;
    let (sender, receiver) = watch::channel(None);
    state.flights.insert(
        hash,
        Flight {
            id: flight_id,
            num_waiters: 1,
            done: receiver.clone(),
        },
    );
    let completion = Completion {
        shared: Arc::clone(shared),
        request: request.clone(),
        flight_id,
        sender: Some(sender),
    };
    let span = info_span!("cache_download", cache = %shared.content, template_hash = %hash, url = %request.url);
    tokio::spawn(run_flight(completion).instrument(span));
    Waiter {
        shared: Arc::clone(shared),
        hash,
        flight_id,
        done: receiver,
        settled: false,
    }
}

async fn run_flight(mut completion: Completion) {
    let result = fetch_and_install(&completion.shared, &completion.request).await;
    let trash = completion.complete(result);
    completion.shared.publish_stats();
    completion.shared.delete_trash(trash).await;
    completion.shared.persist().await;
}

async fn fetch_and_install(shared: &Shared, entry: &EntryRequest) -> CacheResult<EntryManifest> {
    let config = &shared.config;
    let request = download::DownloadRequest {
        client: &shared.client,
        dir: &config.dir,
        url: &entry.url,
        hash: entry.hash,
        size_bytes: entry.size_bytes,
        attempt_timeout: config.download_timeout,
        max_attempts: config.max_attempts,
        retry_base_delay: config.retry_base_delay,
        num_integrity_failures: &shared.counters.hash_mismatches,
    };
    let downloaded_path = download::download(&request).await?;
    shared.counters.downloads.fetch_add(1, Ordering::Relaxed);
    let dir = config.dir.clone();
    let content = shared.content;
    let file_name = entry.file_name.clone();
    let hash = entry.hash;
    let template_id = entry.template_id;
    let template_version = entry.template_version;
    spawn_blocking_in_span(move || {
        store::install(&store::InstallRequest {
            dir: &dir,
            content,
            file_name: file_name.as_deref(),
            hash,
            template_id,
            template_version,
            downloaded_path: &downloaded_path,
            now: chrono::Utc::now(),
        })
    })
    .await
}

/// Publishes a flight's outcome exactly once, also if the task is dropped (runtime shutdown).
struct Completion {
    shared: Arc<Shared>,
    request: EntryRequest,
    flight_id: u64,
    sender: Option<watch::Sender<Option<FlightResult>>>,
}

impl Completion {
    /// Installs the entry (evicting to make room), pins it for every waiter, ends the flight and
    /// wakes the waiters, all under one lock. Returns evicted folders to delete.
    fn complete(&mut self, result: CacheResult<EntryManifest>) -> Vec<std::path::PathBuf> {
        let Some(sender) = self.sender.take() else {
            return Vec::new();
        };
        let hash = self.request.hash;
        let mut trash = Vec::new();
        let mut state = self.shared.lock_state();
        let num_waiters = match state.flights.get(&hash) {
            Some(flight) if flight.id == self.flight_id => flight.num_waiters,
            _ => 0,
        };
        state.flights.remove(&hash);
        let outcome = match result {
            Ok(manifest) => {
                let size_bytes = manifest.size_bytes();
                trash = self.shared.evict_locked(&mut state, size_bytes);
                let entry = IndexEntry::new(
                    size_bytes,
                    self.request.template_id,
                    self.request.template_version,
                    manifest.project_path(),
                    chrono::Utc::now(),
                );
                state.index.insert(hash, entry);
                for _ in 0..num_waiters {
                    state.index.pin(&hash);
                }
                state.generation += 1;
                tracing::info!(cache = %self.shared.content, template_hash = %hash, size_bytes, num_waiters, "cache entry installed");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(cache = %self.shared.content, template_hash = %hash, url = %self.request.url, %error, "download failed");
                Err(error)
            }
        };
        sender.send_replace(Some(outcome));
        trash
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.sender.is_some() {
            let _ = self.complete(Err(CacheError::Task {
                message: "download task ended without a result".to_owned(),
            }));
        }
    }
}

/// One caller waiting for a flight.
pub(super) struct Waiter {
    shared: Arc<Shared>,
    hash: ContentHash,
    flight_id: u64,
    done: watch::Receiver<Option<FlightResult>>,
    /// Set once the outcome is taken over by `wait` (the pin, if any, becomes the lease's).
    settled: bool,
}

impl Waiter {
    /// Waits for the flight and turns the pin taken on our behalf into a lease.
    pub(super) async fn wait(mut self) -> CacheResult<CacheLease> {
        let outcome = match self.done.wait_for(Option::is_some).await {
            Ok(published) => published.clone().unwrap_or_else(|| Err(task_vanished())),
            Err(_closed) => Err(task_vanished()),
        };
        self.settled = true;
        outcome?;
        let state = self.shared.lock_state();
        CacheLease::for_pinned(&self.shared, &state.index, self.hash)
    }
}

fn task_vanished() -> CacheError {
    CacheError::Task {
        message: "download task vanished".to_owned(),
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.shared.lock_state();
        if let Some(flight) = state.flights.get_mut(&self.hash) {
            if flight.id == self.flight_id {
                flight.num_waiters = flight.num_waiters.saturating_sub(1);
                return;
            }
        }
        // The flight ended (its result was published under the lock we now hold): give back
        // the pin taken for us.
        if matches!(*self.done.borrow(), Some(Ok(()))) {
            state.index.release(&self.hash);
        }
    }
}
