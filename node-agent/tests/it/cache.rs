//! Integration tests of the template cache against a local HTTP file server (axum on
//! `127.0.0.1:0`) that counts requests, honours `Range`, and can fail, stall, truncate or
//! corrupt responses on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub(crate) mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;

use flatrender_node_agent::cache::{CacheError, TemplateCache};
use flatrender_proto::types::ContentHash;

use support::{TestServer, assert_no_temp_names, config, project_bytes, wait_for_requests, wait_until_gone, zip_of};

/// A plain project is downloaded, verified, installed under its hash and served as a hit next time.
#[tokio::test]
async fn plain_project_is_downloaded_verified_and_installed() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = project_bytes(1, 10_000);
    let spec = server.publish("one.aep", &bytes);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&spec).await.unwrap();
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), bytes);
    assert!(lease.project_path().starts_with(dir.path().join(spec.hash.to_hex())));
    assert_eq!(lease.hash(), spec.hash);
    drop(lease);
    let again = cache.acquire(&spec).await.unwrap();
    drop(again);

    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.downloads, stats.entries), (1, 1, 1, 1));
    assert_eq!(stats.bytes_used, 10_000);
    assert_eq!(server.state.requests(), 1);
    assert!(cache.verify(&spec.hash).await.unwrap());
    assert_no_temp_names(dir.path()).await;
    let inventory = cache.inventory();
    assert_eq!(inventory.len(), 1);
    assert_eq!(inventory[0].template_id, spec.template_id);
    assert_eq!(inventory[0].template_version, 3);
    assert_eq!(inventory[0].hits, 1);
}

/// The first inventory report after open is a full sync; later reports carry only changes.
#[tokio::test]
async fn inventory_changes_start_with_a_full_sync() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = server.publish("a.aep", &project_bytes(1, 100));
    let second = server.publish("b.aep", &project_bytes(2, 100));
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    cache.prefetch(&first).await.unwrap();

    let initial = cache.take_changes();
    assert!(initial.full_sync);
    assert_eq!(initial.upserted.len(), 1);
    cache.prefetch(&second).await.unwrap();
    cache.remove(&first.hash).await.unwrap();
    let delta = cache.take_changes();
    assert!(!delta.full_sync);
    assert_eq!(
        delta.upserted.iter().map(|info| info.hash).collect::<Vec<_>>(),
        vec![second.hash]
    );
    assert_eq!(delta.removed, vec![first.hash]);
}

/// A download corrupted once is refetched; corrupted every time it fails naming both hashes.
#[tokio::test]
async fn corrupted_download_is_refetched_then_rejected_if_persistent() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("c.aep", &project_bytes(3, 5_000));
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    server.state.corrupt_next.store(1, Ordering::SeqCst);
    cache.prefetch(&spec).await.unwrap();
    assert_eq!(server.state.requests(), 2);
    assert_eq!(cache.stats().hash_mismatches, 1);

    let other = server.publish("d.aep", &project_bytes(4, 5_000));
    server.state.corrupt_next.store(100, Ordering::SeqCst);
    let error = cache.acquire(&other).await.unwrap_err();
    match error {
        CacheError::HashMismatch { expected, actual } => {
            assert_eq!(expected, other.hash);
            assert_ne!(actual, other.hash);
        }
        other_error => panic!("expected a hash mismatch, got {other_error:?}"),
    }
    assert_eq!(server.state.requests(), 4, "one refetch, then give up");
    assert_eq!(cache.stats().hash_mismatches, 3);
    assert!(!cache.contains(&other.hash));
    assert_no_temp_names(dir.path()).await;
}

/// A body longer than the declared size is cut short and reported as a size mismatch.
#[tokio::test]
async fn wrong_size_is_a_size_mismatch() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = server.publish("e.aep", &project_bytes(5, 1_000));
    spec.size_bytes = 999;
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    let error = cache.acquire(&spec).await.unwrap_err();
    assert!(
        matches!(
            error,
            CacheError::SizeMismatch {
                expected: 999,
                actual: 1_000,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.state.requests(), 2);
}

/// A file corrupted on disk after install fails `verify`, and after `remove` it is refetched.
#[tokio::test]
async fn corruption_on_disk_is_detected_by_verify_and_refetched_after_remove() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = project_bytes(6, 4_000);
    let spec = server.publish("f.aep", &bytes);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&spec).await.unwrap();
    let project_path = lease.project_path().to_path_buf();
    std::fs::write(&project_path, b"RIFXdamaged").unwrap();
    assert!(!cache.verify(&spec.hash).await.unwrap());
    assert!(matches!(cache.remove(&spec.hash).await, Err(CacheError::Pinned { .. })));
    drop(lease);
    assert!(cache.remove(&spec.hash).await.unwrap());
    assert!(!cache.contains(&spec.hash));

    let refetched = cache.acquire(&spec).await.unwrap();
    assert_eq!(std::fs::read(refetched.project_path()).unwrap(), bytes);
    assert!(cache.verify(&spec.hash).await.unwrap());
    assert_eq!(server.state.requests(), 2);
    assert!(matches!(
        cache.verify(&ContentHash::from_bytes([0; 32])).await,
        Err(CacheError::NotCached { .. })
    ));
}

