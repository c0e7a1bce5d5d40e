//! Encode items through a running encode-only agent: capabilities at registration and with each
//! run's first heartbeat, render work refused, a stored export reported with its record, the
//! export discarded when the job ended meanwhile (and kept on a stale answer), a lost lease
//! killing ffmpeg with nothing stored, and audio failures naming the track.

use std::os::unix::fs::PermissionsExt;

use flatrender_node_agent::encode::{FfmpegTools, detect};
use flatrender_node_agent::service::process_tag_prefix;
use flatrender_proto::pb;
use flatrender_proto::types::{CrashClass, JobId, RecoveryAction, TenantId};

use super::*;

/// An encode-only node says so at registration and with the first heartbeat of each run (also
/// a run that skips registration), refuses render work so that it goes elsewhere, and turns a
/// saved project's two scenes and its music into a stored MP4 whose record it reports; nothing
/// is left in its work folder.
#[tokio::test]
async fn an_encode_only_node_stores_the_export_and_reports_it() {
    let mut node = Node::new(None).await;
    let (tenant_id, job_id) = (TenantId::new_random(), JobId::new_random());
    node.frames(job_id, Some(1), "red", 0, 25);
    node.frames(job_id, Some(0), "blue", 100, 25);
    let music = node.publish("music.wav", tone(node.dir.path(), "music.wav", 4.0));
    let render = pb::WorkAssignment {
        frame_job_id: FrameJobId::new_random().to_string(),
        lease_token: 5,
        job_id: job_id.to_string(),
        kind: pb::WorkKind::Render as i32,
        ..pb::WorkAssignment::default()
    };
    node.fake.queue(render.clone());
    // Scene 1 plays first.
    let encode = encode_assignment(
        tenant_id,
        job_id,
        &[(1, 0, 24), (0, 100, 124)],
        49,
        Some(pb::ProjectAudio {
            music: Some(pb::Music {
                file: Some(music),
                volume: Some(0.5),
                ..pb::Music::default()
            }),
            ..pb::ProjectAudio::default()
        }),
    );
    node.fake.queue(encode.clone());
    node.start().await;

    wait_for(&node.fake, "the encode's completion", |recorded| {
        !recorded.completions.is_empty()
    })
    .await;
    let versions = detect(&FfmpegTools::default(), "agent-test-detect").await.unwrap();
    let expected = pb::NodeCapabilities {
        encoder: Some(pb::Encoder {
            ffmpeg_version: versions.ffmpeg.version.clone(),
            ffprobe_version: versions.ffprobe.version.clone(),
        }),
        encode_only: true,
    };
    let (registration, failures, completion) = node.fake.recorded(|recorded| {
        (
            recorded.registrations.clone(),
            recorded.failures.clone(),
            recorded.completions[0].clone(),
        )
    });
    assert_eq!(registration.len(), 1);
    assert_eq!(registration[0].capabilities, Some(expected.clone()));
    assert_eq!(registration[0].ae_version, "");

    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].frame_job_id, render.frame_job_id);
    assert_eq!(failures[0].recovery_action, RecoveryAction::RetryElsewhere.to_wire());
    assert!(failures[0].message.contains("encode-only"), "{}", failures[0].message);

    assert_eq!(completion.frame_job_id, encode.frame_job_id);
    assert_eq!(completion.lease_token, encode.lease_token);
    assert!(completion.outputs.is_empty());
    let export = completion.export.expect("the completion carries the export");
    let stored = node
        .exports()
        .join(tenant_id.to_string())
        .join(job_id.to_string())
        .join("promo.mp4");
    assert_eq!(export.location, stored.to_str().unwrap());
    assert_eq!(export.format, "mp4");
    assert_eq!((export.width, export.height), (854, 480));
    assert_eq!(export.video_codec, "h264");
    assert_eq!(export.audio_codec, "aac");
    assert_eq!(
        export.size_bytes,
        i64::try_from(std::fs::metadata(&stored).unwrap().len()).unwrap()
    );
    assert_eq!(export.blake3_hex, file_blake3(&stored));
    let duration = export.duration.unwrap();
    let seconds = duration.seconds as f64 + f64::from(duration.nanos) / 1e9;
    assert!((seconds - 2.0).abs() < 0.1, "50 frames at 25 fps, not {seconds} s");
    assert_eq!(files_under(node.exports()), vec![stored.clone()]);
    assert_eq!(node.work_left(), Vec::<PathBuf>::new());

    // The first heartbeat of the run carried the capabilities, later ones do not.
    wait_for(&node.fake, "a heartbeat without capabilities", |recorded| {
        recorded
            .heartbeats
            .iter()
            .any(|heartbeat| heartbeat.capabilities.is_none())
    })
    .await;
    let with_capabilities = |recorded: &Recorded| {
        recorded
            .heartbeats
            .iter()
            .filter(|heartbeat| heartbeat.capabilities.is_some())
            .count()
    };
    node.fake.recorded(|recorded| {
        assert_eq!(recorded.heartbeats[0].capabilities, Some(expected.clone()));
        assert_eq!(with_capabilities(recorded), 1);
    });

    // A new run keeps the stored credential: no registration, so its first heartbeat tells.
    node.stop().await;
    node.start().await;
    wait_for(&node.fake, "the second run's first heartbeat", |recorded| {
        with_capabilities(recorded) == 2
    })
    .await;
    node.fake
        .recorded(|recorded| assert_eq!(recorded.registrations.len(), 1));
    node.stop().await;
}

