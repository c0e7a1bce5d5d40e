//! Health sampling with `sysinfo`: CPU, memory, swap, free disk on the cache and output volumes,
//! After Effects processes, load and uptime. A [`HealthSampler`] keeps its `System` between calls
//! because CPU usage is the difference between two refreshes; sampling walks every process and
//! every mount, so async callers go through [`sample_async`] or [`spawn_sampler`], which run it
//! on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sysinfo::{DiskRefreshKind, Disks, MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use flatrender_proto::pb;

/// Process names (compared case-insensitively) that belong to After Effects on Windows and macOS.
pub const DEFAULT_AE_PROCESS_NAMES: &[&str] = &[
    "AfterFX",
    "AfterFX.com",
    "AfterFX.exe",
    "aerender",
    "aerender.exe",
    "aerendercore",
];

/// A process whose lowercase name starts with this is an aerender (not the AE GUI).
const AERENDER_NAME_PREFIX: &str = "aerender";

/// One health reading of this machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    pub recorded_at: DateTime<Utc>,
    /// Global CPU use since the previous sample, 0..=100.
    pub cpu_percent: f32,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub cache_disk_free_bytes: u64,
    pub output_disk_free_bytes: u64,
    pub num_ae_processes: u32,
    /// Resident memory of all After Effects processes together.
    pub ae_memory_bytes: u64,
    /// 1-minute load average; 0 on Windows, which has none.
    pub load_average_1m: f64,
    pub uptime_seconds: u64,
    pub aerender_running: bool,
}

impl HealthSample {
    /// The wire form, with every value clamped into the range the proto allows.
    pub fn to_pb(&self) -> pb::HealthSample {
        let cpu_percent = if self.cpu_percent.is_finite() {
            self.cpu_percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        let load_average_1m = if self.load_average_1m.is_finite() {
            self.load_average_1m.max(0.0)
        } else {
            0.0
        };
        pb::HealthSample {
            recorded_at: Some(prost_types::Timestamp {
                seconds: self.recorded_at.timestamp(),
                nanos: i32::try_from(self.recorded_at.timestamp_subsec_nanos()).unwrap_or(0),
            }),
            cpu_percent,
            memory_used_bytes: clamp_to_i64(self.memory_used_bytes),
            memory_total_bytes: clamp_to_i64(self.memory_total_bytes),
            swap_used_bytes: clamp_to_i64(self.swap_used_bytes),
            swap_total_bytes: clamp_to_i64(self.swap_total_bytes),
            cache_disk_free_bytes: clamp_to_i64(self.cache_disk_free_bytes),
            output_disk_free_bytes: clamp_to_i64(self.output_disk_free_bytes),
            ae_process_count: i32::try_from(self.num_ae_processes).unwrap_or(i32::MAX),
            ae_memory_bytes: clamp_to_i64(self.ae_memory_bytes),
            #[allow(clippy::cast_possible_truncation, reason = "a load average fits an f32 comfortably")]
            load_average_1m: load_average_1m as f32,
            uptime_seconds: clamp_to_i64(self.uptime_seconds),
            aerender_running: self.aerender_running,
        }
    }
}

fn clamp_to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Takes [`HealthSample`]s. Blocking: call it from a blocking thread (see [`sample_async`]).
pub struct HealthSampler {
    system: System,
    cache_dir: PathBuf,
    output_dir: PathBuf,
    /// Lowercased names of After Effects processes.
    ae_process_names: Vec<String>,
    last_cpu_refresh: Instant,
}

impl HealthSampler {
    /// A sampler for the volumes holding `cache_dir` and `output_dir`, matching
    /// [`DEFAULT_AE_PROCESS_NAMES`]. Takes the first CPU reading, so the first sample measures
    /// CPU use since now.
    pub fn new(cache_dir: PathBuf, output_dir: PathBuf) -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self {
            system,
            cache_dir,
            output_dir,
            ae_process_names: DEFAULT_AE_PROCESS_NAMES
                .iter()
                .map(|name| name.to_lowercase())
                .collect(),
            last_cpu_refresh: Instant::now(),
        }
    }

