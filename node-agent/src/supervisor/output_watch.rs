//! Watching the output folder, independent of aerender's stdout (which can lie or stay silent,
//! docs/aerender.md §3.3): [`OutputWatcher`] reports frame files of a `[#…#]` sequence as they
//! appear or grow, and [`scan_frames`] says at the end which expected frames exist with a
//! plausible size.
//!
//! Plausible means non-empty, and for PNG a signature at the start and the `IEND` chunk at the end
//! (a crash leaves a truncated file, §2.2). Other formats are only checked for size > 0.
//!
//! The watcher uses `notify`'s recommended backend (inotify, FSEvents, ReadDirectoryChangesW) and
//! falls back to polling every [`POLL_INTERVAL`] when that cannot be set up. Its callback runs on
//! notify's own thread, where the small file checks (a `stat`, 20 bytes of PNG) happen.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{Config, EventKind, PollWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::command::FramePattern;
use super::{SupervisorError, SupervisorResult};

/// Poll interval of the fallback watcher.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
/// The last 12 bytes of every complete PNG: length 0, `IEND`, its CRC.
const PNG_IEND_CHUNK: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82];

/// A frame file seen in the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameFile {
    /// Its frame number.
    pub frame: i32,
    /// Its path.
    pub path: PathBuf,
    /// Its size when seen.
    pub size_bytes: u64,
    /// Whether it looked complete (see the module doc) when seen.
    pub complete: bool,
}

/// Reports frame files of one sequence as they appear or change. Dropping it stops watching.
pub struct OutputWatcher {
    frames: mpsc::UnboundedReceiver<FrameFile>,
    _watcher: Box<dyn Watcher + Send>,
}

impl std::fmt::Debug for OutputWatcher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("OutputWatcher").finish_non_exhaustive()
    }
}

/// Per-frame (size, complete) last reported, shared by the initial scan and the event callback.
/// A `std` mutex: short critical sections on notify's thread and the blocking pool.
type LastSeen = Arc<Mutex<HashMap<i32, (u64, bool)>>>;

impl OutputWatcher {
    /// Watches `dir` (created if missing) for files of `pattern`. Files already there are
    /// reported first; then every change of a frame file's size or completeness.
    pub async fn start(dir: &Path, pattern: &FramePattern) -> SupervisorResult<Self> {
        let dir = dir.to_path_buf();
        let pattern = pattern.clone();
        let setup = tokio::task::spawn_blocking(move || Self::start_blocking(&dir, pattern));
        setup.await.map_err(|join_error| SupervisorError::Io {
            context: "starting the output watcher".to_owned(),
            source: std::io::Error::other(join_error),
        })?
    }

    fn start_blocking(dir: &Path, pattern: FramePattern) -> SupervisorResult<Self> {
        std::fs::create_dir_all(dir).map_err(|source| SupervisorError::Io {
            context: format!("creating output folder {}", dir.display()),
            source,
        })?;
        let (sender, frames) = mpsc::unbounded_channel();
        let last_seen: LastSeen = Arc::default();
        let pattern = Arc::new(pattern);
        let handler = {
            let (sender, last_seen, pattern) = (sender.clone(), last_seen.clone(), pattern.clone());
            move |event: notify::Result<notify::Event>| match event {
                Ok(event) if !matches!(event.kind, EventKind::Remove(_) | EventKind::Access(_)) => {
                    for path in &event.paths {
                        report_if_changed(path, &pattern, &last_seen, &sender);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "output folder watcher error"),
            }
        };
        let watcher = watch_with_fallback(dir, handler)?;
        // Files written before the watch was set up.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                report_if_changed(&entry.path(), &pattern, &last_seen, &sender);
            }
        }
        Ok(Self {
            frames,
            _watcher: watcher,
        })
    }

    /// The next frame file event; `None` only if the watcher died.
    pub async fn next_frame(&mut self) -> Option<FrameFile> {
        self.frames.recv().await
    }
}

fn watch_with_fallback<H>(dir: &Path, handler: H) -> SupervisorResult<Box<dyn Watcher + Send>>
where
    H: Fn(notify::Result<notify::Event>) + Clone + Send + 'static,
{
    let watch_error = |source| SupervisorError::Watch {
        dir: dir.to_path_buf(),
        source,
    };
    let native = notify::recommended_watcher(handler.clone())
        .and_then(|mut watcher| watcher.watch(dir, RecursiveMode::NonRecursive).map(|()| watcher));
    match native {
        Ok(watcher) => Ok(Box::new(watcher)),
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "native file watcher unavailable, polling the output folder");
            let mut watcher =
                PollWatcher::new(handler, Config::default().with_poll_interval(POLL_INTERVAL)).map_err(watch_error)?;
            watcher.watch(dir, RecursiveMode::NonRecursive).map_err(watch_error)?;
            Ok(Box::new(watcher))
        }
    }
}

