//! Unit tests of reading an encode assignment.

use std::path::Path;

use super::*;

fn aerender() -> AerenderConfig {
    AerenderConfig {
        output_root: PathBuf::from("/renders"),
        ..AerenderConfig::default()
    }
}

fn asset(byte: u8) -> pb::Asset {
    pb::Asset {
        url: format!("https://cdn.example/{byte}.wav"),
        blake3_hex: format!("{byte:02x}").repeat(32),
        size_bytes: 100,
        file_name: format!("{byte}.wav"),
    }
}

/// An encode item of a saved project's two scenes (in play order 2, 0), 720p webm, with music
/// starting long after the video's end (the spec, not the plan, refuses that).
fn assignment(job_id: JobId) -> pb::WorkAssignment {
    pb::WorkAssignment {
        frame_job_id: FrameJobId::new_random().to_string(),
        lease_token: 3,
        job_id: job_id.to_string(),
        tenant_id: TenantId::new_random().to_string(),
        frame_range: Some(pb::FrameRange { start: 0, end: 89 }),
        fps: 29.97,
        output: Some(pb::OutputSettings {
            output_name: "promo".into(),
            container: "webm".into(),
            resolution: pb::Resolution::Resolution720p as i32,
            ..pb::OutputSettings::default()
        }),
        kind: pb::WorkKind::Encode as i32,
        encode: Some(pb::EncodeWork {
            scenes: vec![
                pb::EncodeScene {
                    index: 2,
                    frame_range: Some(pb::FrameRange { start: 10, end: 69 }),
                },
                pb::EncodeScene {
                    index: 0,
                    frame_range: Some(pb::FrameRange { start: 0, end: 29 }),
                },
            ],
            audio: Some(pb::ProjectAudio {
                music: Some(pb::Music {
                    file: Some(asset(1)),
                    start_ms: 3_600_000,
                    ..pb::Music::default()
                }),
                ..pb::ProjectAudio::default()
            }),
        }),
        ..pb::WorkAssignment::default()
    }
}

/// Scenes keep the play order given, each in `<job>/scene-<iii>/` with the render runner's file
/// names and its composition's numbering; the output settings and audio come through.
#[test]
fn scenes_are_read_in_play_order_from_the_render_layout() {
    let job_id = JobId::new_random();
    let plan = EncodePlan::from_assignment(&assignment(job_id), &aerender()).unwrap();
    let job_dir = Path::new("/renders").join(job_id.to_string());
    assert_eq!(plan.scenes.len(), 2);
    assert_eq!(plan.scenes[0].dir, job_dir.join("scene-002"));
    assert_eq!((plan.scenes[0].first_frame, plan.scenes[0].num_frames), (10, 60));
    assert_eq!(
        plan.scenes[0].frame_path(10),
        job_dir.join("scene-002").join("promo_00010.png")
    );
    assert_eq!(plan.scenes[1].dir, job_dir.join("scene-000"));
    assert_eq!(plan.scenes[1].num_frames, 30);
    assert_eq!(plan.job_id, job_id);
    assert_eq!((plan.container, plan.resolution), (Container::Webm, Resolution::P720));
    assert_eq!(plan.fps, 29.97);
    assert_eq!(plan.file_name(), "promo.webm");
    let music = plan.audio.unwrap().music.unwrap();
    assert_eq!(music.start_ms, 3_600_000, "checked later, by the spec");
}

/// A single-composition job's frames are the assignment's range in the job's own folder; an
/// unset resolution is 1080p.
#[test]
fn a_single_composition_uses_the_job_folder_and_range() {
    let job_id = JobId::new_random();
    let mut assignment = assignment(job_id);
    let work = assignment.encode.as_mut().unwrap();
    work.scenes.clear();
    work.audio = None;
    assignment.output.as_mut().unwrap().resolution = 0;
    let plan = EncodePlan::from_assignment(&assignment, &aerender()).unwrap();
    assert_eq!(plan.scenes.len(), 1);
    assert_eq!(plan.scenes[0].dir, Path::new("/renders").join(job_id.to_string()));
    assert_eq!((plan.scenes[0].first_frame, plan.scenes[0].num_frames), (0, 90));
    assert_eq!(plan.resolution, Resolution::P1080);
    assert_eq!(plan.audio, None);
}

/// What this agent cannot read is malformed (another node may), naming the field; an output
/// name that cannot name a file is the job's fault.
#[test]
fn bad_assignments_name_the_field() {
    let job_id = JobId::new_random();
    let malformed = |change: &dyn Fn(&mut pb::WorkAssignment)| {
        let mut assignment = assignment(job_id);
        change(&mut assignment);
        match EncodePlan::from_assignment(&assignment, &aerender()) {
            Err(PlanError::Malformed(message)) => message,
            other => panic!("{other:?}"),
        }
    };
    assert!(malformed(&|a| a.encode = None).contains("encode"));
    assert!(malformed(&|a| a.tenant_id.clear()).contains("tenant_id"));
    assert!(malformed(&|a| a.output.as_mut().unwrap().container = "png_sequence".into()).contains("output.container"));
    assert!(
        malformed(&|a| a.encode.as_mut().unwrap().scenes[1].frame_range = Some(pb::FrameRange { start: 5, end: 4 }))
            .contains("encode.scenes[1].frame_range")
    );
    assert!(malformed(&|a| a.encode.as_mut().unwrap().scenes[0].index = -1).contains("encode.scenes[0].index"));
    assert!(
        malformed(&|a| a
            .encode
            .as_mut()
            .unwrap()
            .audio
            .as_mut()
            .unwrap()
            .music
            .as_mut()
            .unwrap()
            .file = None)
        .contains("audio.music.file")
    );
    let mut bad_name = assignment(job_id);
    bad_name.output.as_mut().unwrap().output_name = "../promo".into();
    assert!(matches!(
        EncodePlan::from_assignment(&bad_name, &aerender()),
        Err(PlanError::BadOutputName(message)) if message.contains("output_name")
    ));
}
