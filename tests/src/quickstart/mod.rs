//! The quickstart (`scripts/demo.sh`): a whole render farm on one machine with no
//! configuration. It starts `control-plane serve` on its embedded PostgreSQL under a data
//! folder, two `node-agent run` processes driving the aerender test double (After Effects does
//! not run on Linux), submits a sample job through `RenderService`, shows its progress, prints
//! where the frames are and who rendered them, and stops everything it started, also on Ctrl-C.
//! It doubles as the smoke test of a release (`scripts/test.sh` runs it).
//!
//! Layout: `farm` starts and stops the processes, `processes` owns them (process groups, the
//! marker that finds leftovers), `job` submits and watches the sample job, `progress` draws it,
//! `summary` reads the results.

/// `println!` that ignores a closed stdout (`quickstart | head`): the farm must be stopped anyway.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that ignores a closed stderr, for the same reason.
macro_rules! tell {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod farm;
pub mod job;
pub mod processes;
pub mod progress;
pub mod summary;

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use flatrender_proto::pb;
use nix::fcntl::{Flock, FlockArg};
use tokio::time::Instant;

use self::{
    farm::{DemoFarm, FarmSettings},
    progress::{ProgressDisplay, status_name},
    summary::NodeShare,
};
use crate::TemplateServer;

/// Longest wait for the control plane's first start (initdb, migrations) on a slow machine.
const CONTROL_PLANE_START_LIMIT: Duration = Duration::from_secs(180);
/// Longest wait for the agents to register.
const AGENTS_START_LIMIT: Duration = Duration::from_secs(60);

/// Command-line options of `quickstart`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "quickstart",
    about = "Runs a whole FlatRender farm on this machine, renders a sample job, and stops it all"
)]
pub struct Options {
    /// Frames in the sample job (25 fps).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub frames: u32,
    /// Folder for the embedded PostgreSQL, tokens, agent state, logs and renders (reused by the
    /// next run).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Leave the farm running after the job until Ctrl-C, to try `frctl` against it.
    #[arg(long)]
    pub keep: bool,
    /// Give up after this many seconds (building not included).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Number of node agents.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub agents: u32,
    /// Milliseconds the aerender double spends on each frame.
    #[arg(long, default_value_t = 40)]
    pub frame_ms: u64,
}

/// How a run ended when nothing failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sample job completed and everything was stopped.
    Completed,
    /// Ctrl-C or SIGTERM arrived; everything was stopped.
    Interrupted,
}