/// Eviction keeps the cache within budget, least recently used first, never touching a pinned entry.
#[tokio::test]
async fn eviction_respects_budget_and_pins() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let oldest = server.publish("g1.aep", &project_bytes(7, 100));
    let middle = server.publish("g2.aep", &project_bytes(8, 100));
    let newest = server.publish("g3.aep", &project_bytes(9, 100));
    let extra = server.publish("g4.aep", &project_bytes(10, 100));
    let cache = TemplateCache::open(config(dir.path(), 250)).await.unwrap();

    let pinned = cache.acquire(&oldest).await.unwrap();
    cache.prefetch(&middle).await.unwrap();
    cache.prefetch(&newest).await.unwrap();
    assert!(
        cache.contains(&oldest.hash),
        "the pinned, least recently used entry stays"
    );
    assert!(
        !cache.contains(&middle.hash),
        "the least recently used unpinned entry goes"
    );
    assert!(cache.contains(&newest.hash));
    assert!(cache.stats().bytes_used <= 250);
    wait_until_gone(&dir.path().join(middle.hash.to_hex())).await;

    // Everything pinned: the new entry is admitted over budget, trimmed once pins drop.
    let pinned_newest = cache.acquire(&newest).await.unwrap();
    let pinned_extra = cache.acquire(&extra).await.unwrap();
    assert_eq!(cache.stats().bytes_used, 300);
    assert!(std::fs::metadata(pinned.project_path()).is_ok());
    drop(pinned);
    assert!(cache.stats().bytes_used <= 250);
    assert!(!cache.contains(&oldest.hash));
    drop(pinned_newest);
    drop(pinned_extra);
    assert_eq!(cache.stats().entries, 2);
}

/// Ten concurrent acquires of one template share a single download.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acquires_share_one_download() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("h.aep", &project_bytes(11, 50_000));
    server.state.delay_ms.store(200, Ordering::SeqCst);
    server.state.delay_next.store(1, Ordering::SeqCst);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let cache = Arc::clone(&cache);
            let spec = spec.clone();
            tokio::spawn(async move { cache.acquire(&spec).await })
        })
        .collect();
    let mut leases = Vec::new();
    for task in tasks {
        leases.push(task.await.unwrap().unwrap());
    }
    assert_eq!(server.state.requests(), 1);
    assert_eq!(cache.stats().downloads, 1);
    assert!(
        leases
            .iter()
            .all(|lease| lease.project_path() == leases[0].project_path())
    );
    // Every lease holds a pin: removal is refused until the last one is dropped.
    leases.truncate(1);
    assert!(matches!(cache.remove(&spec.hash).await, Err(CacheError::Pinned { .. })));
    leases.clear();
    assert!(cache.remove(&spec.hash).await.unwrap());
}

/// A caller that gives up while waiting does not cancel the shared download for the others.
#[tokio::test]
async fn abandoned_waiter_does_not_cancel_the_download() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("i.aep", &project_bytes(12, 1_000));
    // The server holds its answer back long enough for the caller to give up while it waits.
    server.state.delay_ms.store(2_000, Ordering::SeqCst);
    server.state.delay_next.store(1, Ordering::SeqCst);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    // The impatient caller gives up once the download is under way (the request has arrived).
    let impatient = cache.acquire(&spec);
    tokio::select! {
        result = impatient => panic!("the held download finished before the caller gave up: {result:?}"),
        () = wait_for_requests(&server.state, 1) => {}
    }
    let lease = cache.acquire(&spec).await.unwrap();
    assert_eq!(server.state.requests(), 1);
    drop(lease);
    assert!(
        cache.remove(&spec.hash).await.unwrap(),
        "no pin leaked by the abandoned caller"
    );
}

