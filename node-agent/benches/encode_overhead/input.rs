//! The benchmark's input, made once by ffmpeg itself: each scene a PNG sequence at the delivery
//! size from a different lavfi source (moving test patterns, bars with a hue turn, gradients:
//! detail and motion a motion-graphics render has), and the project's audio as the files a user
//! uploads: looped MP3 music, two WAV sound effects (pink noise, a chime) and a mono MP3
//! voiceover whose level pulses like speech.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use flatrender_node_agent::encode::SceneFrames;
use flatrender_node_agent::supervisor::FramePattern;
use flatrender_proto::content::ProjectAudio;
use flatrender_proto::pb;
use flatrender_proto::types::ContentHash;

/// The frame rate of every scene.
pub const FPS: u32 = 25;

/// The lavfi sources of the scenes, in turn (`{size}` is the frame size).
const SCENE_SOURCES: [&str; 4] = [
    "testsrc2=size={size}:rate=25",
    "testsrc=size={size}:rate=25",
    "smptehdbars=size={size}:rate=25,hue=H=2*PI*t/4",
    "gradients=size={size}:rate=25:speed=0.02",
];

/// The generated frames and audio.
pub struct Input {
    /// The scenes in play order.
    pub scenes: Vec<SceneFrames>,
    /// The project's audio, validated as the control plane validates a submission.
    pub audio: ProjectAudio,
    /// Each asset's BLAKE3 → its file (the agent's asset cache does this mapping).
    pub files: HashMap<ContentHash, PathBuf>,
    /// Bytes of all frame files.
    pub frame_bytes: u64,
}

/// Runs ffmpeg quietly with `args`; fails with its stderr.
pub async fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("run ffmpeg (scripts/setup.sh installs it)")?;
    anyhow::ensure!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Makes `num_scenes` scenes of `frames_per_scene` frames of `width`x`height` and the audio
/// for their total length under `dir`.
pub async fn generate(
    dir: &Path,
    num_scenes: u32,
    frames_per_scene: u32,
    (width, height): (u32, u32),
) -> anyhow::Result<Input> {
    let size = format!("{width}x{height}");
    let mut scenes = Vec::new();
    let mut frame_bytes = 0;
    for index in 0..num_scenes {
        let scene_dir = dir.join(format!("scene-{index:03}"));
        std::fs::create_dir_all(&scene_dir).with_context(|| format!("create {}", scene_dir.display()))?;
        let source = SCENE_SOURCES[index as usize % SCENE_SOURCES.len()].replace("{size}", &size);
        let pattern = scene_dir.join("out_%05d.png");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &source,
            "-frames:v",
            &frames_per_scene.to_string(),
            "-pix_fmt",
            "rgb24",
            "-start_number",
            "0",
            path_str(&pattern)?,
        ])
        .await?;
        frame_bytes += folder_bytes(&scene_dir)?;
        scenes.push(SceneFrames {
            dir: scene_dir,
            pattern: FramePattern::parse("out_[#####].png").context("frame pattern")?,
            first_frame: 0,
            num_frames: frames_per_scene,
        });
    }
    let video_ms = f64::from(num_scenes * frames_per_scene) * 1000.0 / f64::from(FPS);
    let (audio, files) = audio(dir, video_ms).await?;
    Ok(Input {
        scenes,
        audio,
        files,
        frame_bytes,
    })
}

/// The four audio files and the project's audio placing them on a video of `video_ms`.
async fn audio(dir: &Path, video_ms: f64) -> anyhow::Result<(ProjectAudio, HashMap<ContentHash, PathBuf>)> {
    // Six seconds of a two-note chord: looped when the video is longer.
    let music = dir.join("music.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=exprs=0.2*sin(2*PI*220*t)+0.1*sin(2*PI*330*t)|0.2*sin(2*PI*277*t)+0.1*sin(2*PI*440*t):s=44100:d=6",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        path_str(&music)?,
    ])
    .await?;
    let whoosh = dir.join("sfx-whoosh.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:amplitude=0.4:duration=0.8:sample_rate=48000",
        "-af",
        "afade=t=in:d=0.3,afade=t=out:st=0.3:d=0.5",
        path_str(&whoosh)?,
    ])
    .await?;
    let chime = dir.join("sfx-chime.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1320:duration=0.6:sample_rate=44100",
        "-af",
        "afade=t=out:st=0.1:d=0.5",
        "-ac",
        "2",
        path_str(&chime)?,
    ])
    .await?;
    // Mono at 22.05 kHz, its level pulsing three times a second with pauses, as speech does.
    let voice = dir.join("voiceover.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=exprs=0.3*sin(2*PI*180*t)*max(0\\,sin(2*PI*3*t)):s=22050:d=8",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "64k",
        path_str(&voice)?,
    ])
    .await?;

    let mut files = HashMap::new();
    let mut asset = |path: &Path| -> anyhow::Result<pb::Asset> {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let hash = blake3::hash(&bytes);
        files.insert(ContentHash::from_bytes(*hash.as_bytes()), path.to_path_buf());
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("audio");
        Ok(pb::Asset {
            url: format!("http://assets.invalid/{name}"),
            blake3_hex: hash.to_hex().to_string(),
            size_bytes: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            file_name: String::new(),
        })
    };
    let at = |fraction: f64| (video_ms * fraction).floor() as i32;
    let wire = pb::ProjectAudio {
        music: Some(pb::Music {
            file: Some(asset(&music)?),
            start_ms: 0,
            fade_in_ms: at(0.1).min(1000),
            fade_out_ms: at(0.15).min(2000),
            r#loop: Some(true),
            volume: Some(0.5),
        }),
        sfx: vec![
            pb::SoundEffect {
                file: Some(asset(&whoosh)?),
                start_ms: at(0.25),
                volume: Some(0.8),
                label: "whoosh".into(),
            },
            pb::SoundEffect {
                file: Some(asset(&chime)?),
                start_ms: at(0.6),
                volume: Some(0.7),
                label: "chime".into(),
            },
        ],
        sfx_volume: Some(0.9),
        voiceover: Some(pb::Voiceover {
            file: Some(asset(&voice)?),
            source: pb::VoiceoverSource::Upload.into(),
            start_ms: at(0.15),
            duration_ms: at(0.6).max(1),
            volume: Some(1.0),
            duck_music: Some(true),
        }),
    };
    let audio = ProjectAudio::from_wire(&wire, video_ms, "audio").map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok((audio, files))
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Total size of the files in `dir`.
fn folder_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}
