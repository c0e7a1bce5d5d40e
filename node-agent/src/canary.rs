//! The canary render that re-admits a quarantined node. `aerender -version` passes on a machine
//! where every render crashes, so only a real render proves the node can render again: one frame
//! of a known-good project, run exactly like a chunk (same command builder, supervisor, watchdogs
//! and judge), into a scratch folder under the state folder that is removed afterwards, and the
//! frame checked (present, plausible, a PNG header with the expected size where it is known).
//!
//! What is rendered: the project ops configured (`recovery.canary_project`), else the last chunk
//! this node rendered successfully (remembered in `<state_dir>/canary.json`) while its template is
//! still in the cache. With neither there is nothing to prove anything with: the probe fails and
//! says so, and the node waits for ops (`frctl nodes enable`).
//!
//! Failed probes back off exponentially (base `recovery.probe_interval_seconds`, doubling, with
//! jitter, capped at `recovery.probe_interval_max_seconds`): see [`probe_delay`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use flatrender_proto::{pb, types::ContentHash};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    cache::TemplateCache,
    config::AgentConfig,
    recovery::{self, RunFacts, Verdict},
    runner::{self, ChunkContext},
    supervisor::{self, AerenderInstall, FramePattern},
};

/// Where canary renders write their frame (one scratch folder per probe below it).
const SCRATCH_DIR: &str = "canary";

/// What a probe renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Canary {
    /// `recovery.canary_project` and friends.
    Configured {
        /// The project file.
        project: PathBuf,
        /// Its composition.
        composition: String,
        /// The frame.
        frame: i32,
    },
    /// The last chunk rendered here, its template still cached.
    LastSuccess(LastSuccess),
}

impl Canary {
    /// One line for logs and the quarantine reason.
    pub fn describe(&self) -> String {
        match self {
            Self::Configured {
                project,
                composition,
                frame,
            } => format!("frame {frame} of {composition:?} in {}", project.display()),
            Self::LastSuccess(last) => format!(
                "frame {} of {:?} from cached template {} (the last successful render)",
                last.frame, last.composition, last.template_hash
            ),
        }
    }
}

/// The canary a probe would render now, or why there is none.
pub fn plan(config: &AgentConfig, cache: &TemplateCache) -> Result<Canary, String> {
    let recovery = &config.recovery;
    if !recovery.canary_project.as_os_str().is_empty() {
        return Ok(Canary::Configured {
            project: recovery.canary_project.clone(),
            composition: recovery.canary_composition.clone(),
            frame: recovery.canary_frame,
        });
    }
    let Some(last) = read_last_success(&config.node.state_dir) else {
        return Err(
            "no canary to render: recovery.canary_project is not set and this node has no \
                    successful render on record"
                .into(),
        );
    };
    match ContentHash::parse_hex(&last.template_hash, "template_hash") {
        Ok(hash) if cache.contains(&hash) => Ok(Canary::LastSuccess(last)),
        Ok(_) => Err(format!(
            "no canary to render: recovery.canary_project is not set and the template of the last \
             successful render ({}) is no longer cached",
            last.template_hash
        )),
        Err(error) => Err(format!("no canary to render: {LAST_SUCCESS_FILE}: {error}")),
    }
}

/// Renders the canary and checks its frame; `Ok` says what passed, `Err` why it failed.
pub async fn probe(context: &ChunkContext, stop: &CancellationToken) -> Result<String, String> {
    let install = context
        .install
        .as_ref()
        .ok_or_else(|| "no aerender on this node (encode-only): nothing to render a canary with".to_owned())?;
    let canary = plan(&context.config, &context.cache)?;
    // The remembered template stays pinned while the canary renders from it.
    let (project, _cache_lease) = match &canary {
        Canary::Configured { project, .. } => (project.clone(), None),
        Canary::LastSuccess(last) => {
            let lease = ContentHash::parse_hex(&last.template_hash, "template_hash")
                .ok()
                .and_then(|hash| context.cache.lease_installed(&hash))
                .ok_or_else(|| format!("template {} left the cache", last.template_hash))?;
            (lease.project_path().to_path_buf(), Some(lease))
        }
    };
    let scratch = context
        .config
        .node
        .state_dir
        .join(SCRATCH_DIR)
        .join(uuid::Uuid::new_v4().simple().to_string());
    tokio::fs::create_dir_all(&scratch)
        .await
        .map_err(|error| format!("cannot create {}: {error}", scratch.display()))?;
    let verdict = render_and_verify(context, install, &canary, &project, &scratch, stop).await;
    if let Err(error) = tokio::fs::remove_dir_all(&scratch).await {
        warn!(dir = %scratch.display(), %error, "could not remove the canary's scratch folder");
    }
    verdict.map(|()| canary.describe())
}

