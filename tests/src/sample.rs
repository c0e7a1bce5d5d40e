//! The sample saved project of the quickstart and the scaling benchmark: a template the aerender
//! double understands (one composition per scene name, each with a text layer `Title` and a
//! solid `Background`), scenes whose text and colour fields fill those layers (the double paints
//! every frame with the colour, docs/content.md), and the project's audio as test files ffmpeg
//! generates (music, two sound effects, a voiceover), served from a [`TemplateServer`] with
//! their BLAKE3 and size as a backend would.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use flatrender_proto::pb::{self, field_value::Value};

use crate::TemplateServer;

/// The frame rate of the sample project.
pub const SAMPLE_FPS: u32 = 25;
/// The text layer of every sample composition.
pub const TITLE_LAYER: &str = "Title";
/// The solid layer of every sample composition.
pub const BACKGROUND_LAYER: &str = "Background";

/// Scene names and colours, in turn.
const LOOKS: [(&str, &str, &str); 4] = [
    ("Intro", "#FF8000", "FlatRender"),
    ("Feature", "#1F6FEB", "Scenes render in parallel"),
    ("Offer", "#2DA44E", "Mixed with music and voice"),
    ("Outro", "#8250DF", "Encoded once, verified"),
];

/// One scene of the sample project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleScene {
    /// Its composition (also its name).
    pub composition: String,
    /// How many frames it lasts.
    pub frames: u32,
    /// The text field's value.
    pub title: String,
    /// The colour field's value (`#RRGGBB`).
    pub colour: String,
}

/// `count` scenes sharing `total_frames` (the first ones get one more when it does not divide);
/// the first is `Intro`, the last `Outro` when there are two or more.
pub fn scenes(count: usize, total_frames: u32) -> Vec<SampleScene> {
    let parts = u32::try_from(count).unwrap_or(u32::MAX);
    split_frames(total_frames, parts)
        .into_iter()
        .enumerate()
        .map(|(index, frames)| {
            let look = if count >= 2 && index == count - 1 {
                LOOKS[LOOKS.len() - 1]
            } else {
                LOOKS[index % (LOOKS.len() - 1)]
            };
            let (composition, colour, title) = look;
            // A composition used twice is the same composition with other values.
            SampleScene {
                composition: composition.to_owned(),
                frames,
                title: title.to_owned(),
                colour: colour.to_owned(),
            }
        })
        .collect()
}

/// `total` frames in `parts` near-equal parts, larger ones first; none is empty as long as
/// `total >= parts`.
pub fn split_frames(total: u32, parts: u32) -> Vec<u32> {
    let parts = parts.max(1);
    (0..parts)
        .map(|index| total / parts + u32::from(index < total % parts))
        .collect()
}

/// The template: one composition per distinct scene composition, as long as its longest scene,
/// of `width`x`height`, with the two layers the fields fill.
pub fn template(scenes: &[SampleScene], width: u32, height: u32) -> Vec<u8> {
    let mut text = String::from("# FlatRender sample project (read by the aerender test double)\n");
    let mut described: Vec<&str> = Vec::new();
    for scene in scenes {
        if described.contains(&scene.composition.as_str()) {
            continue;
        }
        described.push(&scene.composition);
        let frames = scenes
            .iter()
            .filter(|other| other.composition == scene.composition)
            .map(|other| other.frames)
            .max()
            .unwrap_or(scene.frames);
        let name = &scene.composition;
        text.push_str(&format!(
            "comp \"{name}\" fps={SAMPLE_FPS} frames={frames} start=0 width={width} height={height}\n\
             layer \"{name}\" \"{TITLE_LAYER}\" type=text\n\
             layer \"{name}\" \"{BACKGROUND_LAYER}\" type=solid\n"
        ));
    }
    text.into_bytes()
}

/// The scenes as `SubmitRenderJobRequest.scenes`: each from its composition's frame 0, with its
/// title and colour.
pub fn wire_scenes(scenes: &[SampleScene]) -> Vec<pb::Scene> {
    scenes
        .iter()
        .map(|scene| pb::Scene {
            scene_id: uuid::Uuid::new_v4().to_string(),
            composition: scene.composition.clone(),
            frame_range: Some(pb::FrameRange {
                start: 0,
                end: i32::try_from(scene.frames).unwrap_or(i32::MAX) - 1,
            }),
            fields: vec![
                field("title", TITLE_LAYER, Value::Text(scene.title.clone())),
                field("background", BACKGROUND_LAYER, Value::Color(scene.colour.clone())),
            ],
        })
        .collect()
}

fn field(key: &str, layer: &str, value: Value) -> pb::FieldValue {
    pb::FieldValue {
        key: key.into(),
        layer_name: layer.into(),
        property: String::new(),
        value: Some(value),
    }
}

/// The length of `frames` frames at [`SAMPLE_FPS`] in whole milliseconds (rounded down).
pub fn video_ms(frames: u32) -> u32 {
    u32::try_from(u64::from(frames) * 1000 / u64::from(SAMPLE_FPS)).unwrap_or(u32::MAX)
}

/// The generated audio files.
#[derive(Clone, Debug)]
pub struct AudioFiles {
    /// Eight seconds of a two-note chord (MP3, stereo): looped under longer videos.
    pub music: PathBuf,
    /// A burst of pink noise and a chime (WAV).
    pub sfx: [PathBuf; 2],
    /// Eight seconds of a low tone pulsing three times a second, like speech (WAV, mono).
    pub voiceover: PathBuf,
}

