//! The export report against a real MP4 made by ffmpeg (H.264 and AAC, as the encode step makes
//! them): what ffprobe finds, the file checks, and the printed lines.

use super::*;

/// A two-second 320x180 MP4 at 25 fps with a stereo AAC track, at `path`.
fn make_mp4(path: &Path) {
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"])
        .args([
            "-ac", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
        ])
        .args(["-movflags", "+faststart", "-shortest"])
        .arg(path)
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// The export row the control plane would return for `path`.
fn export_of(path: &Path) -> pb::Export {
    let bytes = std::fs::read(path).unwrap();
    pb::Export {
        location: path.display().to_string(),
        format: "mp4".into(),
        width: 320,
        height: 180,
        size_bytes: i64::try_from(bytes.len()).unwrap(),
        blake3_hex: blake3::hash(&bytes).to_hex().to_string(),
        video_codec: "h264".into(),
        audio_codec: "aac".into(),
        ..Default::default()
    }
}

/// ffprobe's view of a real MP4: container, durations, one line per stream with its details.
#[tokio::test]
async fn a_real_mp4_is_probed_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my video.mp4");
    make_mp4(&path);
    let export = export_of(&path);
    check_file(&export).unwrap();
    let probed = probe(&Location::of(&export)).await.unwrap();
    assert!(probed.format_name.split(',').any(|name| name == "mp4"), "{probed:?}");
    assert!(
        (probed.video_duration_seconds.unwrap() - 2.0).abs() < 1e-3,
        "{probed:?}"
    );
    assert!(
        probed.duration_seconds >= 2.0 && probed.duration_seconds < 2.1,
        "{probed:?}"
    );
    assert_eq!(probed.streams.len(), 2, "{probed:?}");
    assert!(
        probed.streams[0].starts_with("#0 video: h264 ("),
        "{}",
        probed.streams[0]
    );
    assert!(
        probed.streams[0].ends_with(", 320x180, yuv420p, 25 fps"),
        "{}",
        probed.streams[0]
    );
    assert!(
        probed.streams[1].starts_with("#1 audio: aac (LC), 48000 Hz, stereo, "),
        "{}",
        probed.streams[1]
    );
    assert!(probed.streams[1].ends_with(" kb/s"), "{}", probed.streams[1]);
    check_duration(&probed, 2.0, 25.0).unwrap();
    check_duration(&probed, 2.04, 25.0).unwrap();
    let error = check_duration(&probed, 2.5, 25.0).unwrap_err().to_string();
    assert_eq!(error, "the video lasts 2.000 s, expected 2.500 s");

    let lines = report_lines(&export, &probed, &["ffplay", "mpv"]);
    let quoted = format!("'{}'", path.display());
    assert_eq!(lines[0], format!("  video    {}", path.display()));
    assert!(
        lines[1].starts_with(&format!("           mp4, 320x180, {:.2} s, ", probed.duration_seconds)),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(&format!("BLAKE3 {}…", &export.blake3_hex[..16])),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], format!("  streams  {}", probed.streams[0]));
    assert_eq!(lines[3], format!("           {}", probed.streams[1]));
    assert_eq!(lines[4], format!("  play it  ffplay -autoexit {quoted}"));
    assert_eq!(
        lines[5],
        format!("           or mpv {quoted}, or open it in a file manager")
    );
    assert_eq!(lines.len(), 6);
}

/// A file that is not the recorded one (size or BLAKE3) fails the check, naming what differs.
#[test]
fn a_file_unlike_its_export_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video.mp4");
    std::fs::write(&path, b"not quite the video").unwrap();
    let export = export_of(&path);
    check_file(&export).unwrap();
    let mut bigger = export.clone();
    bigger.size_bytes += 1;
    assert!(
        check_file(&bigger)
            .unwrap_err()
            .to_string()
            .contains("the export says 20")
    );
    let mut other_hash = export.clone();
    other_hash.blake3_hex = "0".repeat(64);
    assert!(check_file(&other_hash).unwrap_err().to_string().contains("has BLAKE3"));
    std::fs::remove_file(&path).unwrap();
    assert!(check_file(&export).is_err(), "a missing file is refused");
}

/// An uploaded export is played from its URL; without a player the line names some.
#[test]
fn urls_and_missing_players_are_described() {
    let export = pb::Export {
        location: "https://files.example/exports/v.mp4".into(),
        format: "mp4".into(),
        size_bytes: 2_500_000,
        blake3_hex: "ab".repeat(32),
        ..Default::default()
    };
    assert_eq!(Location::of(&export), Location::Url(export.location.clone()));
    check_file(&export).unwrap();
    let probed = Probed {
        format_name: "mp4".into(),
        duration_seconds: 10.0,
        video_duration_seconds: Some(10.0),
        streams: vec!["#0 video: h264".into()],
    };
    let lines = report_lines(&export, &probed, &["mpv"]);
    assert!(
        lines[1].contains(", 10.00 s, 2.5 MB, BLAKE3 abababababababab…"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines.last().unwrap(),
        "  play it  mpv https://files.example/exports/v.mp4"
    );
    let lines = report_lines(&export, &probed, &[]);
    assert!(lines[lines.len() - 2].starts_with("  play it  with any video player: mpv https://"));
}

/// Broken ffprobe output is an error, not an empty report.
#[test]
fn probe_output_must_be_json_with_a_duration() {
    assert!(parse_probe("not json").is_err());
    assert!(parse_probe(r#"{"streams": [], "format": {}}"#).is_err());
    assert_eq!(frame_rate("30000/1001").as_deref(), Some("29.97"));
    assert_eq!(frame_rate("0/0"), None);
}