async fn render_and_verify(
    context: &ChunkContext,
    install: &AerenderInstall,
    canary: &Canary,
    project: &Path,
    scratch: &Path,
    stop: &CancellationToken,
) -> Result<(), String> {
    let config = &context.config;
    let (composition, frame, output, frame_size) = match canary {
        Canary::Configured { composition, frame, .. } => (composition, *frame, pb::OutputSettings::default(), None),
        Canary::LastSuccess(last) => (
            &last.composition,
            last.frame,
            pb::OutputSettings {
                output_module_template: last.output_module_template.clone(),
                render_settings_template: last.render_settings_template.clone(),
                ..pb::OutputSettings::default()
            },
            last.frame_size,
        ),
    };
    let pattern_path = supervisor::output_pattern(scratch, "canary_", &config.aerender.frame_extension);
    let (_, pattern) = FramePattern::from_output_path(&pattern_path).map_err(|error| error.to_string())?;
    let command = runner::chunk_command(config, project, composition, frame, frame, &pattern_path, &output);
    let args = command.build_args(install.version.as_deref());
    let tag = format!("{}canary", context.process_tag_prefix);
    let process = supervisor::spawn_aerender(&install.path, &args, &tag)
        .map_err(|error| format!("aerender did not start: {error}"))?;
    let record = runner::supervise(process, scratch, &pattern, &config.watchdog, stop, &mut |_| {}, None).await;
    crate::render_logs::keep(&config.node.state_dir, SCRATCH_DIR, &tag, &record.raw_log).await;
    let frames_on_disk = runner::frames_on_disk(scratch, &pattern, frame, frame).len();
    let facts = RunFacts {
        exit_code: record.exit_code,
        signal: record.signal,
        watchdog: record.watchdog,
        log: &record.log,
        expected_frames: 1,
        frames_on_disk,
    };
    if let Verdict::Failed(failure) = recovery::judge(&facts) {
        return Err(format!("{}: {}", failure.crash_class, failure.message));
    }
    verify_frame(&scratch.join(pattern.file_name(frame)), frame_size)
}

/// A PNG frame must have a PNG header, and the expected size when one is known (other formats
/// were checked for presence and size by the judge).
fn verify_frame(path: &Path, expected_size: Option<(u32, u32)>) -> Result<(), String> {
    let is_png = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("png"));
    if !is_png {
        return Ok(());
    }
    let size = png_size(path).ok_or_else(|| format!("{} has no valid PNG header", path.display()))?;
    match expected_size {
        Some(expected) if expected != size => Err(format!(
            "{} is {}x{}, expected {}x{}",
            path.display(),
            size.0,
            size.1,
            expected.0,
            expected.1
        )),
        _ => Ok(()),
    }
}

/// How long to wait before the next probe after `num_failed` failed ones: `base` doubled per
/// failure, at most `cap`, then "equal jitter" (a uniform point in its upper half, `jitter` in
/// 0..=1, e.g. [`crate::retry::random_unit`]) so a farm of nodes quarantined together does not probe in lockstep.
pub fn probe_delay(base: Duration, cap: Duration, num_failed: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(2_u32.saturating_pow(num_failed.min(31)));
    let ceiling = doubled.min(cap);
    ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

pub(crate) mod record;

use record::{LAST_SUCCESS_FILE, read_last_success};
pub(crate) use record::{LastSuccess, png_size};

#[cfg(test)]
mod tests;