    /// Replaces the process names counted as After Effects (compared case-insensitively).
    pub fn with_ae_process_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.ae_process_names = names.into_iter().map(|name| name.as_ref().to_lowercase()).collect();
        self
    }

    /// How long to wait before [`HealthSampler::sample`] yields a meaningful CPU figure
    /// (sysinfo needs two refreshes at least `MINIMUM_CPU_UPDATE_INTERVAL` apart).
    pub fn time_until_cpu_ready(&self) -> Duration {
        sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.saturating_sub(self.last_cpu_refresh.elapsed())
    }

    /// Reads everything now. CPU use is measured since the previous call (or `new`).
    pub fn sample(&mut self) -> HealthSample {
        self.system.refresh_cpu_usage();
        self.last_cpu_refresh = Instant::now();
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );

        let mut num_ae_processes = 0_u32;
        let mut ae_memory_bytes = 0_u64;
        let mut aerender_running = false;
        for process in self.system.processes().values() {
            // Threads are listed as processes on Linux; count each program once.
            if process.thread_kind().is_some() {
                continue;
            }
            let lowercase_name = process.name().to_string_lossy().to_lowercase();
            if !self.ae_process_names.contains(&lowercase_name) {
                continue;
            }
            num_ae_processes = num_ae_processes.saturating_add(1);
            ae_memory_bytes = ae_memory_bytes.saturating_add(process.memory());
            aerender_running |= lowercase_name.starts_with(AERENDER_NAME_PREFIX);
        }

        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
        let volumes: Vec<(PathBuf, u64)> = disks
            .list()
            .iter()
            .map(|disk| (disk.mount_point().to_path_buf(), disk.available_space()))
            .collect();

        HealthSample {
            recorded_at: Utc::now(),
            cpu_percent: self.system.global_cpu_usage().clamp(0.0, 100.0),
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            swap_used_bytes: self.system.used_swap(),
            swap_total_bytes: self.system.total_swap(),
            cache_disk_free_bytes: free_bytes_for(&volumes, &self.cache_dir),
            output_disk_free_bytes: free_bytes_for(&volumes, &self.output_dir),
            num_ae_processes,
            ae_memory_bytes,
            load_average_1m: load_average_1m(),
            uptime_seconds: System::uptime(),
            aerender_running,
        }
    }
}

#[cfg(windows)]
fn load_average_1m() -> f64 {
    0.0
}

#[cfg(not(windows))]
fn load_average_1m() -> f64 {
    System::load_average().one
}

/// Free bytes on the volume holding `dir`; falls back to `statvfs` on Unix when no listed mount
/// holds it (sysinfo leaves out some file systems, e.g. overlay roots in containers).
fn free_bytes_for(volumes: &[(PathBuf, u64)], dir: &Path) -> u64 {
    let absolute_dir = absolute_existing_path(dir);
    if let Some(free_bytes) = volume_free_bytes(volumes, &absolute_dir) {
        return free_bytes;
    }
    statvfs_free_bytes(&absolute_dir).unwrap_or(0)
}

#[cfg(unix)]
#[allow(
    clippy::useless_conversion,
    reason = "the statvfs field types differ between Linux and macOS"
)]
fn statvfs_free_bytes(path: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    Some(u64::from(stats.blocks_available()).saturating_mul(u64::from(stats.fragment_size())))
}

#[cfg(not(unix))]
fn statvfs_free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// The free bytes of the mount point that is the longest prefix of `path`.
fn volume_free_bytes(volumes: &[(PathBuf, u64)], path: &Path) -> Option<u64> {
    volumes
        .iter()
        .filter(|(mount_point, _)| path_is_under(path, mount_point))
        .max_by_key(|(mount_point, _)| mount_point.components().count())
        .map(|(_, free_bytes)| *free_bytes)
}

#[cfg(windows)]
fn path_is_under(path: &Path, mount_point: &Path) -> bool {
    // Drive letters and folder names are case-insensitive on Windows.
    let lowercase_path = PathBuf::from(path.to_string_lossy().to_lowercase());
    lowercase_path.starts_with(mount_point.to_string_lossy().to_lowercase())
}

#[cfg(not(windows))]
fn path_is_under(path: &Path, mount_point: &Path) -> bool {
    path.starts_with(mount_point)
}

/// `dir` made absolute, with symlinks resolved on its longest existing ancestor (the folder may
/// not exist yet). On Windows `canonicalize` adds a `\\?\` prefix that mount points lack, so
/// only make it absolute there.
fn absolute_existing_path(dir: &Path) -> PathBuf {
    let absolute_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if cfg!(windows) {
        return absolute_dir;
    }
    let mut existing_ancestor = absolute_dir.as_path();
    loop {
        if let Ok(canonical_ancestor) = existing_ancestor.canonicalize() {
            let remainder = absolute_dir.strip_prefix(existing_ancestor).unwrap_or(Path::new(""));
            return canonical_ancestor.join(remainder);
        }
        match existing_ancestor.parent() {
            Some(parent) => existing_ancestor = parent,
            None => return absolute_dir,
        }
    }
}