fn report_if_changed(
    path: &Path,
    pattern: &FramePattern,
    last_seen: &LastSeen,
    sender: &mpsc::UnboundedSender<FrameFile>,
) {
    let Some(frame) = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| pattern.frame_of(name))
    else {
        return;
    };
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    if !metadata.is_file() {
        return;
    }
    let size_bytes = metadata.len();
    let complete = frame_file_size_if_plausible(path).is_some();
    let mut last_seen = last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if last_seen.insert(frame, (size_bytes, complete)) == Some((size_bytes, complete)) {
        return;
    }
    drop(last_seen);
    let _ = sender.send(FrameFile {
        frame,
        path: path.to_path_buf(),
        size_bytes,
        complete,
    });
}

/// Frame → size of every frame in `range` whose file in `dir` exists and looks complete.
/// Blocking: call it from `spawn_blocking`.
pub fn scan_frames(dir: &Path, pattern: &FramePattern, range: RangeInclusive<i32>) -> BTreeMap<i32, u64> {
    range
        .filter_map(|frame| {
            let path = dir.join(pattern.file_name(frame));
            frame_file_size_if_plausible(&path).map(|size_bytes| (frame, size_bytes))
        })
        .collect()
}

/// The file's size if it exists, is non-empty and, for `.png`, has a PNG signature and ends with
/// the `IEND` chunk. Blocking.
pub fn frame_file_size_if_plausible(path: &Path) -> Option<u64> {
    let size_bytes = std::fs::metadata(path)
        .ok()
        .filter(|metadata| metadata.is_file())?
        .len();
    if size_bytes == 0 {
        return None;
    }
    let is_png = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
    if is_png && !png_is_complete(path, size_bytes) {
        return None;
    }
    Some(size_bytes)
}

fn png_is_complete(path: &Path, size_bytes: u64) -> bool {
    let minimum = (PNG_SIGNATURE.len() + PNG_IEND_CHUNK.len()) as u64;
    if size_bytes < minimum {
        return false;
    }
    let check = || -> std::io::Result<bool> {
        let mut file = File::open(path)?;
        let mut signature = [0_u8; 8];
        file.read_exact(&mut signature)?;
        let mut tail = [0_u8; 12];
        file.seek(SeekFrom::End(-(tail.len() as i64)))?;
        file.read_exact(&mut tail)?;
        Ok(signature == PNG_SIGNATURE && tail == PNG_IEND_CHUNK)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes() -> Vec<u8> {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend_from_slice(b"\0\0\0\x0dIHDR-fake-header-bytes");
        bytes.extend_from_slice(&PNG_IEND_CHUNK);
        bytes
    }

    /// Complete PNGs count, truncated or empty ones do not; other formats need only bytes.
    #[test]
    fn plausibility_checks_png_end_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = FramePattern::parse("f_[#####].png").unwrap();
        let complete = png_bytes();
        std::fs::write(dir.path().join(pattern.file_name(1)), &complete).unwrap();
        std::fs::write(dir.path().join(pattern.file_name(2)), &complete[..complete.len() / 2]).unwrap();
        std::fs::write(dir.path().join(pattern.file_name(3)), b"").unwrap();
        std::fs::write(
            dir.path().join(pattern.file_name(5)),
            b"not a png at all, but long enough",
        )
        .unwrap();
        let found = scan_frames(dir.path(), &pattern, 0..=5);
        assert_eq!(found, BTreeMap::from([(1, complete.len() as u64)]));

        let exr = FramePattern::parse("f_[#####].exr").unwrap();
        std::fs::write(dir.path().join(exr.file_name(4)), b"x").unwrap();
        std::fs::write(dir.path().join(exr.file_name(6)), b"").unwrap();
        assert_eq!(scan_frames(dir.path(), &exr, 0..=9), BTreeMap::from([(4, 1)]));
    }

    /// Frames already on disk are reported at start, new ones as they appear, others ignored.
    #[tokio::test]
    async fn watcher_reports_existing_and_new_frames() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = FramePattern::parse("f_[###].png").unwrap();
        std::fs::write(dir.path().join("f_001.png"), png_bytes()).unwrap();
        let mut watcher = OutputWatcher::start(dir.path(), &pattern).await.unwrap();
        let first = watcher.next_frame().await.unwrap();
        assert_eq!((first.frame, first.complete), (1, true));
        std::fs::write(dir.path().join("unrelated.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("f_002.png"), png_bytes()).unwrap();
        let second = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let frame_file = watcher.next_frame().await.unwrap();
                if frame_file.complete {
                    break frame_file;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(second.frame, 2);
        assert_eq!(second.path, dir.path().join("f_002.png"));
    }
}
