//! The asset cache against the local file server of the cache tests: the template cache's
//! machinery with single-file entries kept under their extension, its own budget, and nothing
//! reported in the template inventory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use flatrender_node_agent::cache::{AssetCache, CacheError};

use crate::cache::support::{TestServer, assert_no_temp_names, config, wait_until_gone, zip_of};

/// An asset many renders use at once, and later again, is downloaded exactly once and kept as
/// one file with its extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_asset_used_by_many_renders_is_downloaded_once() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = b"\x89PNG\r\n\x1a\n logo pixels".repeat(500);
    let asset = server.publish_asset("logo-upload", &bytes, "Logo.png");
    // Held back so that all ten callers are waiting on the one download.
    server.state.delay_ms.store(200, Ordering::SeqCst);
    server.state.delay_next.store(1, Ordering::SeqCst);
    let cache = AssetCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let cache = Arc::clone(&cache);
            let asset = asset.clone();
            tokio::spawn(async move { cache.acquire(&asset).await })
        })
        .collect();
    let mut leases = Vec::new();
    for task in tasks {
        leases.push(task.await.unwrap().unwrap());
    }
    // Other jobs naming the same file later: served from the cache, even under another name.
    let renamed = flatrender_proto::content::Asset {
        file_name: "brand.PNG".into(),
        ..asset.clone()
    };
    for _ in 0..5 {
        drop(cache.acquire(&renamed).await.unwrap());
    }
    assert_eq!(server.state.requests(), 1, "one download for every render");
    let stats = cache.stats();
    assert_eq!((stats.downloads, stats.entries, stats.hits), (1, 1, 5));
    let path = leases[0].project_path().to_path_buf();
    assert_eq!(path, dir.path().join(asset.hash.to_hex()).join("asset.png"));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(leases.iter().all(|lease| lease.project_path() == path));
    assert!(leases[0].bundle_root().is_none());
    assert!(matches!(
        cache.remove(&asset.hash).await,
        Err(CacheError::Pinned { .. })
    ));
    leases.clear();
    assert!(cache.verify(&asset.hash).await.unwrap());
    assert!(cache.remove(&asset.hash).await.unwrap());
}

/// A download whose bytes do not hash to the asset's BLAKE3 is refused, and nothing of it is kept.
#[tokio::test]
async fn a_corrupt_asset_download_is_refused_and_not_kept() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let asset = server.publish_asset("voice", &[7u8; 4_000], "voice.wav");
    server.state.corrupt_next.store(100, Ordering::SeqCst);
    let cache = AssetCache::open(config(dir.path(), 1 << 20)).await.unwrap();

    let error = cache.acquire(&asset).await.unwrap_err();
    assert!(
        matches!(error, CacheError::HashMismatch { expected, .. } if expected == asset.hash),
        "{error:?}"
    );
    assert!(!cache.contains(&asset.hash));
    assert!(!dir.path().join(asset.hash.to_hex()).exists());
    assert_no_temp_names(dir.path()).await;
    assert_eq!(cache.stats().entries, 0);
}

/// A zip a user uploads is an asset like any other file: kept as it came, not extracted.
#[tokio::test]
async fn a_zip_asset_is_kept_as_one_file() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = zip_of(&[("inside.txt", b"not for AE")]);
    let asset = server.publish_asset("archive", &bytes, "pack.zip");
    let cache = AssetCache::open(config(dir.path(), 1 << 20)).await.unwrap();
    let lease = cache.acquire(&asset).await.unwrap();
    assert!(lease.project_path().ends_with("asset.zip"));
    assert_eq!(std::fs::read(lease.project_path()).unwrap(), bytes);
    assert!(!dir.path().join(asset.hash.to_hex()).join("bundle").exists());
}

/// Assets are evicted least recently used first within their own budget, never while pinned,
/// and the budget is applied again when the cache reopens.
#[tokio::test]
async fn assets_are_evicted_within_their_budget_but_not_while_pinned() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = server.publish_asset("a1", &[1u8; 100], "a.png");
    let second = server.publish_asset("a2", &[2u8; 100], "b.png");
    let third = server.publish_asset("a3", &[3u8; 100], "c.png");
    let cache = AssetCache::open(config(dir.path(), 250)).await.unwrap();

    let pinned = cache.acquire(&first).await.unwrap();
    drop(cache.acquire(&second).await.unwrap());
    drop(cache.acquire(&third).await.unwrap());
    assert!(cache.contains(&first.hash), "pinned while a render uses it");
    assert!(
        !cache.contains(&second.hash),
        "the least recently used unpinned asset goes"
    );
    assert!(cache.contains(&third.hash));
    wait_until_gone(&dir.path().join(second.hash.to_hex())).await;
    drop(pinned);
    cache.flush().await;
    drop(cache);

    let reopened = AssetCache::open(config(dir.path(), 150)).await.unwrap();
    assert_eq!(reopened.stats().entries, 1);
    assert!(
        reopened.contains(&first.hash),
        "released last, so the most recently used"
    );
    assert!(!reopened.contains(&third.hash));
    assert_no_temp_names(dir.path()).await;
}