fn lock_sampler(sampler: &Mutex<HealthSampler>) -> MutexGuard<'_, HealthSampler> {
    // A panic mid-sample leaves nothing half-updated that matters; keep sampling.
    sampler.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes one sample on a blocking thread, first waiting (on the runtime's clock) until the CPU
/// reading can be meaningful. The std mutex is only held inside the blocking thread.
pub async fn sample_async(sampler: Arc<Mutex<HealthSampler>>) -> HealthSample {
    let wait = lock_sampler(&sampler).time_until_cpu_ready();
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let blocking_sampler = Arc::clone(&sampler);
    let span = tracing::Span::current();
    let joined = tokio::task::spawn_blocking(move || span.in_scope(|| lock_sampler(&blocking_sampler).sample())).await;
    match joined {
        Ok(sample) => sample,
        // A panic inside sysinfo surfaces here as it would have inline; a blocking task is only
        // cancelled when the runtime shuts down.
        Err(join_error) => match join_error.try_into_panic() {
            Ok(panic_payload) => std::panic::resume_unwind(panic_payload),
            Err(cancelled) => panic!("health sampling cancelled: {cancelled}"),
        },
    }
}

/// Samples every `interval` on a task until the receiver is dropped. When the consumer falls
/// behind, the channel (of `capacity`) fills and sampling waits; ticks missed meanwhile are skipped.
pub fn spawn_sampler(interval: Duration, capacity: usize, sampler: HealthSampler) -> mpsc::Receiver<HealthSample> {
    let (sample_sender, sample_receiver) = mpsc::channel(capacity.max(1));
    let shared_sampler = Arc::new(Mutex::new(sampler));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = sample_sender.closed() => return,
            }
            let sample = sample_async(Arc::clone(&shared_sampler)).await;
            if sample_sender.send(sample).await.is_err() {
                return;
            }
        }
    });
    sample_receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_sample() -> HealthSample {
        HealthSample {
            recorded_at: Utc::now(),
            cpu_percent: 0.0,
            memory_used_bytes: 0,
            memory_total_bytes: 0,
            swap_used_bytes: 0,
            swap_total_bytes: 0,
            cache_disk_free_bytes: 0,
            output_disk_free_bytes: 0,
            num_ae_processes: 0,
            ae_memory_bytes: 0,
            load_average_1m: 0.0,
            uptime_seconds: 0,
            aerender_running: false,
        }
    }

    /// A real sample of this machine has memory, a CPU figure in range and a free-disk figure.
    #[tokio::test]
    async fn sample_of_this_machine_is_plausible() {
        let temp_dir = std::env::temp_dir();
        let sampler = Arc::new(Mutex::new(HealthSampler::new(
            temp_dir.clone(),
            temp_dir.join("not-yet-created"),
        )));
        let sample = sample_async(Arc::clone(&sampler)).await;
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
        assert!((0.0..=100.0).contains(&sample.cpu_percent));
        assert!(sample.cache_disk_free_bytes > 0);
        assert!(sample.output_disk_free_bytes > 0);
        assert!(sample.uptime_seconds > 0);
        let second_sample = sample_async(sampler).await;
        assert!(second_sample.recorded_at >= sample.recorded_at);
    }

    /// A process list entry counts as After Effects only under one of the configured names.
    #[test]
    fn configured_process_names_are_lowercased() {
        let sampler = HealthSampler::new(PathBuf::from("/"), PathBuf::from("/"))
            .with_ae_process_names(["Fake-AERender", "AfterFX.exe"]);
        assert_eq!(
            sampler.ae_process_names,
            vec!["fake-aerender".to_owned(), "afterfx.exe".to_owned()]
        );
    }

    /// The volume is the mount point with the longest matching prefix, by whole components.
    #[cfg(unix)]
    #[test]
    fn longest_mount_point_prefix_wins() {
        let volumes = vec![
            (PathBuf::from("/"), 1),
            (PathBuf::from("/data"), 2),
            (PathBuf::from("/data/cache"), 3),
            (PathBuf::from("/dat"), 4),
        ];
        assert_eq!(volume_free_bytes(&volumes, Path::new("/data/cache/templates")), Some(3));
        assert_eq!(volume_free_bytes(&volumes, Path::new("/data/output")), Some(2));
        assert_eq!(volume_free_bytes(&volumes, Path::new("/database")), Some(1));
        assert_eq!(volume_free_bytes(&[], Path::new("/data")), None);
    }

    /// The wire form clamps CPU into 0..=100, keeps values non-negative and carries the time.
    #[test]
    fn wire_form_is_clamped() {
        let sample = HealthSample {
            cpu_percent: 140.0,
            memory_total_bytes: u64::MAX,
            load_average_1m: -1.0,
            num_ae_processes: 2,
            aerender_running: true,
            ..empty_sample()
        };
        let wire_sample = sample.to_pb();
        assert!((wire_sample.cpu_percent - 100.0).abs() < f32::EPSILON);
        assert_eq!(wire_sample.memory_total_bytes, i64::MAX);
        assert!(wire_sample.load_average_1m.abs() < f32::EPSILON);
        assert_eq!(wire_sample.ae_process_count, 2);
        assert!(wire_sample.aerender_running);
        assert_eq!(
            wire_sample.recorded_at.map(|timestamp| timestamp.seconds),
            Some(sample.recorded_at.timestamp())
        );
    }

    /// Samples keep coming from the sampler task until the receiver is dropped.
    #[tokio::test]
    async fn sampler_task_delivers_samples() {
        let temp_dir = std::env::temp_dir();
        let mut receiver = spawn_sampler(
            Duration::from_millis(250),
            2,
            HealthSampler::new(temp_dir.clone(), temp_dir),
        );
        let limit = Duration::from_secs(60);
        let first = tokio::time::timeout(limit, receiver.recv())
            .await
            .expect("a first sample in time")
            .expect("a first sample");
        let second = tokio::time::timeout(limit, receiver.recv())
            .await
            .expect("a second sample in time")
            .expect("a second sample");
        assert!(second.recorded_at > first.recorded_at);
    }
}
