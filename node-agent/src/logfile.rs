//! The agent's own log file with size-based rotation, for where nothing collects stderr: a
//! Windows service has no console, and an agent left alone for months must not fill the disk.
//! (systemd's journal and launchd's log files take stderr on Linux and macOS.)

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Default size at which the log rotates.
pub const DEFAULT_MAX_BYTES: u64 = 32 << 20;
/// Default number of rotated files kept (`agent.log.1` … `agent.log.N`).
pub const DEFAULT_KEEP: usize = 4;

/// An append-only log file that moves itself to `<name>.1` (shifting older ones up to
/// `<name>.<keep>`, dropping the oldest) when the next write would pass `max_bytes`.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: Option<File>,
    written: u64,
}

impl RotatingLog {
    /// Opens (appending to) `path`, creating its folder.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = append(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1),
            keep,
            state: Mutex::new(State {
                file: Some(file),
                written,
            }),
        })
    }

    fn rotated(&self, index: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{index}"));
        PathBuf::from(name)
    }

    /// Closes the current file first: Windows cannot rename a file someone holds open.
    fn rotate(&self, state: &mut State) -> io::Result<()> {
        state.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            // The oldest is overwritten by the rename below (or removed first where rename
            // refuses to replace).
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for index in (1..self.keep).rev() {
                let from = self.rotated(index);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(index + 1))?;
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        state.file = Some(append(&self.path)?);
        state.written = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for &RotatingLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A poisoned lock only means a panic mid-write; the file is still fine to append to.
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.written > 0 && state.written + buf.len() as u64 > self.max_bytes {
            // If rotation fails (disk full, permissions) keep logging to whatever is open.
            if self.rotate(&mut state).is_err() && state.file.is_none() {
                state.file = Some(append(&self.path)?);
            }
        }
        let file = match state.file.as_mut() {
            Some(file) => file,
            None => return Err(io::Error::other("log file is closed")),
        };
        let written = file.write(buf)?;
        state.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Writes append to an existing log; past the size it rotates, keeping `keep` old files
    /// and dropping the oldest.
    #[test]
    fn rotates_by_size_and_keeps_a_bounded_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("agent.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "old run\n").unwrap();
        let log = RotatingLog::open(&path, 20, 2).unwrap();
        let mut writer = &log;
        writer.write_all(b"line one\n").unwrap();
        assert_eq!(read(&path), "old run\nline one\n", "appends to what is there");
        for line in ["line two\n", "line three\n", "line four\n", "line five\n"] {
            writer.write_all(line.as_bytes()).unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(read(&path), "line four\nline five\n");
        assert_eq!(read(&log.rotated(1)), "line two\nline three\n");
        assert_eq!(read(&log.rotated(2)), "old run\nline one\n");
        assert!(!log.rotated(3).exists(), "at most `keep` old files");
        let total: u64 = [path, log.rotated(1), log.rotated(2)]
            .iter()
            .map(|file| std::fs::metadata(file).unwrap().len())
            .sum();
        assert!(total <= 3 * 22, "bounded: {total}");
    }

    /// One write larger than the limit still lands whole (a long log line is not split).
    #[test]
    fn a_long_line_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let log = RotatingLog::open(&path, 8, 1).unwrap();
        let mut writer = &log;
        writer.write_all(b"a much longer line than eight bytes\n").unwrap();
        assert_eq!(read(&path), "a much longer line than eight bytes\n");
        writer.write_all(b"next\n").unwrap();
        assert_eq!(read(&path), "next\n");
        assert_eq!(read(&log.rotated(1)), "a much longer line than eight bytes\n");
    }
}
