//! Unit tests of the ffprobe checks, on ffprobe 5.1's JSON for one-second 854x480 files of each
//! container (trimmed to the fields that matter), and on each way a file can be wrong.

use std::path::PathBuf;

use flatrender_proto::content::Resolution;

use super::*;
use crate::encode::test_support::scene;

fn spec(container: Container) -> EncodeSpec {
    EncodeSpec::new(
        vec![scene("/r/j/scene-000", 0, 25)],
        25.0,
        Resolution::P480,
        container,
        PathBuf::from("/e/out"),
    )
    .unwrap()
}

const MP4: &str = r#"{
    "streams": [
        {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 854, "height": 480,
         "pix_fmt": "yuv420p", "r_frame_rate": "25/1", "duration": "1.000000", "nb_frames": "25",
         "tags": {"language": "und", "handler_name": "VideoHandler", "vendor_id": "[0][0][0][0]"}},
        {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_rate": "48000", "channels": 2,
         "duration": "1.000000", "nb_frames": "48", "tags": {"language": "und", "handler_name": "SoundHandler"}}
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.000000",
               "tags": {"major_brand": "isom", "minor_version": "512", "compatible_brands": "isomiso2avc1mp41"}}
}"#;

const WEBM: &str = r#"{
    "streams": [
        {"index": 0, "codec_name": "vp9", "codec_type": "video", "width": 854, "height": 480,
         "pix_fmt": "yuv420p", "tags": {"ENCODER": "Lavc59.37.100 libvpx-vp9", "DURATION": "00:00:01.007000000"}},
        {"index": 1, "codec_name": "opus", "codec_type": "audio", "sample_rate": "48000", "channels": 2,
         "tags": {"ENCODER": "Lavc59.37.100 libopus", "DURATION": "00:00:01.008000000"}}
    ],
    "format": {"format_name": "matroska,webm", "duration": "1.008000", "tags": {"ENCODER": "Lavf59.27.100"}}
}"#;

const MOV: &str = r#"{
    "streams": [
        {"index": 0, "codec_name": "prores", "codec_type": "video", "width": 854, "height": 480,
         "pix_fmt": "yuv422p10le", "duration": "1.000000", "nb_frames": "25"},
        {"index": 1, "codec_name": "pcm_s16le", "codec_type": "audio", "sample_rate": "48000", "channels": 2,
         "duration": "1.000000", "nb_frames": "48000"}
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.000000",
               "tags": {"major_brand": "qt  ", "minor_version": "512", "compatible_brands": "qt  "}}
}"#;

const GIF: &str = r#"{
    "streams": [
        {"index": 0, "codec_name": "gif", "codec_type": "video", "width": 854, "height": 480,
         "pix_fmt": "bgra", "duration": "1.000000", "nb_frames": "25"}
    ],
    "format": {"format_name": "gif", "duration": "1.000000"}
}"#;

/// Each container's real output passes, with its codecs and durations reported (WebM's from the
/// Matroska tags).
#[test]
fn real_outputs_pass() {
    let mp4 = check(MP4, &spec(Container::Mp4)).unwrap();
    assert_eq!(
        mp4,
        ProbedVideo {
            duration_seconds: 1.0,
            video_duration_seconds: 1.0,
            width: 854,
            height: 480,
            video_codec: "h264".to_owned(),
            audio_codec: Some("aac".to_owned()),
        }
    );
    let webm = check(WEBM, &spec(Container::Webm)).unwrap();
    assert!((webm.video_duration_seconds - 1.007).abs() < 1e-9);
    assert!((webm.duration_seconds - 1.008).abs() < 1e-9);
    assert_eq!(webm.audio_codec.as_deref(), Some("opus"));
    assert_eq!(check(MOV, &spec(Container::Mov)).unwrap().video_codec, "prores");
    assert_eq!(check(GIF, &spec(Container::Gif)).unwrap().audio_codec, None);
}

/// Each kind of mismatch fails with its reason.
#[test]
fn mismatches_fail_with_the_reason() {
    let fails = |json: &str, container: Container| check(json, &spec(container)).unwrap_err();
    assert_eq!(fails(MOV, Container::Mp4), "major brand is \"qt\", expected \"isom\"");
    assert_eq!(
        fails(MP4, Container::Webm),
        "container is \"mov,mp4,m4a,3gp,3g2,mj2\", expected webm"
    );
    assert_eq!(
        fails(&MP4.replace("\"h264\"", "\"hevc\""), Container::Mp4),
        "video codec is hevc, expected h264"
    );
    assert_eq!(
        fails(&MP4.replace("\"yuv420p\"", "\"yuv444p\""), Container::Mp4),
        "pixel format is yuv444p, expected yuv420p"
    );
    assert_eq!(
        fails(&MP4.replace("\"height\": 480", "\"height\": 360"), Container::Mp4),
        "video is 854x360, expected 854x480 (480p)"
    );
    assert_eq!(
        fails(
            &MP4.replace(
                "\"duration\": \"1.000000\", \"nb_frames\": \"25\"",
                "\"duration\": \"0.920000\""
            ),
            Container::Mp4
        ),
        "video lasts 0.920 s, expected 1.000 s (within one frame, 0.040 s)"
    );
    assert_eq!(
        fails(
            &MP4.replace("\"codec_name\": \"aac\"", "\"codec_name\": \"mp3\""),
            Container::Mp4
        ),
        "audio codec is mp3, expected aac"
    );
    assert_eq!(
        fails(&MP4.replace("\"channels\": 2", "\"channels\": 1"), Container::Mp4),
        "audio is 48000 Hz with 1 channels, expected 48000 Hz stereo"
    );
    assert_eq!(
        fails(
            &MP4.replace("\"codec_type\": \"audio\"", "\"codec_type\": \"data\""),
            Container::Mp4
        ),
        "0 audio streams, expected 1"
    );
    assert_eq!(
        fails(
            &MP4.replace("\"codec_type\": \"audio\"", "\"codec_type\": \"video\""),
            Container::Mp4
        ),
        "2 video streams, expected 1"
    );
    let gif_with_audio = GIF.replace(
        "\"nb_frames\": \"25\"}",
        "\"nb_frames\": \"25\"}, {\"codec_type\": \"audio\", \"codec_name\": \"aac\"}",
    );
    assert_eq!(fails(&gif_with_audio, Container::Gif), "1 audio streams, expected none");
    assert!(fails("not json", Container::Gif).starts_with("ffprobe's output is not JSON"));
}

/// A duration just within one frame passes; a stream without any duration falls back on the
/// container's.
#[test]
fn durations_within_a_frame() {
    let late = MP4.replace(
        "\"duration\": \"1.000000\", \"nb_frames\": \"25\"",
        "\"duration\": \"1.039000\"",
    );
    assert!(check(&late, &spec(Container::Mp4)).is_ok());
    let no_stream_duration = GIF.replace(
        "\"duration\": \"1.000000\", \"nb_frames\": \"25\"",
        "\"nb_frames\": \"25\"",
    );
    assert!(
        (check(&no_stream_duration, &spec(Container::Gif))
            .unwrap()
            .video_duration_seconds
            - 1.0)
            .abs()
            < 1e-9
    );
}

/// Matroska clock durations.
#[test]
fn clock_durations() {
    assert_eq!(parse_clock("00:01:03.500000000"), Some(63.5));
    assert_eq!(parse_clock("01:00:00"), Some(3600.0));
    assert_eq!(parse_clock("3.5"), None);
    assert_eq!(parse_seconds("N/A"), None);
    assert_eq!(parse_seconds("-1"), None);
}
