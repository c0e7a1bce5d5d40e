//! The quickstart behind `scripts/demo.sh` (issue 5): a run killed outright leaves its farm
//! running; the next run on the same data folder stops those leftovers, cancels the unfinished
//! job, renders its own sample job, and leaves no process behind. (`scripts/test.sh` also runs a
//! plain quickstart from outside; this covers the killed-run path it cannot.)

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use flatrender_e2e::{quickstart::processes::marked_processes, wait_until};

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quickstart"))
}

fn has_rendered_frames(data_dir: &Path) -> bool {
    let Ok(jobs) = std::fs::read_dir(data_dir.join("renders")) else {
        return false;
    };
    jobs.flatten().any(|job| {
        std::fs::read_dir(job.path()).is_ok_and(|mut frames| {
            frames.any(|frame| frame.is_ok_and(|frame| frame.path().extension().is_some_and(|ext| ext == "png")))
        })
    })
}

/// After a SIGKILLed quickstart, the next one stops its leftovers, renders, and leaves nothing.
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
    assert!(stdout.contains("20 PNG frames"), "{stdout}");
    assert!(stdout.contains("stopped: no process left"), "{stdout}");
    let remaining = marked_processes(&data_dir);
    assert!(remaining.is_empty(), "processes left: {remaining:?}");
}
