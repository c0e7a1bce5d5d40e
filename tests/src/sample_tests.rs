//! The sample project: frames split, template and scenes the control plane's own validation
//! accepts, audio placed inside every video length, and the generated audio (real ffmpeg)
//! served with the BLAKE3 and size it is published with.

use flatrender_proto::content::{ProjectAudio, fields_from_wire};

use super::*;

/// Frames are shared out without loss, larger parts first, none empty while there are enough.
#[test]
fn frames_are_split_evenly() {
    assert_eq!(split_frames(250, 2), [125, 125]);
    assert_eq!(split_frames(41, 2), [21, 20]);
    assert_eq!(split_frames(10, 4), [3, 3, 2, 2]);
    assert_eq!(split_frames(7, 0), [7]);
    for (total, parts) in [(2, 2), (99, 4), (400, 4), (5, 5)] {
        let split = split_frames(total, parts);
        assert_eq!(split.iter().sum::<u32>(), total);
        assert!(split.iter().all(|frames| *frames > 0), "{split:?}");
    }
}

/// Two scenes are an intro and an outro; four have four compositions; each has its look.
#[test]
fn scenes_have_their_compositions_and_colours() {
    let two = scenes(2, 40);
    let names: Vec<&str> = two.iter().map(|scene| scene.composition.as_str()).collect();
    assert_eq!(names, ["Intro", "Outro"]);
    assert_ne!(two[0].colour, two[1].colour);
    let four = scenes(4, 400);
    let names: Vec<&str> = four.iter().map(|scene| scene.composition.as_str()).collect();
    assert_eq!(names, ["Intro", "Feature", "Offer", "Outro"]);
    assert_eq!(four.iter().map(|scene| scene.frames).sum::<u32>(), 400);
}

/// Each composition is described once, as long as its longest scene, with both layers.
#[test]
fn template_describes_each_composition_once() {
    let mut five = scenes(5, 50);
    five[3].frames = 30;
    let text = String::from_utf8(template(&five, 320, 180)).unwrap();
    assert_eq!(text.matches("comp \"Intro\"").count(), 1, "{text}");
    assert!(
        text.contains("comp \"Intro\" fps=25 frames=30 start=0 width=320 height=180\n"),
        "{text}"
    );
    for name in ["Intro", "Feature", "Offer", "Outro"] {
        assert!(
            text.contains(&format!("layer \"{name}\" \"Title\" type=text\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("layer \"{name}\" \"Background\" type=solid\n")),
            "{text}"
        );
    }
}

/// The wire scenes pass the control plane's field validation and cover their frames.
#[test]
fn wire_scenes_are_valid() {
    let sample = scenes(2, 41);
    let wire = wire_scenes(&sample);
    for (index, (scene, wire)) in sample.iter().zip(&wire).enumerate() {
        let fields = fields_from_wire(&wire.fields, &format!("scenes[{index}]")).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(wire.composition, scene.composition);
        let range = wire.frame_range.unwrap();
        assert_eq!((range.start, range.end), (0, i32::try_from(scene.frames).unwrap() - 1));
    }
}

fn fake_asset(name: &str) -> pb::Asset {
    pb::Asset {
        url: format!("http://127.0.0.1:9/audio/{name}"),
        blake3_hex: blake3::hash(name.as_bytes()).to_hex().to_string(),
        size_bytes: 1000,
        file_name: String::new(),
    }
}

/// Whatever the video's length (two frames to ten minutes), the audio passes the control
/// plane's validation: every track starts before the end.
#[test]
fn project_audio_fits_every_video_length() {
    let published = PublishedAudio {
        music: fake_asset("music.mp3"),
        sfx: [fake_asset("a.wav"), fake_asset("b.wav")],
        voiceover: fake_asset("voice.wav"),
    };
    for frames in [2, 3, 25, 40, 250, 15_000] {
        let length = video_ms(frames);
        let audio = project_audio(&published, length);
        let checked = ProjectAudio::from_wire(&audio, f64::from(length), "audio")
            .unwrap_or_else(|error| panic!("{frames} frames: {error}"));
        assert!(checked.music.is_some() && checked.voiceover.is_some());
        assert_eq!(checked.sfx.len(), 2);
    }
    assert_eq!(video_ms(250), 10_000);
}

/// ffprobe's (codec, channels, duration in seconds) of the first audio stream of `path`.
fn probe_audio(path: &Path) -> (String, u64, f64) {
    let output = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let stream = &json["streams"][0];
    assert_eq!(stream["codec_type"], "audio");
    (
        stream["codec_name"].as_str().unwrap().to_owned(),
        stream["channels"].as_u64().unwrap(),
        json["format"]["duration"].as_str().unwrap().parse().unwrap(),
    )
}

/// The generated files are the audio they claim to be, and the server hands out exactly the
/// published bytes (BLAKE3 and size as in the assets).
#[tokio::test]
async fn generated_audio_is_served_as_published() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate_audio(&dir.path().join("audio")).await.unwrap();
    let (codec, channels, seconds) = probe_audio(&files.music);
    assert_eq!((codec.as_str(), channels), ("mp3", 2));
    assert!((seconds - 8.0).abs() < 0.1, "music lasts {seconds} s");
    let (codec, channels, seconds) = probe_audio(&files.voiceover);
    assert_eq!((codec.as_str(), channels), ("pcm_s16le", 1));
    assert!((seconds - 8.0).abs() < 0.01, "voiceover lasts {seconds} s");
    for (sfx, expected) in files.sfx.iter().zip([0.8, 0.6]) {
        let (codec, _, seconds) = probe_audio(sfx);
        assert_eq!(codec, "pcm_s16le");
        assert!((seconds - expected).abs() < 0.01, "{} lasts {seconds} s", sfx.display());
    }

    let server = TemplateServer::start().await;
    let published = publish_audio(&server, "quickstart-audio", &files).unwrap();
    let assets = [
        (&published.music, &files.music),
        (&published.sfx[0], &files.sfx[0]),
        (&published.sfx[1], &files.sfx[1]),
        (&published.voiceover, &files.voiceover),
    ];
    for (asset, path) in assets {
        let (status, body) = crate::http_get_bytes(&asset.url).await.unwrap();
        assert_eq!(status, 200, "{}", asset.url);
        assert_eq!(body, std::fs::read(path).unwrap(), "{}", asset.url);
        assert_eq!(blake3::hash(&body).to_hex().as_str(), asset.blake3_hex);
        assert_eq!(i64::try_from(body.len()).unwrap(), asset.size_bytes);
        flatrender_proto::content::Asset::from_wire(asset, "asset").unwrap();
    }
}
