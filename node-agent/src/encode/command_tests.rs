//! Unit tests of ffmpeg's argument list: inputs in order with their tracks, image2 patterns
//! escaped, looped music on its own input, each container's codecs, every value its own item.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flatrender_proto::content::{Music, ProjectAudio, Resolution, SoundEffect};
use flatrender_proto::types::ContentHash;

use super::*;
use crate::encode::test_support::{asset, scene, volume};

fn args_of(command: &FfmpegCommand) -> Vec<String> {
    command
        .args
        .iter()
        .map(|arg| arg.to_str().unwrap().to_owned())
        .collect()
}

/// Index of `needle` as a contiguous run in `haystack`.
fn position_of(haystack: &[String], needle: &[&str]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.iter().zip(needle).all(|(left, right)| left == right))
}

fn spec(container: Container, fps: f64) -> EncodeSpec {
    EncodeSpec::new(
        vec![scene("/r/100%/scene-000", 0, 25), scene("/r/100%/scene-001", 7, 25)],
        fps,
        Resolution::P1080,
        container,
        PathBuf::from("/e/out.mp4"),
    )
    .unwrap()
}

fn audio(music_looped: bool, music_file_byte: u8) -> ProjectAudio {
    let cue = |start_ms| SoundEffect {
        file: asset(2, "whoosh.wav"),
        start_ms,
        volume: volume(1.0),
        label: None,
    };
    ProjectAudio {
        music: Some(Music {
            file: asset(music_file_byte, "music.wav"),
            start_ms: 0,
            fade_in_ms: 0,
            fade_out_ms: 0,
            looped: music_looped,
            volume: volume(1.0),
        }),
        sfx: vec![cue(100), cue(900)],
        sfx_volume: volume(1.0),
        voiceover: None,
    }
}

fn files() -> HashMap<ContentHash, PathBuf> {
    HashMap::from([
        (ContentHash::from_bytes([1; 32]), PathBuf::from("/c/music.wav")),
        (ContentHash::from_bytes([2; 32]), PathBuf::from("/c/whoosh.wav")),
    ])
}

