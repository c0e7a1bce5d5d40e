//! The sample job as submitted: a two-scene project the control plane's validation accepts,
//! whose template and audio are served exactly as published.

use flatrender_proto::content::{ProjectAudio, fields_from_wire};

use super::*;
use crate::http_get_bytes;

/// The served bytes of `url` match the BLAKE3 and size given for them.
async fn assert_served(url: &str, blake3_hex: &str, size_bytes: i64) -> Vec<u8> {
    let (status, body) = http_get_bytes(url).await.unwrap_or_else(|| panic!("{url} answers"));
    assert_eq!(status, 200, "{url}");
    assert_eq!(blake3::hash(&body).to_hex().as_str(), blake3_hex, "{url}");
    assert_eq!(i64::try_from(body.len()).unwrap(), size_bytes, "{url}");
    body
}

/// 41 frames make an Intro of 21 and an Outro of 20 frames, with text and colour fields, an
/// MP4 at 720p, and music, two cues and a voiceover, all fetchable as described.
#[tokio::test]
async fn the_sample_job_is_a_served_two_scene_project_with_audio() {
    let server = TemplateServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let job = prepare(&server, dir.path(), 41).await.unwrap();
    let request = &job.request;
    assert_eq!(job.total_frames(), 41);
    assert!((job.duration_seconds() - 1.64).abs() < 1e-9);
    assert!(request.composition.is_empty() && request.frame_range.is_none());
    assert_eq!(request.fps, 25.0);
    let output = request.output.as_ref().unwrap();
    assert_eq!(output.container, "mp4");
    assert_eq!(output.resolution(), pb::Resolution::Resolution720p);
    assert_eq!(request.kind(), pb::JobKind::Export);

    assert_eq!(request.scenes.len(), 2);
    let expected = [("Intro", 20), ("Outro", 19)];
    for (index, (scene, (composition, last))) in request.scenes.iter().zip(expected).enumerate() {
        assert_eq!(scene.composition, composition);
        assert_eq!(scene.frame_range, Some(pb::FrameRange { start: 0, end: last }));
        let fields = fields_from_wire(&scene.fields, &format!("scenes[{index}]")).unwrap();
        let kinds: Vec<&str> = scene
            .fields
            .iter()
            .map(|field| flatrender_proto::content::wire_kind(field.value.as_ref().unwrap()))
            .collect();
        assert_eq!(kinds, ["text", "color"]);
        assert_eq!(fields.len(), 2);
    }

    let template = request.template.as_ref().unwrap();
    let bytes = assert_served(&template.download_url, &template.blake3_hex, template.size_bytes).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("comp \"Intro\" fps=25 frames=21 "), "{text}");
    assert!(text.contains("comp \"Outro\" fps=25 frames=20 "), "{text}");

    let audio = request.audio.as_ref().unwrap();
    assert!(request.has_voiceover, "the API wants has_voiceover with a voiceover");
    let checked = ProjectAudio::from_wire(audio, 1640.0, "audio").unwrap();
    assert!(checked.music.as_ref().unwrap().looped);
    assert!(checked.voiceover.as_ref().unwrap().duck_music);
    assert_eq!(checked.sfx.len(), 2);
    let assets = [
        audio.music.as_ref().and_then(|music| music.file.as_ref()),
        audio.sfx[0].file.as_ref(),
        audio.sfx[1].file.as_ref(),
        audio.voiceover.as_ref().and_then(|voice| voice.file.as_ref()),
    ];
    for asset in assets {
        let asset = asset.unwrap();
        assert_served(&asset.url, &asset.blake3_hex, asset.size_bytes).await;
    }
}
