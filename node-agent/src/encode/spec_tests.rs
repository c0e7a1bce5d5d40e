//! Unit tests of the encode spec: frame rates as exact fractions, validation naming the field or
//! the track, and what a GIF does with audio and high frame rates.

use std::collections::HashMap;
use std::path::PathBuf;

use flatrender_proto::content::{Music, ProjectAudio, Resolution, SoundEffect, Voiceover, VoiceoverSource};
use flatrender_proto::types::ContentHash;

use super::*;
use crate::encode::test_support::{asset, scene, volume};

fn two_second_spec(container: Container) -> EncodeSpec {
    EncodeSpec::new(
        vec![scene("/r/job/scene-000", 0, 25), scene("/r/job/scene-001", 100, 25)],
        25.0,
        Resolution::P720,
        container,
        PathBuf::from("/exports/job.mp4"),
    )
    .unwrap()
}

fn audio_with_cue_at(start_ms: u32) -> ProjectAudio {
    ProjectAudio {
        music: Some(Music {
            file: asset(1, "music.mp3"),
            start_ms: 0,
            fade_in_ms: 0,
            fade_out_ms: 0,
            looped: true,
            volume: volume(1.0),
        }),
        sfx: vec![SoundEffect {
            file: asset(2, "whoosh.wav"),
            start_ms,
            volume: volume(0.5),
            label: None,
        }],
        sfx_volume: volume(1.0),
        voiceover: Some(Voiceover {
            file: asset(3, "voice.ogg"),
            source: VoiceoverSource::Upload,
            start_ms: 100,
            duration_ms: None,
            volume: volume(1.0),
            duck_music: true,
        }),
    }
}

fn local_files() -> HashMap<ContentHash, PathBuf> {
    HashMap::from([
        (
            ContentHash::from_bytes([1; 32]),
            PathBuf::from("/cache/assets/music.mp3"),
        ),
        (
            ContentHash::from_bytes([2; 32]),
            PathBuf::from("/cache/assets/whoosh.wav"),
        ),
        (
            ContentHash::from_bytes([3; 32]),
            PathBuf::from("/cache/assets/voice.ogg"),
        ),
    ])
}

/// NTSC rates become N*1000/1001, whole and decimal rates stay exact, nonsense is refused.
#[test]
fn frame_rates_are_exact_fractions() {
    let rate = |fps: f64| FrameRate::from_fps(fps).map(|rate| (rate.numerator(), rate.denominator()));
    assert_eq!(rate(25.0), Some((25, 1)));
    assert_eq!(rate(29.97), Some((30000, 1001)));
    assert_eq!(rate(23.976), Some((24000, 1001)));
    assert_eq!(rate(59.94), Some((60000, 1001)));
    assert_eq!(rate(30000.0 / 1001.0), Some((30000, 1001)));
    assert_eq!(rate(12.5), Some((25, 2)));
    assert_eq!(rate(24.5), Some((49, 2)));
    assert_eq!(rate(999.0), Some((999, 1)));
    assert_eq!(rate(0.0), None);
    assert_eq!(rate(-25.0), None);
    assert_eq!(rate(1000.0), None);
    assert_eq!(rate(f64::NAN), None);
    assert_eq!(rate(0.0001), None);
    assert_eq!(FrameRate::from_fps(29.97).unwrap().to_ffmpeg(), "30000/1001");
    assert_eq!(FrameRate::from_fps(25.0).unwrap().to_ffmpeg(), "25");
}

/// Durations in samples are exact for whole rates and rounded to the nearest sample for NTSC.
#[test]
fn durations_in_samples() {
    let pal = FrameRate::from_fps(25.0).unwrap();
    assert_eq!(pal.samples(75), 144_000);
    assert!((pal.seconds(75) - 3.0).abs() < 1e-12);
    let ntsc = FrameRate::from_fps(29.97).unwrap();
    // 30 frames at 30000/1001 fps = 1.001 s = 48048 samples exactly.
    assert_eq!(ntsc.samples(30), 48_048);
    // 1 frame = 1601.6 samples, rounded up.
    assert_eq!(ntsc.samples(1), 1602);
}

/// The containers' names round-trip and only GIF is silent.
#[test]
fn containers() {
    for container in [Container::Mp4, Container::Mov, Container::Webm, Container::Gif] {
        assert_eq!(Container::parse(container.as_str()), Some(container));
    }
    assert_eq!(Container::parse("png_sequence"), None);
    assert_eq!(Container::parse("MP4"), None);
    assert!(!Container::Gif.has_audio());
    assert!(Container::Webm.has_audio());
}

/// Two scenes of 25 frames at 25 fps are two seconds; frames are found in each scene's numbering.
#[test]
fn spec_lengths_and_frame_paths() {
    let spec = two_second_spec(Container::Mp4);
    assert_eq!(spec.total_frames(), 50);
    assert!((spec.duration_seconds() - 2.0).abs() < 1e-12);
    assert_eq!(spec.duration_samples(), 96_000);
    assert_eq!(spec.output_frames(), 50);
    let second = &spec.scenes()[1];
    assert_eq!(second.frame_path(100), PathBuf::from("/r/job/scene-001/out_00100.png"));
    assert_eq!(second.frames().collect::<Vec<_>>(), (100..125).collect::<Vec<_>>());
}

