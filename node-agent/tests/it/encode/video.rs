//! The picture and the formats: scenes in play order, fitted and padded to the resolution, and
//! every container probing as documented (codecs, size, a duration within one frame, audio or
//! none), checked with the test's own ffprobe and decoder.

use flatrender_node_agent::encode::Container;
use flatrender_proto::content::{Music, SoundEffect};

use super::*;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const WIDTH: usize = 854;
const HEIGHT: usize = 480;

/// Three scenes in play order: red (frames 0-24 of 30 on disk: the extra five are not shown),
/// green numbered from 100, and a blue square. Decoding frames in each second shows red, green,
/// blue in that order, changing exactly at the scene boundary; the square is fitted to the height with black bars at the
/// sides. Progress counts up to all 75 frames and ends with ffmpeg's last report.
#[tokio::test]
async fn scenes_play_in_order_fitted_and_padded() {
    let scratch = Scratch::new();
    let scenes = vec![
        scratch.scene("red", "red", "64x36", 0, 30, 25),
        scratch.scene("green", "lime", "64x36", 100, 25, 25),
        scratch.scene("blue", "blue", "36x36", 0, 25, 25),
    ];
    let spec = spec_with(&scratch, scenes, Container::Mp4, "video.mp4", None);
    let (result, reports) = run_encode(&spec, &tag("order")).await;
    let video = result.unwrap();
    assert_eq!(video.path, scratch.path("video.mp4"));
    assert_eq!(video.size_bytes, std::fs::metadata(&video.path).unwrap().len());

    let centre = (HEIGHT / 2) * WIDTH + WIDTH / 2;
    // A seek shows the first frame at or after the time: frame 24 of the red scene starts at
    // 0.96 s, the green scene's first frame at 1.0 s.
    for (seconds, expected) in [(0.5, RED), (0.95, RED), (1.0, GREEN), (1.5, GREEN), (2.5, BLUE)] {
        let frame = frame_at(&video.path, seconds, WIDTH);
        assert_eq!(frame.len(), WIDTH * HEIGHT);
        assert!(
            looks_like(frame[centre], expected),
            "at {seconds} s the centre is {:?}, expected {expected:?}",
            frame[centre]
        );
    }
    let blue_frame = frame_at(&video.path, 2.5, WIDTH);
    let row = (HEIGHT / 2) * WIDTH;
    assert!(
        looks_like(blue_frame[row + 20], BLACK),
        "left bar: {:?}",
        blue_frame[row + 20]
    );
    assert!(looks_like(blue_frame[row + WIDTH - 20], BLACK), "right bar");
    assert!(
        looks_like(blue_frame[row + WIDTH / 2 - 200], BLUE),
        "the square spans the height"
    );
    let red_frame = frame_at(&video.path, 0.5, WIDTH);
    assert!(looks_like(red_frame[row + 4], RED), "a 16:9 scene fills the width");

    let last = reports.last().expect("no progress report");
    assert!(last.finished);
    assert_eq!((last.frames_done, last.total_frames), (75, 75));
    assert!(
        reports
            .windows(2)
            .all(|pair| pair[0].frames_done <= pair[1].frames_done)
    );
}

/// What the test's own ffprobe says about an encoded file.
struct Probed {
    format_name: String,
    video_codec: String,
    pixel_format: String,
    size: (u64, u64),
    video_seconds: f64,
    audio_codecs: Vec<String>,
}

