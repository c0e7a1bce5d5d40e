//! Domain values that cross the repository boundary: what ops see (a node, a chunk, a crash, a
//! cache entry, a partition) and what agents report (a health sample, cache entries). The
//! repositories in `db` take and return these (row types stay private to `db`); the API builds
//! them from validated requests and turns them into protobuf in `api::convert`.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{
    ContentHash, CrashClass, FrameJobId, FrameJobState, FrameRange, JobId, NodeId, NodeState, OperatingSystem,
    RecoveryAction, TemplateId, TenantId,
};

/// The encoder programs a node reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderVersions {
    /// `ffmpeg -version`'s version.
    pub ffmpeg: String,
    /// `ffprobe -version`'s version.
    pub ffprobe: String,
}

/// What kinds of work a node takes besides rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCapabilities {
    /// ffmpeg and ffprobe; `None`: no encode work.
    pub encoder: Option<EncoderVersions>,
    /// No After Effects: encode work only.
    pub encode_only: bool,
}

impl NodeCapabilities {
    /// Whether the node is given frame chunks.
    pub fn renders(&self) -> bool {
        !self.encode_only
    }

    /// Whether the node is given encode items.
    pub fn encodes(&self) -> bool {
        self.encoder.is_some()
    }
}

/// A node with its liveness and running lease count.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    /// Id.
    pub id: NodeId,
    /// Unique name.
    pub name: String,
    /// Host name.
    pub hostname: String,
    /// Operating system.
    pub os: OperatingSystem,
    /// OS version.
    pub os_version: Option<String>,
    /// After Effects version.
    pub ae_version: Option<String>,
    /// Agent version.
    pub agent_version: String,
    /// CPU cores.
    pub cpu_cores: i32,
    /// Memory installed.
    pub memory_bytes: i64,
    /// Tags.
    pub tags: Vec<String>,
    /// Concurrent chunks.
    pub max_leases: i32,
    /// State.
    pub state: NodeState,
    /// Why it is in that state.
    pub state_reason: Option<String>,
    /// When the state last changed.
    pub state_changed_at: DateTime<Utc>,
    /// Drain deadline, when draining with one.
    pub drain_deadline: Option<DateTime<Utc>>,
    /// First registration.
    pub registered_at: DateTime<Utc>,
    /// Last heartbeat written.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Chunks it holds now.
    pub running_leases: i64,
    /// What it takes besides rendering.
    pub capabilities: NodeCapabilities,
}

/// A chunk as ops see it.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameJobView {
    /// Id.
    pub id: FrameJobId,
    /// Its job.
    pub job_id: JobId,
    /// The job's tenant.
    pub tenant_id: TenantId,
    /// Position in the job.
    pub chunk_index: i32,
    /// Frames.
    pub frame_range: FrameRange,
    /// State.
    pub state: FrameJobState,
    /// Leases so far.
    pub attempt: i32,
    /// Lease holder.
    pub lease_node_id: Option<NodeId>,
    /// Lease holder's name.
    pub lease_node_name: Option<String>,
    /// When the lease lapses.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Frames done in the current lease.
    pub frames_done: i32,
    /// Last failure's class.
    pub last_error_class: Option<String>,
    /// Last failure's message.
    pub last_error: Option<String>,
    /// The job's encode item, not a chunk of frames.
    pub encode: bool,
}

/// A recorded crash.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashView {
    /// Id (pagination cursor with `occurred_at`).
    pub id: uuid::Uuid,
    /// The node.
    pub node_id: NodeId,
    /// Its name.
    pub node_name: String,
    /// The job, if any.
    pub job_id: Option<JobId>,
    /// The chunk, if any.
    pub frame_job_id: Option<FrameJobId>,
    /// Class.
    pub crash_class: CrashClass,
    /// The log parser's class.
    pub error_class: Option<String>,
    /// aerender's exit code.
    pub exit_code: Option<i32>,
    /// Last lines of the log.
    pub log_tail: Option<String>,
    /// What was done about it.
    pub recovery_action: RecoveryAction,
    /// When.
    pub occurred_at: DateTime<Utc>,
    /// When the node rendered again (or was re-admitted).
    pub recovered_at: Option<DateTime<Utc>>,
}

/// A template in a node's cache.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntryView {
    /// Content hash.
    pub hash: ContentHash,
    /// Template, when known.
    pub template_id: Option<TemplateId>,
    /// Template version, when known.
    pub template_version: Option<i32>,
    /// Size on disk.
    pub size_bytes: i64,
    /// Lookups that found it.
    pub hits: i64,
    /// Last use.
    pub last_used_at: DateTime<Utc>,
}

/// A partition of a partitioned table.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionView {
    /// Parent table.
    pub parent: String,
    /// Partition table.
    pub name: String,
    /// Range start (none for the default partition).
    pub range_start: Option<DateTime<Utc>>,
    /// Range end.
    pub range_end: Option<DateTime<Utc>>,
    /// Planner estimate of rows.
    pub approximate_rows: i64,
}

/// One health sample.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSample {
    /// Reporting node.
    pub node_id: NodeId,
    /// When the agent took it.
    pub recorded_at: DateTime<Utc>,
    /// CPU use, 0..=100.
    pub cpu_percent: f32,
    /// Memory in use.
    pub memory_used_bytes: i64,
    /// Memory installed.
    pub memory_total_bytes: i64,
    /// Swap in use.
    pub swap_used_bytes: i64,
    /// Swap size.
    pub swap_total_bytes: i64,
    /// Free space on the template-cache volume.
    pub cache_disk_free_bytes: i64,
    /// Free space on the output volume.
    pub output_disk_free_bytes: i64,
    /// After Effects processes running.
    pub ae_process_count: i32,
    /// Their memory.
    pub ae_memory_bytes: i64,
    /// 1-minute load average.
    pub load_average_1m: f32,
    /// Machine uptime.
    pub uptime_seconds: i64,
    /// Whether aerender was running.
    pub aerender_running: bool,
}