/// A completion answered JOB_ENDED (the job was cancelled meanwhile) has its stored export
/// removed; one answered STALE_LEASE keeps it, for the lease's successor to adopt.
#[tokio::test]
async fn an_export_is_discarded_when_the_job_ended_and_kept_when_stale() {
    let mut node = Node::new(None).await;
    let tenant_id = TenantId::new_random();
    let (ended, stale) = (JobId::new_random(), JobId::new_random());
    node.frames(ended, None, "green", 0, 10);
    node.frames(stale, None, "yellow", 0, 10);
    node.fake.answer_completions(pb::CompletionOutcome::JobEnded);
    node.fake.queue(encode_assignment(tenant_id, ended, &[], 9, None));
    node.start().await;

    let ended_file = node
        .exports()
        .join(tenant_id.to_string())
        .join(ended.to_string())
        .join("promo.mp4");
    wait_for(&node.fake, "the first completion", |recorded| {
        recorded.completions.len() == 1
    })
    .await;
    let location = node
        .fake
        .recorded(|recorded| recorded.completions[0].export.clone().unwrap().location);
    assert_eq!(location, ended_file.to_str().unwrap());
    wait_until("the ended job's export discarded", || !ended_file.exists()).await;

    node.fake.answer_completions(pb::CompletionOutcome::StaleLease);
    node.fake.queue(encode_assignment(tenant_id, stale, &[], 9, None));
    wait_for(&node.fake, "the second completion", |recorded| {
        recorded.completions.len() == 2
    })
    .await;
    // Delivery removes the item from the outbox after acting on the answer.
    let outbox = node.config.node.state_dir.join("outbox");
    wait_until("the outbox emptied", || files_under(&outbox).is_empty()).await;
    let stale_file = node
        .exports()
        .join(tenant_id.to_string())
        .join(stale.to_string())
        .join("promo.mp4");
    assert!(stale_file.is_file(), "a stale answer keeps the export");
    assert_eq!(files_under(node.exports()), vec![stale_file]);
    node.stop().await;
}

/// The control plane cancelling the lease mid-encode kills ffmpeg, stores nothing and reports
/// nothing; progress went up meanwhile as encoded frames. ffmpeg reads its frames in real time
/// here (a wrapper adds `-re`), so the encode outlasts the cancel on any machine.
#[tokio::test]
async fn a_lost_lease_kills_ffmpeg_and_stores_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let wrapper = scratch.path().join("ffmpeg-realtime");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nif [ \"$1\" = -version ]; then exec ffmpeg \"$@\"; fi\nexec ffmpeg -re \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut node = Node::new(Some(wrapper)).await;
    let (tenant_id, job_id) = (TenantId::new_random(), JobId::new_random());
    // A minute of video at 25 frames a second.
    node.frames(job_id, None, "white", 0, 1500);
    let encode = encode_assignment(tenant_id, job_id, &[], 1499, None);
    node.fake.queue(encode.clone());
    node.start().await;

    wait_for(&node.fake, "a progress report with encoded frames", |recorded| {
        recorded.progress.iter().any(|report| report.frames_done > 0)
    })
    .await;
    let tag = process_tag_prefix(&node.config.node);
    assert!(
        !crate::live_tagged_pids(&tag).is_empty(),
        "ffmpeg runs while it reports"
    );
    node.fake
        .command(pb::node_command::Command::CancelLease(pb::CancelLease {
            frame_job_id: encode.frame_job_id.clone(),
            lease_token: encode.lease_token,
            reason: "job cancelled".into(),
        }));
    wait_until("ffmpeg killed", || crate::live_tagged_pids(&tag).is_empty()).await;
    // The lease leaves the heartbeat once the encode's task has finished with it.
    let heartbeats_now = node.fake.recorded(|recorded| recorded.heartbeats.len());
    wait_for(&node.fake, "a heartbeat without the lease", |recorded| {
        recorded.heartbeats[heartbeats_now..]
            .iter()
            .any(|heartbeat| heartbeat.leases.is_empty())
    })
    .await;
    node.fake.recorded(|recorded| {
        assert!(recorded.completions.is_empty(), "{:?}", recorded.completions);
        assert!(recorded.failures.is_empty(), "{:?}", recorded.failures);
    });
    assert_eq!(files_under(node.exports()), Vec::<PathBuf>::new());
    assert_eq!(node.work_left(), Vec::<PathBuf>::new());
    node.stop().await;
}