fn probed(path: &Path) -> Probed {
    let json = probe(path);
    let streams = json["streams"].as_array().unwrap();
    let video = streams.iter().find(|stream| stream["codec_type"] == "video").unwrap();
    let seconds = |text: &serde_json::Value| text.as_str().and_then(|text| text.parse::<f64>().ok());
    let matroska_seconds = video["tags"]["DURATION"].as_str().map(|clock| {
        let parts: Vec<f64> = clock.split(':').map(|part| part.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    });
    Probed {
        format_name: json["format"]["format_name"].as_str().unwrap().to_owned(),
        video_codec: video["codec_name"].as_str().unwrap().to_owned(),
        pixel_format: video["pix_fmt"].as_str().unwrap_or_default().to_owned(),
        size: (video["width"].as_u64().unwrap(), video["height"].as_u64().unwrap()),
        video_seconds: seconds(&video["duration"])
            .or(matroska_seconds)
            .or_else(|| seconds(&json["format"]["duration"]))
            .unwrap(),
        audio_codecs: streams
            .iter()
            .filter(|stream| stream["codec_type"] == "audio")
            .map(|stream| stream["codec_name"].as_str().unwrap().to_owned())
            .collect(),
    }
}

/// Two scenes (12 + 13 frames = 1 s) with music and a cue, or without any audio, into
/// `container`; returns the probe and the module's own report.
async fn encode_format(container: Container, with_audio: bool, name: &str) -> (Probed, EncodedVideo) {
    let scratch = Scratch::new();
    let scenes = vec![
        scratch.scene("a", "red", "64x36", 0, 12, 12),
        scratch.scene("b", "blue", "64x36", 12, 13, 13),
    ];
    let file_name = format!("{name}.{}", container.as_str());
    let spec = if with_audio {
        let music = scratch.tone(1, "music.mp3", 220, 3.0);
        let cue = scratch.tone(2, "cue.wav", 1000, 0.2);
        let mut audio = no_audio();
        audio.music = Some(Music {
            file: music.0.clone(),
            start_ms: 0,
            fade_in_ms: 100,
            fade_out_ms: 100,
            looped: false,
            volume: volume(0.8),
        });
        audio.sfx.push(SoundEffect {
            file: cue.0.clone(),
            start_ms: 300,
            volume: volume(1.0),
            label: None,
        });
        spec_with(&scratch, scenes, container, &file_name, Some((&audio, &[music, cue])))
    } else {
        spec_with(&scratch, scenes, container, &file_name, None)
    };
    let (result, _) = run_encode(&spec, &tag(name)).await;
    let video = result.unwrap();
    assert_eq!(
        files_in(scratch.dir.path())
            .iter()
            .filter(|name| name.ends_with(".partial"))
            .count(),
        0
    );
    (probed(&video.path), video)
}

fn assert_one_second_480p(probe: &Probed, video: &EncodedVideo) {
    assert_eq!(probe.size, (854, 480));
    assert!(
        (probe.video_seconds - 1.0).abs() <= 1.0 / FPS,
        "video lasts {} s",
        probe.video_seconds
    );
    assert!((video.probe.video_duration_seconds - 1.0).abs() <= 1.0 / FPS);
    assert_eq!((video.probe.width, video.probe.height), (854, 480));
}

/// MP4: H.264 yuv420p and AAC, with or without the project's audio (a silent track then).
#[tokio::test]
async fn mp4_is_h264_and_aac() {
    for with_audio in [true, false] {
        let (probe, video) = encode_format(Container::Mp4, with_audio, &format!("mp4-{with_audio}")).await;
        assert!(probe.format_name.contains("mp4"), "{}", probe.format_name);
        assert_eq!(
            (probe.video_codec.as_str(), probe.pixel_format.as_str()),
            ("h264", "yuv420p")
        );
        assert_eq!(probe.audio_codecs, ["aac"]);
        assert_eq!(video.probe.audio_codec.as_deref(), Some("aac"));
        assert_one_second_480p(&probe, &video);
    }
}

/// WebM: VP9 yuv420p and Opus, the silent track included.
#[tokio::test]
async fn webm_is_vp9_and_opus() {
    for with_audio in [true, false] {
        let (probe, video) = encode_format(Container::Webm, with_audio, &format!("webm-{with_audio}")).await;
        assert!(probe.format_name.contains("webm"), "{}", probe.format_name);
        assert_eq!(
            (probe.video_codec.as_str(), probe.pixel_format.as_str()),
            ("vp9", "yuv420p")
        );
        assert_eq!(probe.audio_codecs, ["opus"]);
        assert_one_second_480p(&probe, &video);
    }
}

/// MOV: ProRes 422 10-bit and PCM, the silent track included.
#[tokio::test]
async fn mov_is_prores_and_pcm() {
    for with_audio in [true, false] {
        let (probe, video) = encode_format(Container::Mov, with_audio, &format!("mov-{with_audio}")).await;
        assert!(probe.format_name.contains("mov"), "{}", probe.format_name);
        assert_eq!(
            (probe.video_codec.as_str(), probe.pixel_format.as_str()),
            ("prores", "yuv422p10le")
        );
        assert_eq!(probe.audio_codecs, ["pcm_s16le"]);
        assert_one_second_480p(&probe, &video);
    }
}

/// GIF: the GIF codec and no audio stream, even when the project has audio.
#[tokio::test]
async fn gif_has_no_audio() {
    let (probe, video) = encode_format(Container::Gif, true, "gif").await;
    assert_eq!(probe.format_name, "gif");
    assert_eq!(probe.video_codec, "gif");
    assert!(probe.audio_codecs.is_empty(), "{:?}", probe.audio_codecs);
    assert_eq!(video.probe.audio_codec, None);
    assert_one_second_480p(&probe, &video);
}