/// Runs the quickstart; the farm is stopped and checked for leftovers however it ends.
pub async fn run(options: Options) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    std::fs::create_dir_all(options.data_dir.join("logs"))
        .with_context(|| format!("create {}", options.data_dir.display()))?;
    let data_dir = options.data_dir.canonicalize().context("resolve the data folder")?;
    let _lock = lock_data_dir(&data_dir)?;
    let bin_dir = std::env::current_exe()
        .context("find this executable")?
        .parent()
        .context("folder of this executable")?
        .to_path_buf();
    let settings = FarmSettings {
        data_dir,
        bin_dir,
        num_agents: usize::try_from(options.agents).context("--agents")?,
        frame_ms: options.frame_ms,
        chunk_frames: chunk_frames(options.frames, options.agents),
    };
    let control_plane = settings.bin_dir.join("control-plane");
    processes::clean_up_leftovers(&settings.data_dir, &control_plane).await?;

    say!(
        "FlatRender quickstart: a control plane on its embedded PostgreSQL and {} node agent(s)",
        options.agents
    );
    say!("driving the aerender test double (After Effects does not run on Linux).");
    say!("  data: {}", settings.data_dir.display());
    say!("  logs: {}", settings.log_dir().display());

    let mut farm = DemoFarm::default();
    let mut job_id = None;
    let limit = Duration::from_secs(options.timeout);
    let outcome = tokio::select! {
        result = tokio::time::timeout(limit, demo(&settings, &options, &mut farm, &mut job_id)) => match result {
            Ok(Ok(())) => Ok(Outcome::Completed),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(anyhow::anyhow!("gave up after --timeout {}s", options.timeout)),
        },
        () = shutdown_signal() => Ok(Outcome::Interrupted),
    };
    if outcome.as_ref().is_ok_and(|outcome| *outcome == Outcome::Completed) && options.keep {
        print_try_it(&farm, &settings, job_id.as_deref().unwrap_or("JOB_ID"));
        shutdown_signal().await;
    }
    if outcome.is_err() {
        tell!("\nfailed; the logs are in {}", settings.log_dir().display());
    }
    let unfinished_job = job_id.filter(|_| !outcome.as_ref().is_ok_and(|outcome| *outcome == Outcome::Completed));
    if let Some(job_id) = unfinished_job {
        // Unfinished, it would be rendered first by the next run's agents.
        let reason = "the quickstart stopped before it finished";
        let cancelled = tokio::time::timeout(
            Duration::from_secs(5),
            job::cancel(&farm.endpoint, &farm.admin_token, &job_id, reason),
        )
        .await;
        if matches!(cancelled, Ok(Ok(()))) {
            say!("cancelled job {job_id}");
        }
    }
    say!("\nstopping the agents, then the control plane and its PostgreSQL…");
    farm.stop().await;
    if let Err(left) = processes::ensure_nothing_left(&settings.data_dir, &control_plane).await {
        if let Err(error) = outcome {
            tell!("quickstart: {error:#}");
        }
        return Err(left);
    }
    say!(
        "stopped: no process left ({:.1}s in all)",
        started.elapsed().as_secs_f64()
    );
    outcome
}

/// Everything between start and stop; returns when the sample job has completed and been checked.
async fn demo(
    settings: &FarmSettings,
    options: &Options,
    farm: &mut DemoFarm,
    job_id: &mut Option<String>,
) -> anyhow::Result<()> {
    let first_start = !settings.admin_token_file().exists();
    say!(
        "\nstarting the control plane ({} PostgreSQL under {})…",
        if first_start {
            "first start: creating its"
        } else {
            "reusing its"
        },
        settings.data_dir.join("postgres").display()
    );
    farm.start_control_plane(settings, CONTROL_PLANE_START_LIMIT).await?;
    if let (Some(process), Some(http)) = (&farm.control_plane, farm.http) {
        say!(
            "  control plane   gRPC {}  metrics http://{http}/metrics",
            farm.endpoint
        );
        say!("                  log {}", process.log.display());
    }
    let cancelled = job::cancel_unfinished(&farm.endpoint, &farm.admin_token).await?;
    if !cancelled.is_empty() {
        say!("  cancelled {} unfinished job(s) of an earlier run", cancelled.len());
    }
    let agents_since = SystemTime::now();
    say!("starting {} node agent(s)…", settings.num_agents);
    farm.start_agents(settings, agents_since, AGENTS_START_LIMIT).await?;
    for agent in &farm.agents {
        say!(
            "  {:<15} metrics http://{}/metrics\n                  log {}",
            agent.name,
            agent.metrics,
            agent.process.log.display()
        );
    }

    let templates = TemplateServer::try_start().await.context("start the template server")?;
    let submitted = job::submit(&farm.endpoint, &farm.admin_token, &templates, options.frames).await?;
    *job_id = Some(submitted.id.clone());
    say!(
        "\nsubmitted job {} through RenderService.SubmitRenderJob: {} frames of comp \"{}\", {} frames per chunk",
        submitted.id,
        options.frames,
        job::SAMPLE_COMP,
        settings.chunk_frames
    );
    let render_started = Instant::now();
    let mut display = ProgressDisplay::stdout();
    let limit = Duration::from_secs(options.timeout);
    let done = job::watch(&farm.endpoint, &farm.admin_token, &submitted.id, &mut display, limit).await?;
    let render_time = render_started.elapsed();
    report(settings, farm, &done, options.frames, render_time).await
}

