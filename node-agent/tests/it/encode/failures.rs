//! What goes wrong, and what is left behind: an audio file that does not decode at all or breaks
//! midway and a corrupt frame fail naming the track, a missing frame fails before ffmpeg starts, a
//! cancelled encode kills ffmpeg's tree and leaves no file, a missing program is named, a file that
//! does not match the spec fails verification; and detection reports the installed versions.

use flatrender_node_agent::encode::{Container, EncodeError, Track, Tracks, detect, parse_version_line, verify};
use flatrender_proto::content::Resolution;
use flatrender_proto::content::{Music, SoundEffect, Voiceover, VoiceoverSource};

use super::*;
use crate::live_tagged_pids;

fn one_second(scratch: &Scratch) -> Vec<SceneFrames> {
    vec![
        scratch.scene("a", "red", "64x36", 0, 12, 12),
        scratch.scene("b", "blue", "64x36", 0, 13, 13),
    ]
}

/// Nothing but the inputs is left in the folder: no output, no partial file.
fn assert_only_inputs(scratch: &Scratch, inputs: &[&str]) {
    assert_eq!(files_in(scratch.dir.path()), inputs, "something was left behind");
}

/// An sfx file that is not audio fails the encode naming that cue (bad content, not retried),
/// whatever else plays; nothing is written.
#[tokio::test]
async fn undecodable_audio_fails_naming_the_track() {
    let scratch = Scratch::new();
    let music_tone = scratch.tone(1, "music.wav", 220, 1.0);
    let good_cue = scratch.tone(2, "good.wav", 1000, 0.2);
    let bad_path = scratch.path("bad.mp3");
    std::fs::write(&bad_path, b"this is not an mp3 file, just text with an mp3 name").unwrap();
    let bad_cue = (asset(4, "bad.mp3"), bad_path);
    let cue = |asset: &Asset, start_ms| SoundEffect {
        file: asset.clone(),
        start_ms,
        volume: volume(1.0),
        label: None,
    };
    let mut audio = no_audio();
    audio.music = Some(Music {
        file: music_tone.0.clone(),
        start_ms: 0,
        fade_in_ms: 0,
        fade_out_ms: 0,
        looped: true,
        volume: volume(1.0),
    });
    audio.sfx = vec![cue(&good_cue.0, 0), cue(&bad_cue.0, 500)];
    let spec = spec_with(
        &scratch,
        one_second(&scratch),
        Container::Mp4,
        "out.mp4",
        Some((&audio, &[music_tone, good_cue, bad_cue])),
    );
    let (result, _) = run_encode(&spec, &tag("bad-audio")).await;
    let error = result.unwrap_err();
    match &error {
        EncodeError::Input { tracks, reason } => {
            assert_eq!(tracks, &Tracks(vec![Track::SoundEffect(1)]), "{error}");
            assert!(reason.starts_with("does not decode"), "{error}");
        }
        other => panic!("expected an input error, got {other}"),
    }
    assert!(error.is_bad_content());
    assert_only_inputs(&scratch, &["bad.mp3", "good.wav", "music.wav", "scene-a", "scene-b"]);
}

/// A voiceover that decodes at first and breaks in the middle (ffmpeg would go on and exit 0
/// with a hole in the track) fails naming the voiceover, and nothing is written.
#[tokio::test]
async fn audio_that_breaks_midway_fails_naming_the_track() {
    let scratch = Scratch::new();
    let voice = scratch.tone(3, "voice.mp3", 3000, 3.0);
    let mut bytes = std::fs::read(&voice.1).unwrap();
    let middle = bytes.len() / 2;
    for (offset, byte) in bytes[middle..middle + 3000].iter_mut().enumerate() {
        *byte = if offset % 2 == 0 { 0x00 } else { 0xff };
    }
    std::fs::write(&voice.1, bytes).unwrap();
    let mut audio = no_audio();
    audio.voiceover = Some(Voiceover {
        file: voice.0.clone(),
        source: VoiceoverSource::Recording,
        start_ms: 0,
        duration_ms: None,
        volume: volume(1.0),
        duck_music: false,
    });
    let scenes = vec![scratch.scene("a", "red", "64x36", 0, 75, 75)];
    let spec = spec_with(&scratch, scenes, Container::Mp4, "out.mp4", Some((&audio, &[voice])));
    let (result, _) = run_encode(&spec, &tag("broken-midway")).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, EncodeError::Input { tracks, reason }
            if tracks == &Tracks(vec![Track::Voiceover]) && reason.starts_with("does not decode")),
        "{error}"
    );
    assert_only_inputs(&scratch, &["scene-a", "voice.mp3"]);
}