/// Generates the audio files in `dir` with ffmpeg's `aevalsrc`, `anoisesrc` and `sine` sources.
pub async fn generate_audio(dir: &Path) -> anyhow::Result<AudioFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let files = AudioFiles {
        music: dir.join("music.mp3"),
        sfx: [dir.join("sfx-whoosh.wav"), dir.join("sfx-chime.wav")],
        voiceover: dir.join("voiceover.wav"),
    };
    let chord = "aevalsrc=exprs=0.2*sin(2*PI*220*t)+0.1*sin(2*PI*330*t)\
                 |0.2*sin(2*PI*277*t)+0.1*sin(2*PI*440*t):s=44100:d=8";
    ffmpeg(
        &["-f", "lavfi", "-i", chord, "-c:a", "libmp3lame", "-b:a", "160k"],
        &files.music,
    )
    .await?;
    let whoosh = "anoisesrc=color=pink:amplitude=0.4:duration=0.8:sample_rate=48000";
    let whoosh_shape = "afade=t=in:d=0.3,afade=t=out:st=0.3:d=0.5";
    ffmpeg(&["-f", "lavfi", "-i", whoosh, "-af", whoosh_shape], &files.sfx[0]).await?;
    let chime = "sine=frequency=1320:duration=0.6:sample_rate=44100";
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            chime,
            "-af",
            "afade=t=out:st=0.1:d=0.5",
            "-ac",
            "2",
        ],
        &files.sfx[1],
    )
    .await?;
    let voice = "aevalsrc=exprs=0.3*sin(2*PI*180*t)*max(0\\,sin(2*PI*3*t)):s=22050:d=8";
    ffmpeg(&["-f", "lavfi", "-i", voice], &files.voiceover).await?;
    Ok(files)
}

/// Runs ffmpeg quietly with `args` then `output`; fails with its message.
async fn ffmpeg(args: &[&str], output: &Path) -> anyhow::Result<()> {
    let finished = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .arg(output)
        .stdin(Stdio::null())
        .output()
        .await
        .context("run ffmpeg to make the test audio (scripts/setup.sh installs it)")?;
    anyhow::ensure!(
        finished.status.success(),
        "ffmpeg could not make {}: {}",
        output.display(),
        String::from_utf8_lossy(&finished.stderr).trim()
    );
    Ok(())
}

/// The audio files as assets on a server.
#[derive(Clone, Debug)]
pub struct PublishedAudio {
    /// The music.
    pub music: pb::Asset,
    /// The two sound effects.
    pub sfx: [pb::Asset; 2],
    /// The voiceover.
    pub voiceover: pb::Asset,
}

/// Publishes `files` on `server` under `prefix/`: URL, BLAKE3 and size of each.
pub fn publish_audio(server: &TemplateServer, prefix: &str, files: &AudioFiles) -> anyhow::Result<PublishedAudio> {
    let publish = |path: &Path| -> anyhow::Result<pb::Asset> {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("{} has no UTF-8 file name", path.display()))?;
        let (url, blake3_hex, size_bytes) = server.publish(&format!("{prefix}/{name}"), bytes);
        Ok(pb::Asset {
            url,
            blake3_hex,
            size_bytes,
            file_name: String::new(),
        })
    };
    Ok(PublishedAudio {
        music: publish(&files.music)?,
        sfx: [publish(&files.sfx[0])?, publish(&files.sfx[1])?],
        voiceover: publish(&files.voiceover)?,
    })
}

/// Puts `audio` on `request`, with `has_voiceover` as the API requires (true exactly when a
/// voiceover is given).
pub fn set_audio(request: &mut pb::SubmitRenderJobRequest, audio: pb::ProjectAudio) {
    request.has_voiceover = audio.voiceover.is_some();
    request.audio = Some(audio);
}

/// The project's audio on a video of `video_ms`: music from the start, looped, faded in and out,
/// at 0.6; the noise burst at a quarter and the chime at 70% of the video, under a master sfx
/// volume of 0.9; the voiceover from 15% for half the video, ducking the music. Every start
/// falls before the video's end, whatever its length.
pub fn project_audio(published: &PublishedAudio, video_ms: u32) -> pb::ProjectAudio {
    let at = |percent: u64| i32::try_from(u64::from(video_ms) * percent / 100).unwrap_or(i32::MAX);
    pb::ProjectAudio {
        music: Some(pb::Music {
            file: Some(published.music.clone()),
            start_ms: 0,
            fade_in_ms: at(10).min(1000),
            fade_out_ms: at(20).min(2000),
            r#loop: Some(true),
            volume: Some(0.6),
        }),
        sfx: vec![
            pb::SoundEffect {
                file: Some(published.sfx[0].clone()),
                start_ms: at(25),
                volume: Some(0.8),
                label: "whoosh".into(),
            },
            pb::SoundEffect {
                file: Some(published.sfx[1].clone()),
                start_ms: at(70),
                volume: Some(1.0),
                label: "chime".into(),
            },
        ],
        sfx_volume: Some(0.9),
        voiceover: Some(pb::Voiceover {
            file: Some(published.voiceover.clone()),
            source: pb::VoiceoverSource::Upload.into(),
            start_ms: at(15),
            duration_ms: at(50).max(1),
            volume: Some(1.0),
            duck_music: Some(true),
        }),
    }
}

#[cfg(test)]
#[path = "sample_tests.rs"]
mod tests;