/// Checks the finished job against the files on disk and prints the summary.
async fn report(
    settings: &FarmSettings,
    farm: &DemoFarm,
    done: &pb::RenderJob,
    num_frames: u32,
    render_time: Duration,
) -> anyhow::Result<()> {
    let output_dir = settings.output_root().join(&done.id);
    anyhow::ensure!(
        done.status() == pb::JobStatus::Completed,
        "job {} ended {}: {}",
        done.id,
        status_name(done.status()),
        done.failure_reason
    );
    let frame_files = summary::frame_files(&output_dir, "png");
    let frames_on_disk = frame_files.len();
    anyhow::ensure!(
        frames_on_disk >= usize::try_from(num_frames).unwrap_or(usize::MAX),
        "job {} completed but only {frames_on_disk} of {num_frames} frames are in {}",
        done.id,
        output_dir.display()
    );
    let mut shares = Vec::new();
    for agent in &farm.agents {
        shares.push(NodeShare {
            name: agent.name.clone(),
            frames: summary::frames_rendered(agent.metrics).await,
        });
    }
    let nodes_used = shares
        .iter()
        .filter(|share| share.frames.is_some_and(|frames| frames > 0))
        .count();
    say!("\njob {} completed", done.id);
    say!("  output   {}", output_dir.display());
    say!(
        "           {frames_on_disk} PNG frames, {} … {} (written by the aerender double)",
        frame_files.first().map_or("", String::as_str),
        frame_files.last().map_or("", String::as_str)
    );
    say!(
        "  frames   {num_frames} in {:.1}s from submission to completion",
        render_time.as_secs_f64()
    );
    say!(
        "  nodes    {nodes_used} of {} used: {}",
        shares.len(),
        summary::describe_shares(&shares)
    );
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Frames per chunk: about four chunks per agent, so the agents share even a short job.
fn chunk_frames(num_frames: u32, num_agents: u32) -> u32 {
    num_frames.div_ceil(num_agents.max(1) * 4).clamp(1, 10_000)
}

fn print_try_it(farm: &DemoFarm, settings: &FarmSettings, job_id: &str) {
    // frctl is built with the workspace; not on PATH in a fresh clone, so name the built one.
    let built_frctl = settings.bin_dir.join("frctl");
    let program = if built_frctl.exists() {
        built_frctl.display().to_string()
    } else {
        "frctl".to_owned()
    };
    let frctl = format!(
        "{program} --endpoint {} --token-file {}",
        farm.endpoint,
        settings.admin_token_file().display()
    );
    say!("\nthe farm keeps running (--keep); try, from another terminal:");
    for command in ["nodes list", "jobs list", &format!("jobs show {job_id}"), "stats"] {
        say!("  {frctl} {command}");
    }
    if let Some(http) = farm.http {
        say!("  curl -s http://{http}/metrics | grep ^flatrender_");
    }
    say!("press Ctrl-C to stop it");
}

/// Completes on Ctrl-C (SIGINT), SIGTERM, or SIGHUP (the terminal went away): the children run
/// in their own process groups, so only we can stop them.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let wait_for = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            // Without this handler the other signals still work.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = wait_for(SignalKind::interrupt()) => {}
        () = wait_for(SignalKind::terminate()) => {}
        () = wait_for(SignalKind::hangup()) => {}
    }
    say!("\ninterrupted");
}

/// One quickstart per data folder: a second one would stop the first one's farm as leftovers.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<Flock<std::fs::File>> {
    let path = data_dir.join("quickstart.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        anyhow::anyhow!(
            "another quickstart is using {} ({errno}): stop it, or pass another --data-dir",
            data_dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks are sized so that every agent gets several, and never empty.
    #[test]
    fn chunk_frames_gives_each_agent_several_chunks() {
        assert_eq!(chunk_frames(250, 2), 32);
        assert_eq!(chunk_frames(40, 2), 5);
        assert_eq!(chunk_frames(1, 2), 1);
        assert_eq!(chunk_frames(10, 0), 3);
    }
}