/// A frame that is not a PNG fails naming its scene; a missing frame fails before ffmpeg runs,
/// naming the scene, the count and the first missing file.
#[tokio::test]
async fn broken_frames_fail_naming_the_scene() {
    let scratch = Scratch::new();
    let scenes = one_second(&scratch);
    let corrupt = scenes[1].frame_path(5);
    std::fs::write(&corrupt, b"not a png").unwrap();
    let spec = spec_with(&scratch, scenes.clone(), Container::Mp4, "out.mp4", None);
    let (result, _) = run_encode(&spec, &tag("corrupt-frame")).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, EncodeError::Input { tracks, .. } if tracks == &Tracks(vec![Track::SceneFrames(1)])),
        "{error}"
    );
    assert!(!error.is_bad_content());

    std::fs::remove_file(&corrupt).unwrap();
    let (result, reports) = run_encode(&spec, &tag("missing-frame")).await;
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "scene 1 frames: 1 of 13 frames missing or empty, the first {}",
            corrupt.display()
        )
    );
    assert!(reports.is_empty(), "ffmpeg ran anyway");
    assert_only_inputs(&scratch, &["scene-a", "scene-b"]);
}

/// Cancelling mid-encode kills ffmpeg's whole tree and removes the partial file. The encode is
/// long on purpose (250 frames of 4K VP9): it is cancelled at its first progress report, so it
/// cannot have finished.
#[tokio::test]
async fn cancel_kills_ffmpeg_and_leaves_no_file() {
    let scratch = Scratch::new();
    let scenes = vec![scratch.scene("long", "red", "64x36", 0, 250, 250)];
    let spec = EncodeSpec::new(scenes, FPS, Resolution::K4, Container::Webm, scratch.path("out.webm")).unwrap();
    let tag = tag("cancel");
    let cancel = CancellationToken::new();
    let mut reports = 0;
    let result = tokio::time::timeout(
        ENCODE_LIMIT,
        encode(&FfmpegTools::default(), &spec, &tag, &cancel, &mut |_| {
            reports += 1;
            cancel.cancel();
        }),
    )
    .await
    .expect("the cancelled encode did not return in time");
    assert!(matches!(result, Err(EncodeError::Cancelled)), "{result:?}");
    assert!(reports >= 1, "cancelled before ffmpeg reported");
    assert_eq!(live_tagged_pids(&tag), Vec::<u32>::new(), "ffmpeg survived the cancel");
    assert_only_inputs(&scratch, &["scene-long"]);
}

/// A missing ffmpeg or ffprobe is named as such, with how to install it.
#[tokio::test]
async fn missing_programs_are_named() {
    let scratch = Scratch::new();
    let spec = spec_with(&scratch, one_second(&scratch), Container::Mp4, "out.mp4", None);
    let tools = FfmpegTools {
        ffmpeg: scratch.path("no-such-ffmpeg"),
        ffprobe: PathBuf::from("ffprobe"),
    };
    let error = encode(&tools, &spec, &tag("missing"), &CancellationToken::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, EncodeError::ToolMissing { tool: "ffmpeg", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("apt-get install ffmpeg"), "{error}");

    let no_probe = FfmpegTools {
        ffmpeg: PathBuf::from("ffmpeg"),
        ffprobe: scratch.path("no-such-ffprobe"),
    };
    let error = detect(&no_probe, &tag("detect-missing")).await.unwrap_err();
    assert!(
        matches!(error, EncodeError::ToolMissing { tool: "ffprobe", .. }),
        "{error}"
    );
}

/// A real file checked against a spec it does not match fails verification with the reason.
#[tokio::test]
async fn a_file_that_does_not_match_fails_verification() {
    let scratch = Scratch::new();
    let scenes = one_second(&scratch);
    let spec = spec_with(&scratch, scenes.clone(), Container::Mp4, "out.mp4", None);
    let (result, _) = run_encode(&spec, &tag("verify-ok")).await;
    let video = result.unwrap();
    let at_720p = EncodeSpec::new(
        scenes.clone(),
        FPS,
        Resolution::P720,
        Container::Mp4,
        scratch.path("x.mp4"),
    )
    .unwrap();
    let tools = FfmpegTools::default();
    let cancel = CancellationToken::new();
    let error = verify(&tools, &at_720p, &video.path, &tag("verify-size"), &cancel)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the encoded file failed verification: video is 854x480, expected 1280x720 (720p)"
    );
    let as_webm = EncodeSpec::new(scenes, FPS, Resolution::P480, Container::Webm, scratch.path("x.webm")).unwrap();
    let error = verify(&tools, &as_webm, &video.path, &tag("verify-format"), &cancel)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("expected webm"), "{error}");
}

/// Detection reports what `-version` prints, parsed the same way the test reads it.
#[tokio::test]
async fn detection_reports_the_installed_versions() {
    let versions = detect(&FfmpegTools::default(), &tag("detect")).await.unwrap();
    for (tool, detected) in [("ffmpeg", &versions.ffmpeg), ("ffprobe", &versions.ffprobe)] {
        let output = Command::new(tool).arg("-version").output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let first_line = text.lines().next().unwrap();
        assert_eq!(detected.version, first_line.split_whitespace().nth(2).unwrap());
        assert_eq!(Some(detected), parse_version_line(tool, first_line).as_ref());
        assert!(
            detected.release.is_some(),
            "a packaged FFmpeg has a release number: {first_line}"
        );
    }
}
