//! The folder store against real folders: the file is published whole under
//! `<root>/<tenant>/<job>/<file>`, a second attempt adopts the first one's file instead of
//! replacing it (also when both race), a cancelled or abandoned store leaves nothing, a file that
//! is not what was encoded is refused, and discard removes the export.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use flatrender_node_agent::config::{ExportSettings, ExportStoreKind};
use flatrender_node_agent::export::{ExportError, ExportStore};

use super::{Video, new_key};

/// Longest wait for a condition on disk; reached only when something is broken.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

fn folder_store(root: &Path) -> ExportStore {
    ExportStore::from_config(&ExportSettings {
        store: ExportStoreKind::Folder,
        folder: root.to_path_buf(),
        ..ExportSettings::default()
    })
    .unwrap()
}

/// The names in `folder` (empty when it does not exist).
fn names_in(folder: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Polls `condition` until it holds, failing after [`WAIT_LIMIT`].
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {WAIT_LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The file lands whole at `<root>/<tenant>/<job>/<file>` (folders created), with the caller's
/// size and checksum, and no temporary file stays beside it.
#[tokio::test]
async fn folder_store_publishes_the_file_under_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 1, 3 << 20);
    let root = dir.path().join("exports");
    let store = folder_store(&root);
    let key = new_key("promo.mp4");

    let stored = store
        .store(
            &video.path,
            &key,
            &video.checksum,
            video.size_bytes(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    let expected_path = root
        .join(key.tenant_id().to_string())
        .join(key.job_id().to_string())
        .join("promo.mp4");
    assert_eq!(stored.location, expected_path.to_str().unwrap());
    assert!(Path::new(&stored.location).is_absolute());
    assert_eq!(
        (stored.size_bytes, stored.checksum, stored.adopted),
        (video.size_bytes(), video.checksum, false)
    );
    assert_eq!(std::fs::read(&expected_path).unwrap(), video.bytes);
    assert_eq!(names_in(expected_path.parent().unwrap()), vec!["promo.mp4".to_owned()]);
    assert!(video.path.exists(), "the encoded file is copied, not taken away");
}

/// A second store of the same key, with different bytes, keeps the first file and reports its
/// size and checksum as adopted: one file, no temporary files.
#[tokio::test]
async fn second_store_of_a_key_adopts_the_first_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = Video::write(dir.path(), "first.mp4", 1, 100_000);
    let second = Video::write(dir.path(), "second.mp4", 2, 70_000);
    let store = folder_store(&dir.path().join("exports"));
    let key = new_key("promo.mp4");
    let cancel = CancellationToken::new();

    let stored_first = store
        .store(&first.path, &key, &first.checksum, first.size_bytes(), &cancel)
        .await
        .unwrap();
    let stored_second = store
        .store(&second.path, &key, &second.checksum, second.size_bytes(), &cancel)
        .await
        .unwrap();

    assert!(!stored_first.adopted);
    assert!(stored_second.adopted);
    assert_eq!(stored_second.location, stored_first.location);
    assert_eq!(
        (stored_second.size_bytes, stored_second.checksum),
        (first.size_bytes(), first.checksum)
    );
    let final_path = PathBuf::from(&stored_first.location);
    assert_eq!(std::fs::read(&final_path).unwrap(), first.bytes);
    assert_eq!(names_in(final_path.parent().unwrap()), vec!["promo.mp4".to_owned()]);
}

/// Two attempts storing one key at the same time: exactly one publishes, the other adopts the
/// winner's file, and the folder holds that one file only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_stores_of_one_key_leave_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = folder_store(&dir.path().join("exports"));
    for round in 0..20_u8 {
        let one = Video::write(dir.path(), "one.mp4", round, 200_000);
        let other = Video::write(dir.path(), "other.mp4", round.wrapping_add(100), 150_000);
        let key = new_key("race.mp4");
        let cancel = CancellationToken::new();
        let (stored_one, stored_other) = tokio::join!(
            store.store(&one.path, &key, &one.checksum, one.size_bytes(), &cancel),
            store.store(&other.path, &key, &other.checksum, other.size_bytes(), &cancel),
        );
        let (stored_one, stored_other) = (stored_one.unwrap(), stored_other.unwrap());
        assert_ne!(
            stored_one.adopted, stored_other.adopted,
            "round {round}: exactly one adopts"
        );
        let winner = if stored_one.adopted { &other } else { &one };
        for stored in [&stored_one, &stored_other] {
            assert_eq!(
                (stored.size_bytes, stored.checksum),
                (winner.size_bytes(), winner.checksum)
            );
        }
        let final_path = PathBuf::from(&stored_one.location);
        assert_eq!(std::fs::read(&final_path).unwrap(), winner.bytes);
        assert_eq!(names_in(final_path.parent().unwrap()), vec!["race.mp4".to_owned()]);
    }
}

/// A store cancelled before it starts creates nothing and says it was cancelled.
#[tokio::test]
async fn cancelled_store_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 1, 10_000);
    let root = dir.path().join("exports");
    let store = folder_store(&root);
    let cancel = CancellationToken::new();
    cancel.cancel();

    let error = store
        .store(
            &video.path,
            &new_key("promo.mp4"),
            &video.checksum,
            video.size_bytes(),
            &cancel,
        )
        .await
        .unwrap_err();

    assert!(error.is_cancelled(), "{error}");
    assert!(!error.is_retryable());
    assert!(!root.exists(), "nothing created: {:?}", names_in(&root));
}