/// An interrupted download resumes with `Range` from the bytes already received.
#[tokio::test]
async fn interrupted_download_resumes_with_range() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = project_bytes(13, 200_000);
    let spec = server.publish("j.aep", &bytes);
    server.state.truncate_at.store(70_000, Ordering::SeqCst);
    server.state.truncate_next.store(1, Ordering::SeqCst);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&spec).await.unwrap();
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), bytes);
    assert_eq!(server.state.requests(), 2);
    assert_eq!(server.state.num_range_requests.load(Ordering::SeqCst), 1);
    assert_eq!(server.state.last_range_start.load(Ordering::SeqCst), 70_000);
    assert_eq!(cache.stats().hash_mismatches, 0);
}

/// When the server answers a `Range` request with a full `200`, the download restarts cleanly.
#[tokio::test]
async fn resume_falls_back_to_full_download_on_200() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = project_bytes(14, 100_000);
    let spec = server.publish("k.aep", &bytes);
    server.state.truncate_at.store(30_000, Ordering::SeqCst);
    server.state.truncate_next.store(1, Ordering::SeqCst);
    server.state.ignore_range.store(true, Ordering::SeqCst);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&spec).await.unwrap();
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), bytes);
    assert_eq!(server.state.requests(), 2);
    assert_eq!(server.state.num_range_requests.load(Ordering::SeqCst), 0);
}

/// Reopening restores LRU order and hits, removes temp leftovers and bad entries, and re-applies the budget.
#[tokio::test]
async fn reopen_rebuilds_index_removes_leftovers_and_applies_budget() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = server.publish("l1.aep", &project_bytes(15, 100));
    let second = server.publish("l2.aep", &project_bytes(16, 100));
    let third = server.publish("l3.aep", &project_bytes(17, 100));
    {
        let cache = TemplateCache::open(config(dir.path(), 1_000)).await.unwrap();
        for spec in [&first, &second, &third] {
            cache.prefetch(spec).await.unwrap();
        }
        cache.prefetch(&first).await.unwrap(); // a hit: `first` becomes the most recent
        cache.flush().await;
    }
    std::fs::write(dir.path().join(".tmp-leftover"), b"partial").unwrap();
    std::fs::create_dir(dir.path().join(".tmp-staging")).unwrap();
    std::fs::write(dir.path().join(".tmp-staging").join("x"), b"x").unwrap();
    let third_project = dir.path().join(third.hash.to_hex()).join("project.aep");
    std::fs::write(&third_project, b"RIFX-corrupt").unwrap();

    let cache = TemplateCache::open(config(dir.path(), 150)).await.unwrap();
    assert_no_temp_names(dir.path()).await;
    let inventory = cache.inventory();
    assert_eq!(inventory.len(), 1, "corrupt entry dropped, then the budget leaves one");
    assert_eq!(inventory[0].hash, first.hash, "the most recently used entry survives");
    assert_eq!(inventory[0].hits, 1);
    assert_eq!(inventory[0].template_id, first.template_id);
    assert!(!dir.path().join(third.hash.to_hex()).exists());
    wait_until_gone(&dir.path().join(second.hash.to_hex())).await;
    let changes = cache.take_changes();
    assert!(changes.full_sync);
    assert_eq!(changes.upserted.len(), 1);
    assert_eq!(server.state.requests(), 3);
}

/// A missing or corrupt `index.json` is rebuilt from the entry folders.
#[tokio::test]
async fn corrupt_index_file_is_rebuilt_from_entries() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = server.publish("m1.aep", &project_bytes(18, 100));
    let second = server.publish("m2.aep", &project_bytes(19, 100));
    {
        let cache = TemplateCache::open(config(dir.path(), 1_000)).await.unwrap();
        cache.prefetch(&first).await.unwrap();
        cache.prefetch(&second).await.unwrap();
        cache.flush().await;
    }
    std::fs::write(dir.path().join("index.json"), b"{ not json").unwrap();
    let cache = TemplateCache::open(config(dir.path(), 1_000)).await.unwrap();
    assert_eq!(cache.stats().entries, 2);
    assert!(cache.verify(&first.hash).await.unwrap());
    drop(cache);

    std::fs::remove_file(dir.path().join("index.json")).unwrap();
    let cache = TemplateCache::open(config(dir.path(), 1_000)).await.unwrap();
    assert_eq!(cache.stats().entries, 2);
    let lease = cache.acquire(&second).await.unwrap();
    assert_eq!(cache.stats().hits, 1);
    assert!(lease.project_path().ends_with("project.aep"));
}