/// An audio file that cannot be downloaded fails the attempt naming the track, to be retried
/// elsewhere (the job fails naming it once attempts run out); one that does not decode, or a cue
/// after the video's end, fails the job naming the track; missing frames are retried elsewhere,
/// naming the first missing file. Nothing is stored.
#[tokio::test]
async fn bad_inputs_fail_naming_the_track_or_frame() {
    let mut node = Node::new(None).await;
    let tenant_id = TenantId::new_random();
    let (unreachable, undecodable) = (JobId::new_random(), JobId::new_random());
    node.frames(unreachable, None, "red", 0, 10);
    node.frames(undecodable, None, "red", 0, 10);
    let good = node.publish("cue.wav", tone(node.dir.path(), "cue.wav", 0.2));
    let gone = pb::Asset {
        // Nothing listens on port 1.
        url: "http://127.0.0.1:1/gone.wav".into(),
        ..node.publish("gone.wav", tone(node.dir.path(), "gone.wav", 0.3))
    };
    let cue = |file: pb::Asset| pb::SoundEffect {
        file: Some(file),
        ..pb::SoundEffect::default()
    };
    let first = encode_assignment(
        tenant_id,
        unreachable,
        &[],
        9,
        Some(pb::ProjectAudio {
            sfx: vec![cue(good.clone()), cue(gone)],
            ..pb::ProjectAudio::default()
        }),
    );
    let noise = node.publish("voice.wav", b"RIFF this is not audio at all".repeat(40));
    let second = encode_assignment(
        tenant_id,
        undecodable,
        &[],
        9,
        Some(pb::ProjectAudio {
            sfx: vec![cue(good)],
            voiceover: Some(pb::Voiceover {
                file: Some(noise),
                source: pb::VoiceoverSource::Upload as i32,
                ..pb::Voiceover::default()
            }),
            ..pb::ProjectAudio::default()
        }),
    );
    // No frames rendered for this one.
    let no_frames = encode_assignment(tenant_id, JobId::new_random(), &[], 9, None);
    let late_music = encode_assignment(
        tenant_id,
        undecodable,
        &[],
        9,
        Some(pb::ProjectAudio {
            music: Some(pb::Music {
                file: Some(node.publish("late.wav", tone(node.dir.path(), "late.wav", 0.2))),
                start_ms: 60_000,
                ..pb::Music::default()
            }),
            ..pb::ProjectAudio::default()
        }),
    );
    for assignment in [&first, &second, &no_frames, &late_music] {
        node.fake.queue(assignment.clone());
    }
    node.start().await;

    wait_for(&node.fake, "four failures", |recorded| recorded.failures.len() == 4).await;
    let failures = node.fake.recorded(|recorded| recorded.failures.clone());
    let download = &failures[0];
    assert_eq!(download.frame_job_id, first.frame_job_id);
    assert!(download.message.starts_with("audio.sfx[1]: "), "{}", download.message);
    assert!(download.message.contains("127.0.0.1:1"), "{}", download.message);
    assert_eq!(download.crash_class, CrashClass::CacheError.to_wire());
    assert_eq!(download.recovery_action, RecoveryAction::RetryElsewhere.to_wire());
    let decode = &failures[1];
    assert_eq!(decode.frame_job_id, second.frame_job_id);
    assert!(decode.message.starts_with("audio.voiceover: "), "{}", decode.message);
    assert_eq!(decode.error_class, "bad_audio");
    assert_eq!(decode.recovery_action, RecoveryAction::FailJob.to_wire());
    let missing = &failures[2];
    assert_eq!(missing.frame_job_id, no_frames.frame_job_id);
    assert!(
        missing.message.starts_with("scene 0 frames: 10 of 10 frames missing"),
        "{}",
        missing.message
    );
    assert!(missing.message.contains("promo_00000.png"), "{}", missing.message);
    assert_eq!(missing.error_class, "frames_missing");
    assert_eq!(missing.recovery_action, RecoveryAction::RetryElsewhere.to_wire());
    let late = &failures[3];
    assert_eq!(late.frame_job_id, late_music.frame_job_id);
    assert!(
        late.message.starts_with("audio.music: starts at 60000 ms"),
        "{}",
        late.message
    );
    assert_eq!(late.recovery_action, RecoveryAction::FailJob.to_wire());
    node.fake.recorded(|recorded| assert!(recorded.completions.is_empty()));
    assert_eq!(files_under(node.exports()), Vec::<PathBuf>::new());
    assert_eq!(node.work_left(), Vec::<PathBuf>::new());
    node.stop().await;
}
