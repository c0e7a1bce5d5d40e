//! The quickstart behind `scripts/demo.sh` (issues 5 and 12): a run killed outright leaves its
//! farm running; the next run on the same data folder stops those leftovers, cancels the
//! unfinished job, renders and encodes its own sample project into an MP4, and leaves no process
//! behind. (`scripts/test.sh` also runs a plain quickstart from outside; this covers the
//! killed-run path it cannot.) And the sample project's request is accepted as it is built.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use flatrender_e2e::{
    Farm,
    quickstart::{job, processes::marked_processes},
    wait_until,
};
use flatrender_proto::pb;

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quickstart"))
}

/// Whether a frame is in any scene folder of any job (`renders/<job>/scene-000/…`).
fn has_rendered_frames(data_dir: &Path) -> bool {
    let Ok(jobs) = std::fs::read_dir(data_dir.join("renders")) else {
        return false;
    };
    jobs.flatten()
        .filter_map(|job| std::fs::read_dir(job.path()).ok())
        .flat_map(|scenes| scenes.flatten())
        .any(|scene| {
            std::fs::read_dir(scene.path()).is_ok_and(|mut frames| {
                frames.any(|frame| frame.is_ok_and(|frame| frame.path().extension().is_some_and(|ext| ext == "png")))
            })
        })
}

/// After a SIGKILLed quickstart, the next one stops its leftovers, renders and encodes, and
/// leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_quickstart_stops_a_killed_runs_farm_and_leaves_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    // As root, PostgreSQL runs as `postgres`, which must be able to enter the folder.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = scratch.path().join("demo");
    std::fs::create_dir_all(&data_dir).unwrap();
    let data_dir = data_dir.canonicalize().unwrap();

    let mut killed = Command::new(quickstart())
        .args(["--frames", "5000", "--timeout", "300", "--data-dir"])
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rendering = wait_until(Duration::from_secs(180), || async { has_rendered_frames(&data_dir) }).await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(rendering, "the first quickstart never rendered a frame");
    let leftovers = marked_processes(&data_dir);
    assert!(
        leftovers.iter().any(|process| process.program == "node-agent"),
        "a SIGKILLed quickstart should leave its farm running: {leftovers:?}"
    );

    let output = tokio::process::Command::new(quickstart())
        .args(["--frames", "20", "--timeout", "180", "--data-dir"])
        .arg(&data_dir)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "second quickstart failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("left by an earlier quickstart"), "{stderr}");
    assert!(
        stdout.contains("cancelled 1 unfinished job(s) of an earlier run"),
        "{stdout}"
    );
    assert!(
        stdout.contains("scene-000/ 10 frames, scene-001/ 10 frames"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  video    ") && stdout.contains("mp4, 1280x720, 0.8"),
        "{stdout}"
    );
    assert!(
        stdout.contains("#0 video: h264") && stdout.contains("audio: aac"),
        "{stdout}"
    );
    assert!(stdout.contains("  play it  "), "{stdout}");
    assert!(stdout.contains("stopped: no process left"), "{stdout}");
    let remaining = marked_processes(&data_dir);
    assert!(remaining.is_empty(), "processes left: {remaining:?}");
}

/// The sample project is accepted exactly as the quickstart builds it: two scenes with their
/// text and colour fields, its audio (with `has_voiceover`), an MP4 at 720p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_sample_project_is_accepted() {
    let farm = Farm::start(&[]).await;
    let audio_dir = tempfile::tempdir().unwrap();
    let sample = job::prepare(&farm.templates, audio_dir.path(), 40).await.unwrap();
    let submitted = farm.submit_with(sample.request.clone()).await;
    let read = farm.job(&submitted.id).await;
    let compositions: Vec<&str> = read.scenes.iter().map(|scene| scene.composition.as_str()).collect();
    assert_eq!(compositions, ["Intro", "Outro"]);
    assert!(read.scenes.iter().all(|scene| scene.fields.len() == 2), "{read:?}");
    let audio = read.audio.as_ref().unwrap();
    assert!(audio.music.is_some() && audio.voiceover.is_some(), "{audio:?}");
    assert_eq!(audio.sfx.len(), 2);
    let output = read.output.as_ref().unwrap();
    assert_eq!(output.container, "mp4");
    assert_eq!(output.resolution(), pb::Resolution::Resolution720p);
    assert_eq!(read.progress.unwrap().frames_total, 40);
}