/// A zip bundle is extracted and its only `.aep`, at any depth, is the project.
#[tokio::test]
async fn zip_bundle_is_extracted_and_project_found() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let project = project_bytes(20, 3_000);
    let bundle = zip_of(&[
        ("Promo/Main Comp.aep", &project),
        ("Promo/Footage/clip.mov", b"movie bytes"),
        ("__MACOSX/Promo/._Main Comp.aep", b"resource fork"),
    ]);
    let spec = server.publish("bundle.zip", &bundle);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&spec).await.unwrap();
    assert!(lease.project_path().ends_with("Promo/Main Comp.aep"));
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), project);
    let footage = lease.project_path().parent().unwrap().join("Footage").join("clip.mov");
    assert_eq!(std::fs::read(footage).unwrap(), b"movie bytes");
    assert_eq!(cache.stats().bytes_used, project.len() as u64 + 11);
    assert!(cache.verify(&spec.hash).await.unwrap());
    assert_no_temp_names(dir.path()).await;
}

/// In a bundle with several `.aep` files the root `project.aep` is used; without it the bundle is refused.
#[tokio::test]
async fn zip_bundle_with_several_projects_needs_root_project_aep() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let with_root = server.publish(
        "two.zip",
        &zip_of(&[("project.aep", b"RIFXroot"), ("old/backup.aep", b"RIFXold")]),
    );
    let without_root = server.publish("ambiguous.zip", &zip_of(&[("a.aep", b"RIFXa"), ("b.aep", b"RIFXb")]));
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let lease = cache.acquire(&with_root).await.unwrap();
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), b"RIFXroot");
    let error = cache.acquire(&without_root).await.unwrap_err();
    assert!(
        matches!(error, CacheError::BundleWithoutProject { candidates: 2, .. }),
        "{error:?}"
    );
    assert!(!cache.contains(&without_root.hash));
    assert_no_temp_names(dir.path()).await;
}

/// A zip with a `../evil` entry is refused and nothing is written outside the cache.
#[tokio::test]
async fn zip_with_path_traversal_is_refused() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    let spec = server.publish(
        "evil.zip",
        &zip_of(&[
            ("project.aep", b"RIFXok"),
            ("../evil", b"owned"),
            ("footage/x.mov", b"x"),
        ]),
    );
    let cache = TemplateCache::open(config(&dir, 1 << 20)).await.unwrap();

    let error = cache.acquire(&spec).await.unwrap_err();
    assert!(
        matches!(&error, CacheError::UnsafeBundlePath { entry_name, .. } if entry_name == "../evil"),
        "{error:?}"
    );
    assert!(!root.path().join("evil").exists());
    assert!(!cache.contains(&spec.hash));
    assert!(!dir.join(spec.hash.to_hex()).exists());
    assert_no_temp_names(&dir).await;
}

/// Transient 503 answers are retried with backoff until the download succeeds.
#[tokio::test]
async fn transient_503_is_retried() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("n.aep", &project_bytes(21, 1_000));
    server.state.fail(2, StatusCode::SERVICE_UNAVAILABLE);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    cache.prefetch(&spec).await.unwrap();
    assert_eq!(server.state.requests(), 3);
}

/// Persistent 503 answers fail after `max_attempts`.
#[tokio::test]
async fn persistent_503_fails_after_max_attempts() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("o.aep", &project_bytes(22, 1_000));
    server.state.fail(100, StatusCode::SERVICE_UNAVAILABLE);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    let error = cache.acquire(&spec).await.unwrap_err();
    assert!(
        matches!(&error, CacheError::Download { message, .. } if message.contains("503")),
        "{error:?}"
    );
    assert_eq!(server.state.requests(), 3);
}

/// A 404 is final: no retry.
#[tokio::test]
async fn not_found_is_not_retried() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("p.aep", &project_bytes(23, 1_000));
    server.state.fail(1, StatusCode::NOT_FOUND);
    let cache = TemplateCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    let error = cache.acquire(&spec).await.unwrap_err();
    assert!(
        matches!(&error, CacheError::Download { message, .. } if message.contains("404")),
        "{error:?}"
    );
    assert_eq!(server.state.requests(), 1);
    assert_eq!(cache.stats().misses, 1);
}

/// A stalled response hits the per-attempt timeout and is retried.
#[tokio::test]
async fn stalled_response_times_out_and_is_retried() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = server.publish("q.aep", &project_bytes(24, 1_000));
    // The first answer is held back for ten minutes: only the timeout ends that attempt.
    server.state.delay_ms.store(600_000, Ordering::SeqCst);
    server.state.delay_next.store(1, Ordering::SeqCst);
    let mut cache_config = config(dir.path(), 1 << 20);
    cache_config.download_timeout = Duration::from_secs(3);
    let cache = TemplateCache::open(cache_config).await.unwrap();
    cache.prefetch(&spec).await.unwrap();
    assert_eq!(server.state.requests(), 2);
}
