//! aerender's raw output per run, kept under `<state_dir>/render-logs/<job>/` for people debugging
//! a template, and pruned by age so an agent left alone for months does not fill its disk.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the agent looks for old render logs.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

fn root(state_dir: &Path) -> PathBuf {
    state_dir.join("render-logs")
}

/// Keeps one run's raw output as `<job>/<chunk>-<first frame>.log` (named from the process tag);
/// a failure to write it is logged, never fatal.
pub async fn keep(state_dir: &Path, job_id: &str, tag: &str, bytes: &[u8]) {
    let dir = root(state_dir).join(job_id);
    let name: String = tag
        .rsplit('/')
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("-");
    let path = dir.join(format!("{name}.log"));
    let written = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&path, bytes).await
    };
    if let Err(error) = written.await {
        warn!(path = %path.display(), %error, "could not keep the aerender log");
    }
}

/// Removes the job folders not written to for `max_age`; returns how many. Errors on single
/// folders are logged and skipped (a log being written right now is young anyway).
pub async fn prune(state_dir: &Path, max_age: Duration) -> usize {
    let Ok(mut entries) = tokio::fs::read_dir(root(state_dir)).await else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let modified = match entry.metadata().await.and_then(|metadata| metadata.modified()) {
            Ok(modified) => modified,
            Err(_) => continue,
        };
        if now.duration_since(modified).unwrap_or_default() < max_age {
            continue;
        }
        match tokio::fs::remove_dir_all(entry.path()).await {
            Ok(()) => removed += 1,
            Err(error) => warn!(path = %entry.path().display(), %error, "could not remove an old render log"),
        }
    }
    removed
}

/// Prunes now and then every hour until `stop`; `retention_days` 0 keeps everything.
pub async fn prune_loop(state_dir: PathBuf, retention_days: u64, stop: CancellationToken) {
    if retention_days == 0 {
        return;
    }
    let max_age = Duration::from_secs(retention_days * 24 * 60 * 60);
    loop {
        let removed = prune(&state_dir, max_age).await;
        if removed > 0 {
            info!(removed, retention_days, "removed old aerender logs");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs are kept per job under names from the process tag; job folders older than the
    /// retention are removed, younger ones kept.
    #[tokio::test]
    async fn logs_are_kept_per_job_and_pruned_by_age() {
        let state = tempfile::tempdir().unwrap();
        keep(state.path(), "job-old", "flatrender/n@1/chunk-a/0", b"old run").await;
        keep(state.path(), "job-new", "flatrender/n@1/chunk-b/5", b"new run").await;
        let kept = root(state.path()).join("job-new").join("chunk-b-5.log");
        assert_eq!(std::fs::read(&kept).unwrap(), b"new run");
        let old_dir = root(state.path()).join("job-old");
        let month_ago = SystemTime::now() - Duration::from_secs(30 * 24 * 60 * 60);
        std::fs::File::open(&old_dir).unwrap().set_modified(month_ago).unwrap();
        assert_eq!(prune(state.path(), Duration::from_secs(14 * 24 * 60 * 60)).await, 1);
        assert!(!old_dir.exists());
        assert!(kept.exists());
        assert_eq!(
            prune(tempfile::tempdir().unwrap().path(), Duration::ZERO).await,
            0,
            "no folder yet"
        );
    }
}