/// Each invalid part of a spec is refused naming its field.
#[test]
fn invalid_specs_name_the_field() {
    let error = |result: EncodeResult<EncodeSpec>| result.unwrap_err().to_string();
    let output = || PathBuf::from("/exports/a.mp4");
    assert_eq!(
        error(EncodeSpec::new(
            vec![],
            25.0,
            Resolution::P480,
            Container::Mp4,
            output()
        )),
        "invalid encode spec: scenes: must have at least one scene"
    );
    assert_eq!(
        error(EncodeSpec::new(
            vec![scene("/a", 0, 0)],
            25.0,
            Resolution::P480,
            Container::Mp4,
            output()
        )),
        "invalid encode spec: scenes[0].num_frames: must be at least 1"
    );
    assert!(
        error(EncodeSpec::new(
            vec![scene("/a", i32::MAX, 2)],
            25.0,
            Resolution::P480,
            Container::Mp4,
            output()
        ))
        .starts_with("invalid encode spec: scenes[0].num_frames:")
    );
    assert!(
        error(EncodeSpec::new(
            vec![scene("rel", 0, 1)],
            25.0,
            Resolution::P480,
            Container::Mp4,
            output()
        ))
        .starts_with("invalid encode spec: scenes[0].dir: must be an absolute path")
    );
    assert!(
        error(EncodeSpec::new(
            vec![scene("/a", 0, 1)],
            0.0,
            Resolution::P480,
            Container::Mp4,
            output()
        ))
        .starts_with("invalid encode spec: fps:")
    );
    assert!(
        error(EncodeSpec::new(
            vec![scene("/a", 0, 1)],
            25.0,
            Resolution::P480,
            Container::Mp4,
            PathBuf::from("a.mp4")
        ))
        .starts_with("invalid encode spec: output: must be an absolute path")
    );
}

/// Audio resolves each asset to its local file; a cue at the video's end fails naming the cue (bad
/// content), an asset without a local file is the caller's mistake.
#[test]
fn audio_is_resolved_and_checked_against_the_video_length() {
    let spec = two_second_spec(Container::Mp4)
        .with_audio(&audio_with_cue_at(1999), &local_files())
        .unwrap();
    let mix = spec.audio().unwrap();
    assert_eq!(
        mix.music.as_ref().unwrap().file,
        PathBuf::from("/cache/assets/music.mp3")
    );
    assert_eq!(mix.sfx[0].file, PathBuf::from("/cache/assets/whoosh.wav"));
    assert_eq!(
        mix.voiceover.as_ref().unwrap().file,
        PathBuf::from("/cache/assets/voice.ogg")
    );

    let late = two_second_spec(Container::Mp4)
        .with_audio(&audio_with_cue_at(2000), &local_files())
        .unwrap_err();
    assert_eq!(
        late.to_string(),
        "sfx[0]: starts at 2000 ms, at or after the end of the video (2000 ms)"
    );
    assert!(late.is_bad_content());

    let mut files = local_files();
    files.remove(&ContentHash::from_bytes([3; 32]));
    let missing = two_second_spec(Container::Mp4)
        .with_audio(&audio_with_cue_at(0), &files)
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("invalid encode spec: audio.voiceover.file: no local file for asset 0303"),
        "{missing}"
    );
    assert!(!missing.is_bad_content());
}

/// A project without tracks mixes nothing (the silent stream is the command's business); a GIF
/// ignores audio, even a cue that would be refused elsewhere.
#[test]
fn no_tracks_and_gif_have_no_mix() {
    let empty = ProjectAudio {
        music: None,
        sfx: vec![],
        sfx_volume: volume(1.0),
        voiceover: None,
    };
    let spec = two_second_spec(Container::Webm)
        .with_audio(&empty, &local_files())
        .unwrap();
    assert!(spec.audio().is_none());
    let gif = two_second_spec(Container::Gif)
        .with_audio(&audio_with_cue_at(5000), &local_files())
        .unwrap();
    assert!(gif.audio().is_none());
}

/// A 60 fps GIF is sampled down to 50 fps over the same duration; a 25 fps one keeps its rate.
#[test]
fn gif_frame_rate_is_capped() {
    let spec = EncodeSpec::new(
        vec![scene("/a", 0, 120)],
        60.0,
        Resolution::P480,
        Container::Gif,
        PathBuf::from("/e/a.gif"),
    )
    .unwrap();
    assert_eq!(spec.output_frame_rate().to_ffmpeg(), "50");
    assert_eq!(spec.output_frames(), 100);
    assert_eq!(two_second_spec(Container::Gif).output_frame_rate().to_ffmpeg(), "25");
    let mp4 = EncodeSpec::new(
        vec![scene("/a", 0, 120)],
        60.0,
        Resolution::P480,
        Container::Mp4,
        PathBuf::from("/e/a.mp4"),
    )
    .unwrap();
    assert_eq!(mp4.output_frame_rate().to_ffmpeg(), "60");
}