/// An MP4 with looped music and two cues of one file: global flags first, each scene an image2
/// sequence at its first frame with `%` escaped, the music looped on its own input, the shared
/// cue file once, both graph outputs mapped, H.264/AAC with faststart, the rate, and the output
/// last, each behind `file:`.
#[test]
fn mp4_command() {
    let spec = spec(Container::Mp4, 25.0)
        .with_audio(&audio(true, 1), &files())
        .unwrap();
    let command = encode_command(&spec, Path::new("/e/.out.mp4.partial"));
    let args = args_of(&command);
    assert_eq!(
        args[..8],
        [
            "-hide_banner",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-progress",
            "pipe:1",
            "-nostats"
        ]
    );
    let first_scene = [
        "-f",
        "image2",
        "-pattern_type",
        "sequence",
        "-framerate",
        "25",
        "-start_number",
        "0",
        "-i",
        "file:/r/100%%/scene-000/out_%05d.png",
    ];
    let second_scene = [
        "-f",
        "image2",
        "-pattern_type",
        "sequence",
        "-framerate",
        "25",
        "-start_number",
        "7",
        "-i",
        "file:/r/100%%/scene-001/out_%05d.png",
    ];
    let music = ["-stream_loop", "-1", "-i", "file:/c/music.wav"];
    let cues = ["-i", "file:/c/whoosh.wav"];
    let positions = [
        position_of(&args, &first_scene).unwrap(),
        position_of(&args, &second_scene).unwrap(),
        position_of(&args, &music).unwrap(),
        position_of(&args, &cues).unwrap(),
    ];
    assert!(positions.is_sorted(), "inputs out of order: {positions:?}");
    assert_eq!(args.iter().filter(|arg| *arg == "-i").count(), 4);
    assert_eq!(
        command.inputs,
        vec![
            CommandInput {
                url: "file:/r/100%%/scene-000/out_%05d.png".to_owned(),
                tracks: vec![Track::SceneFrames(0)],
            },
            CommandInput {
                url: "file:/r/100%%/scene-001/out_%05d.png".to_owned(),
                tracks: vec![Track::SceneFrames(1)],
            },
            CommandInput {
                url: "file:/c/music.wav".to_owned(),
                tracks: vec![Track::Music],
            },
            CommandInput {
                url: "file:/c/whoosh.wav".to_owned(),
                tracks: vec![Track::SoundEffect(0), Track::SoundEffect(1)],
            },
        ]
    );
    let graph_at = position_of(&args, &["-filter_complex"]).unwrap() + 1;
    assert_eq!(args[graph_at], graph::filter_graph(&spec, &audio_inputs(&spec)));
    assert!(position_of(&args, &["-map", "[video]", "-map", "[audio]"]).is_some());
    for run in [
        &[
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-crf",
            "20",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
        ][..],
        &["-colorspace", "bt709", "-color_range", "tv"],
        &["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
    ] {
        assert!(position_of(&args, run).is_some(), "{run:?} missing from {args:?}");
    }
    assert_eq!(
        args[args.len() - 5..],
        ["-r", "25", "-f", "mp4", "file:/e/.out.mp4.partial"]
    );
}

/// Music that is not looped shares its file's input with cues of the same file; looped music
/// never does (its input repeats forever).
#[test]
fn inputs_are_shared_only_when_not_looped() {
    let mut same_file = files();
    same_file.insert(ContentHash::from_bytes([1; 32]), PathBuf::from("/c/whoosh.wav"));
    let shared = spec(Container::Mov, 25.0)
        .with_audio(&audio(false, 1), &same_file)
        .unwrap();
    assert_eq!(
        audio_inputs(&shared),
        vec![AudioInput {
            file: PathBuf::from("/c/whoosh.wav"),
            looped: false,
            tracks: vec![Track::Music, Track::SoundEffect(0), Track::SoundEffect(1)],
        }]
    );
    let looped = spec(Container::Mov, 25.0)
        .with_audio(&audio(true, 1), &same_file)
        .unwrap();
    assert_eq!(audio_inputs(&looped).len(), 2);
    assert!(audio_inputs(&looped)[0].looped);
}

/// WebM is VP9 + Opus, MOV ProRes 422 + PCM, GIF only the GIF codec with no audio map; NTSC rates
/// are exact fractions on input and output.
#[test]
fn container_codecs_and_rates() {
    let webm = args_of(&encode_command(&spec(Container::Webm, 29.97), Path::new("/e/o")));
    for run in [
        &["-framerate", "30000/1001"][..],
        &[
            "-c:v",
            "libvpx-vp9",
            "-crf",
            "32",
            "-b:v",
            "0",
            "-deadline",
            "good",
            "-cpu-used",
            "4",
        ],
        &["-row-mt", "1", "-pix_fmt", "yuv420p"],
        &["-c:a", "libopus", "-b:a", "128k"],
        &["-r", "30000/1001", "-f", "webm", "file:/e/o"],
    ] {
        assert!(position_of(&webm, run).is_some(), "{run:?} missing from {webm:?}");
    }
    let mov = args_of(&encode_command(&spec(Container::Mov, 25.0), Path::new("/e/o")));
    for run in [
        &[
            "-c:v",
            "prores",
            "-profile:v",
            "2",
            "-vendor",
            "apl0",
            "-pix_fmt",
            "yuv422p10le",
        ][..],
        &["-c:a", "pcm_s16le"],
        &["-f", "mov"],
    ] {
        assert!(position_of(&mov, run).is_some(), "{run:?} missing from {mov:?}");
    }
    let gif_spec = spec(Container::Gif, 25.0)
        .with_audio(&audio(true, 1), &files())
        .unwrap();
    let gif_command = encode_command(&gif_spec, Path::new("/e/o"));
    let gif = args_of(&gif_command);
    assert!(position_of(&gif, &["-c:v", "gif", "-loop", "0", "-r", "25", "-f", "gif"]).is_some());
    assert!(!gif.iter().any(|arg| arg == "[audio]" || arg.contains("-c:a")));
    assert_eq!(gif_command.inputs.len(), 2, "a GIF opens no audio file");
}
