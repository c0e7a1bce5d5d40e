//! A chunk of a saved project's scene through `run_chunk`, with a shell script standing in for
//! aerender (it records what it was given and then succeeds, fails like a field that does not
//! apply, crashes, or waits to be stopped) and a local HTTP server for the template and assets.
//! Proves: the command line and paths of a scene render, the values reaching the script, the
//! working folder removed in every outcome, the cached template never changed, assets fetched
//! once for many chunks, and a corrupt asset failing the chunk with a cache error naming its field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod farm;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flatrender_proto::pb;
use flatrender_proto::types::{ContentHash, CrashClass, FrameJobId, JobId, RecoveryAction};

use super::*;
use farm::{Farm, value_after};

/// Generous: only a broken render reaches it, however loaded the machine.
const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// The bytes of the scene's logo.
const LOGO: &[u8] = b"\x89PNG logo pixels";

/// What aerender does after recording its arguments.
const SUCCEED: &str = r#"f=$first
while [ "$f" -le "$last" ]; do
  n=$(printf '%05d' "$f")
  printf 'frame' > "$(printf '%s' "$output" | sed "s/\[#####\]/$n/")"
  f=$((f+1))
done
echo 'PROGRESS:  Starting composition "Intro".'
echo 'PROGRESS:  Finished composition "Intro".'
exit 0"#;
const FIELD_FAILS: &str = r#"echo "PROGRESS: Running Script: $script"
echo "aerender ERROR: Error executing script: $script"
echo 'Error: flatrender: field "headline" (layer "Title"): no layer of that name in composition "Intro"'
exit 9"#;
const CRASH: &str = "kill -SEGV $$";
const WAIT: &str = "exec sleep 600";

/// A scene renders its working copy with `-r apply.jsx` (the values in the data line, the asset
/// linked in the folder), frames land in `<job>/scene-002/`, and afterwards the working folder is
/// gone while the cached template is unchanged and the asset stays cached.
#[tokio::test]
async fn a_scene_renders_its_working_copy_and_leaves_no_folder() {
    let farm = Farm::start(SUCCEED).await;
    let job_id = JobId::new_random();
    let assignment = farm.assignment(job_id, Some(farm.scene()));
    assert_eq!(farm.run(&assignment).await, ChunkOutcome::Completed);

    let args = farm.args();
    let work_dir = farm
        .work_root()
        .join(job_id.to_string())
        .join(format!("scene-002-{}", assignment.frame_job_id));
    let project = value_after(&args, "-project").unwrap();
    assert_eq!(project, work_dir.join("template").join("project.aep").to_str().unwrap());
    assert_eq!(
        value_after(&args, "-r").unwrap(),
        work_dir.join("apply.jsx").to_str().unwrap()
    );
    let scene_dir = farm
        .dir
        .path()
        .join("renders")
        .join(job_id.to_string())
        .join("scene-002");
    assert_eq!(
        value_after(&args, "-output").unwrap(),
        scene_dir.join("out_[#####].tif").to_str().unwrap()
    );
    let position = |flag: &str| args.iter().position(|arg| arg == flag).unwrap();
    assert!(
        position("-output") < position("-r") && position("-r") < position("-v"),
        "{args:?}"
    );
    for frame in 10..=12 {
        assert!(scene_dir.join(format!("out_{frame:05}.tif")).is_file());
    }

    let script = std::fs::read_to_string(farm.mark("apply.jsx")).unwrap();
    let data_line = script.lines().nth(1).unwrap();
    let data: serde_json::Value = serde_json::from_str(
        data_line
            .strip_prefix("var FLATRENDER_DATA = ")
            .unwrap()
            .strip_suffix(';')
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["fields"][0]["text"], "\"); app.quit(); //\nHi");
    assert_eq!(data["scene_index"], 2);
    let logo_path = work_dir.join("assets").join("Logo.png");
    assert_eq!(data["fields"][1]["path"], logo_path.to_str().unwrap());
    let tree = std::fs::read_to_string(farm.mark("tree")).unwrap();
    assert_eq!(tree, "./apply.jsx\n./assets/Logo.png\n./template/project.aep\n");

    farm.assert_no_working_folder();
    let cached = farm
        .dir
        .path()
        .join("cache")
        .join(assignment.template.as_ref().unwrap().blake3_hex.clone())
        .join("project.aep");
    assert_eq!(std::fs::read(cached).unwrap(), b"RIFX the cached template");
    let logo_hash = ContentHash::from_bytes(*blake3::hash(LOGO).as_bytes());
    assert!(farm.context.assets.contains(&logo_hash), "the asset stays cached");
}

/// Without a scene the chunk renders exactly as before: the cached project, no `-r`, frames in
/// `<job>/`, no working folder.
#[tokio::test]
async fn a_chunk_without_scene_renders_as_before() {
    let farm = Farm::start(SUCCEED).await;
    let job_id = JobId::new_random();
    let assignment = farm.assignment(job_id, None);
    assert_eq!(farm.run(&assignment).await, ChunkOutcome::Completed);
    let hash = &assignment.template.as_ref().unwrap().blake3_hex;
    let job_dir = farm.dir.path().join("renders").join(job_id.to_string());
    let expected: Vec<String> = [
        "-project",
        farm.dir
            .path()
            .join("cache")
            .join(hash)
            .join("project.aep")
            .to_str()
            .unwrap(),
        "-comp",
        "Intro",
        "-s",
        "10",
        "-e",
        "12",
        "-output",
        job_dir.join("out_[#####].tif").to_str().unwrap(),
        "-OMtemplate",
        "PNG Sequence",
        "-v",
        "ERRORS_AND_PROGRESS",
        "-close",
        "DO_NOT_SAVE_CHANGES",
        "-sound",
        "OFF",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(farm.args(), expected);
    assert!(job_dir.join("out_00010.tif").is_file());
    assert!(!farm.work_root().exists(), "no working folder at all");
}

/// A field that cannot be applied fails the job with the line naming field and layer, and the
/// working folder is gone.
#[tokio::test]
async fn a_field_that_does_not_apply_fails_the_job_and_leaves_no_folder() {
    let farm = Farm::start(FIELD_FAILS).await;
    let assignment = farm.assignment(JobId::new_random(), Some(farm.scene()));
    let ChunkOutcome::Failed(failure) = farm.run(&assignment).await else {
        panic!("must fail")
    };
    assert_eq!(
        (failure.crash_class, failure.action),
        (CrashClass::TemplateError, RecoveryAction::FailJob)
    );
    let reported = farm.last_failure();
    assert!(
        reported
            .message
            .starts_with("Error: flatrender: field \"headline\" (layer \"Title\"): no layer of that name"),
        "{}",
        reported.message
    );
    assert_eq!(reported.error_class, "field_not_applied");
    assert_eq!(reported.exit_code, Some(9));
    farm.assert_no_working_folder();
}

/// aerender dying by a signal is a crash; the working folder is gone all the same.
#[tokio::test]
async fn a_crashed_render_leaves_no_folder() {
    let farm = Farm::start(CRASH).await;
    let assignment = farm.assignment(JobId::new_random(), Some(farm.scene()));
    let ChunkOutcome::Failed(failure) = farm.run(&assignment).await else {
        panic!("must fail")
    };
    assert_eq!(failure.crash_class, CrashClass::Crash);
    assert!(farm.mark("started").exists());
    farm.assert_no_working_folder();
}

/// A render stopped from outside (the lease cancelled, or self-fenced) leaves no folder either.
#[tokio::test]
async fn a_stopped_render_leaves_no_folder() {
    for reason in [StopReason::LeaseLost, StopReason::SelfFenced] {
        let farm = Farm::start(WAIT).await;
        let assignment = farm.assignment(JobId::new_random(), Some(farm.scene()));
        let lease = farm.leases.insert(&assignment);
        let stopper = {
            let lease = Arc::clone(&lease);
            let started = farm.mark("started");
            tokio::spawn(async move {
                let deadline = Instant::now() + WAIT_LIMIT;
                while !started.exists() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                lease.stop(reason);
            })
        };
        let outcome = run_chunk(&farm.context, &assignment, lease, |failure| failure).await;
        stopper.await.unwrap();
        assert!(farm.mark("started").exists(), "{reason:?}: aerender ran");
        assert_eq!(outcome, ChunkOutcome::Stopped(reason));
        farm.assert_no_working_folder();
    }
}

/// Three chunks of three jobs naming the same logo fetch it (and the template) once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_shared_by_many_chunks_is_downloaded_once() {
    let farm = Arc::new(Farm::start(SUCCEED).await);
    let assignments: Vec<pb::WorkAssignment> = (0..3)
        .map(|_| farm.assignment(JobId::new_random(), Some(farm.scene())))
        .collect();
    let mut runs = tokio::task::JoinSet::new();
    for assignment in assignments {
        let farm = Arc::clone(&farm);
        runs.spawn(async move { farm.run(&assignment).await });
    }
    while let Some(outcome) = runs.join_next().await {
        assert_eq!(outcome.unwrap(), ChunkOutcome::Completed);
    }
    assert_eq!(farm.requests("logo-upload"), 1);
    assert_eq!(farm.requests("template.aep"), 1);
    farm.assert_no_working_folder();
}

/// A logo whose bytes do not match its BLAKE3 fails the chunk before aerender starts, with a
/// cache error naming the field and its asset; nothing is kept.
#[tokio::test]
async fn a_corrupt_asset_fails_the_chunk_naming_the_field() {
    let farm = Farm::start(SUCCEED).await;
    let scene = farm.scene();
    farm.files.corrupt.lock().unwrap().push("logo-upload".into());
    let assignment = farm.assignment(JobId::new_random(), Some(scene));
    let ChunkOutcome::Failed(failure) = farm.run(&assignment).await else {
        panic!("must fail")
    };
    assert_eq!(
        (failure.crash_class, failure.action),
        (CrashClass::CacheError, RecoveryAction::RetryElsewhere)
    );
    assert!(
        failure
            .message
            .starts_with("field \"logo\" (image \"Logo.png\", blake3 "),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("hash mismatch"), "{}", failure.message);
    assert!(!farm.mark("started").exists(), "aerender never ran");
    assert_eq!(farm.context.assets.stats().entries, 0);
    farm.assert_no_working_folder();
}

/// A scene that does not validate is refused before anything is fetched, naming the field.
#[tokio::test]
async fn a_malformed_scene_is_refused() {
    let farm = Farm::start(SUCCEED).await;
    let mut scene = farm.scene();
    scene.fields[0].key = "bad key".into();
    let assignment = farm.assignment(JobId::new_random(), Some(scene));
    let ChunkOutcome::Failed(failure) = farm.run(&assignment).await else {
        panic!("must fail")
    };
    assert_eq!(failure.action, RecoveryAction::RetryElsewhere);
    assert!(failure.message.contains("scene.fields[0].key"), "{}", failure.message);
    assert_eq!(farm.requests("template.aep"), 0);
    assert!(!farm.mark("started").exists());
}

/// A scene's frames go to `<job id>/scene-<iii>`.
#[test]
fn scene_output_folders_have_three_digits() {
    let job = content::SceneJob {
        job_id: JobId::new_random(),
        frame_job_id: FrameJobId::new_random(),
        scene: flatrender_proto::content::SceneContent {
            index: 7,
            scene_id: None,
            fields: Vec::new(),
        },
    };
    assert_eq!(
        job.output_dir(Path::new("/renders")),
        Path::new("/renders").join(job.job_id.to_string()).join("scene-007")
    );
}