/// A source whose bytes arrive on demand (a FIFO): the store copies the first part, and the
/// returned writer sends the rest and closes when told to.
#[cfg(unix)]
fn fifo_source(dir: &Path, first_part: Vec<u8>) -> (PathBuf, std::sync::mpsc::Sender<Vec<u8>>) {
    let path = dir.join("encoded.fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (send_rest, rest) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer_path = path.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        // Opening a FIFO for writing waits for the store to open it for reading.
        let mut writer = std::fs::File::options().write(true).open(&writer_path).unwrap();
        writer.write_all(&first_part).unwrap();
        if let Ok(bytes) = rest.recv() {
            let _ = writer.write_all(&bytes);
        }
    });
    (path, send_rest)
}

/// Cancelled mid-copy (the source stalls after its first part): the store stops, removes its
/// temporary file and publishes nothing.
#[cfg(unix)]
#[tokio::test]
async fn cancel_mid_copy_removes_the_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..200_000_u32).map(|index| index as u8).collect();
    let first_part = bytes[..40_000].to_vec();
    let (source, send_rest) = fifo_source(dir.path(), first_part.clone());
    let store = Arc::new(folder_store(&dir.path().join("exports")));
    let key = new_key("promo.mp4");
    let job_folder = dir
        .path()
        .join("exports")
        .join(key.tenant_id().to_string())
        .join(key.job_id().to_string());
    let cancel = CancellationToken::new();
    let checksum = super::checksum(&bytes);
    let task = tokio::spawn({
        let (store, key, cancel) = (Arc::clone(&store), key.clone(), cancel.clone());
        async move { store.store(&source, &key, &checksum, 200_000, &cancel).await }
    });

    let temp_holds_first_part = || {
        names_in(&job_folder).iter().any(|name| {
            name.ends_with(".partial")
                && std::fs::metadata(job_folder.join(name)).is_ok_and(|meta| meta.len() == first_part.len() as u64)
        })
    };
    wait_until("the first part copied to a temporary file", temp_holds_first_part).await;
    cancel.cancel();
    send_rest.send(bytes[40_000..].to_vec()).unwrap();
    let error = tokio::time::timeout(WAIT_LIMIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();

    assert!(error.is_cancelled(), "{error}");
    assert_eq!(
        names_in(&job_folder),
        Vec::<String>::new(),
        "no temporary file, no export"
    );
}

/// A store whose caller goes away mid-copy (the future dropped, the token never cancelled)
/// publishes nothing either: the copy stops and the temporary file goes.
#[cfg(unix)]
#[tokio::test]
async fn dropping_a_store_midway_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..100_000_u32).map(|index| (index % 251) as u8).collect();
    let (source, send_rest) = fifo_source(dir.path(), bytes[..30_000].to_vec());
    let store = Arc::new(folder_store(&dir.path().join("exports")));
    let key = new_key("promo.mp4");
    let job_folder = dir
        .path()
        .join("exports")
        .join(key.tenant_id().to_string())
        .join(key.job_id().to_string());
    let checksum = super::checksum(&bytes);
    let task = tokio::spawn({
        let (store, key) = (Arc::clone(&store), key.clone());
        async move {
            store
                .store(&source, &key, &checksum, 100_000, &CancellationToken::new())
                .await
        }
    });

    wait_until("a temporary file", || {
        names_in(&job_folder).iter().any(|name| name.ends_with(".partial"))
    })
    .await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    send_rest.send(bytes[30_000..].to_vec()).unwrap();
    wait_until("the temporary file removed", || names_in(&job_folder).is_empty()).await;
    assert!(!job_folder.join("promo.mp4").exists());
}

/// A file that is not what the caller measured (another size or checksum) is refused for good,
/// and nothing is left in the store.
#[tokio::test]
async fn store_refuses_a_file_that_is_not_what_was_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 1, 10_000);
    let other = Video::write(dir.path(), "other.mp4", 2, 10_000);
    let store = folder_store(&dir.path().join("exports"));
    let key = new_key("promo.mp4");
    let cancel = CancellationToken::new();

    let wrong_checksum = store
        .store(&video.path, &key, &other.checksum, video.size_bytes(), &cancel)
        .await
        .unwrap_err();
    let wrong_size = store
        .store(&video.path, &key, &video.checksum, video.size_bytes() + 1, &cancel)
        .await
        .unwrap_err();

    for error in [&wrong_checksum, &wrong_size] {
        assert!(matches!(error, ExportError::SourceMismatch { .. }), "{error}");
        assert!(!error.is_retryable());
        assert!(error.to_string().contains(video.path.to_str().unwrap()), "{error}");
    }
    let job_folder = dir
        .path()
        .join("exports")
        .join(key.tenant_id().to_string())
        .join(key.job_id().to_string());
    assert_eq!(names_in(&job_folder), Vec::<String>::new());
}

/// Discard removes the stored file, a second discard of it is fine, and a location outside the
/// store is refused without touching it.
#[tokio::test]
async fn discard_removes_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 1, 10_000);
    let store = folder_store(&dir.path().join("exports"));
    let stored = store
        .store(
            &video.path,
            &new_key("promo.mp4"),
            &video.checksum,
            video.size_bytes(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    store.discard(&stored.location).await.unwrap();
    assert!(!Path::new(&stored.location).exists());
    store.discard(&stored.location).await.unwrap();

    let outside = video.path.to_str().unwrap();
    let error = store.discard(outside).await.unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.to_string().contains(outside), "{error}");
    assert!(video.path.exists());
}
