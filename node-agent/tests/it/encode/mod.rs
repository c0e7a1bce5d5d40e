//! The encode step against the real `ffmpeg` and `ffprobe` (installed by `scripts/setup.sh`).
//! Every input is made by ffmpeg itself in a temporary folder: solid-colour PNG sequences per
//! scene (64x36, a few dozen frames) and sine tones as WAV, MP3 or Opus files, so the suite stays
//! fast. What comes out is checked by decoding it again, independently of the module's own
//! verification: pixels at known times, tone levels in known windows, ffprobe's streams.
//!
//! Levels are measured per frequency (each track its own tone, Goertzel's algorithm over windows
//! holding a whole number of periods), so one track is measured while others play.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod audio;
mod failures;
mod video;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flatrender_node_agent::encode::{
    Container, EncodeProgress, EncodeResult, EncodeSpec, EncodedVideo, FfmpegTools, SceneFrames, encode,
};
use flatrender_node_agent::supervisor::FramePattern;
use flatrender_proto::content::{Asset, ProjectAudio, Resolution};
use flatrender_proto::types::{ContentHash, HttpUrl, Volume};
use tokio_util::sync::CancellationToken;

use crate::ffmpeg;

/// Generous: only a broken encode takes this long on a loaded two-core machine.
const ENCODE_LIMIT: Duration = Duration::from_secs(300);
/// The frame rate of every test scene.
const FPS: f64 = 25.0;
/// The audio rate the encode writes and the tests decode at.
const RATE: f64 = 48_000.0;

/// A temporary folder for one test's inputs and outputs.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `count` frames of a solid `color` at `size` (`64x36`) as `scene-<name>/out_<n>.png`,
    /// numbered from `first`; the scene uses `num_frames` of them.
    fn scene(&self, name: &str, color: &str, size: &str, first: i32, count: u32, num_frames: u32) -> SceneFrames {
        let dir = self.path(&format!("scene-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pattern = dir.join("out_%05d.png");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("color=c={color}:s={size}:r=25"),
            "-frames:v",
            &count.to_string(),
            "-start_number",
            &first.to_string(),
            pattern.to_str().unwrap(),
        ]);
        SceneFrames {
            dir,
            pattern: FramePattern::parse("out_[#####].png").unwrap(),
            first_frame: first,
            num_frames,
        }
    }

    /// A stereo sine tone of `frequency` Hz for `seconds` (amplitude 1/8 on both channels, about
    /// -18 dBFS) in the format the file name's extension says (`.wav`, `.mp3`, `.opus`), as an
    /// asset whose BLAKE3 is 32 times `id`.
    fn tone(&self, id: u8, name: &str, frequency: u32, seconds: f64) -> (Asset, PathBuf) {
        self.tone_with_channels(id, name, frequency, seconds, 2)
    }

    /// The same tone in a mono file.
    fn mono_tone(&self, id: u8, name: &str, frequency: u32, seconds: f64) -> (Asset, PathBuf) {
        self.tone_with_channels(id, name, frequency, seconds, 1)
    }

    fn tone_with_channels(&self, id: u8, name: &str, frequency: u32, seconds: f64, channels: u8) -> (Asset, PathBuf) {
        let path = self.path(name);
        // `pan` copies the tone to both channels at full level (`-ac 2` would lower each by 3 dB).
        let layout = if channels == 2 { ",pan=stereo|c0=c0|c1=c0" } else { "" };
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={frequency}:duration={seconds}:sample_rate=48000{layout}"),
            path.to_str().unwrap(),
        ]);
        (asset(id, name), path)
    }
}

fn asset(id: u8, name: &str) -> Asset {
    Asset {
        url: HttpUrl::parse(&format!("https://assets.example/{name}"), "url").unwrap(),
        hash: ContentHash::from_bytes([id; 32]),
        size_bytes: 1,
        file_name: name.to_owned(),
    }
}

fn volume(value: f64) -> Volume {
    Volume::new(value, "volume").unwrap()
}

/// An audio description without tracks (to fill in).
fn no_audio() -> ProjectAudio {
    ProjectAudio {
        music: None,
        sfx: vec![],
        sfx_volume: volume(1.0),
        voiceover: None,
    }
}

/// A spec at 480p and 25 fps into `scratch/<name>`, with `audio` (local files from `files`).
fn spec_with(
    scratch: &Scratch,
    scenes: Vec<SceneFrames>,
    container: Container,
    name: &str,
    audio: Option<(&ProjectAudio, &[(Asset, PathBuf)])>,
) -> EncodeSpec {
    let spec = EncodeSpec::new(scenes, FPS, Resolution::P480, container, scratch.path(name)).unwrap();
    match audio {
        None => spec,
        Some((audio, files)) => {
            let files: HashMap<ContentHash, PathBuf> =
                files.iter().map(|(asset, path)| (asset.hash, path.clone())).collect();
            spec.with_audio(audio, &files).unwrap()
        }
    }
}

/// Encodes with the system's tools, collecting the progress reports.
async fn run_encode(spec: &EncodeSpec, tag: &str) -> (EncodeResult<EncodedVideo>, Vec<EncodeProgress>) {
    let mut reports = Vec::new();
    let cancel = CancellationToken::new();
    let result = tokio::time::timeout(
        ENCODE_LIMIT,
        encode(&FfmpegTools::default(), spec, tag, &cancel, &mut |report| {
            reports.push(report)
        }),
    )
    .await
    .expect("the encode did not finish in time");
    (result, reports)
}

/// A process tag unique to this test process and name.
fn tag(name: &str) -> String {
    format!("encode-test-{}-{name}", std::process::id())
}

/// The decoded audio of `path` as interleaved stereo f32 at 48 kHz.
fn decode_audio(path: &Path) -> Vec<f32> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "decoding {path:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .collect()
}

/// The amplitude in dBFS of the `frequency` component of the left channel between `from` and
/// `to` seconds (Goertzel's algorithm; choose windows holding whole periods). -200 for silence.
fn tone_db(samples: &[f32], frequency: f64, from: f64, to: f64) -> f64 {
    let start = (from * RATE) as usize;
    let end = ((to * RATE) as usize).min(samples.len() / 2);
    assert!(
        end > start,
        "window {from}..{to} s is outside the audio ({} samples)",
        samples.len() / 2
    );
    let omega = 2.0 * std::f64::consts::PI * frequency / RATE;
    let coefficient = 2.0 * omega.cos();
    let (mut previous, mut before_previous) = (0.0_f64, 0.0_f64);
    for frame in start..end {
        let current = f64::from(samples[frame * 2]) + coefficient * previous - before_previous;
        before_previous = previous;
        previous = current;
    }
    let power = previous * previous + before_previous * before_previous - coefficient * previous * before_previous;
    let amplitude = 2.0 * power.max(0.0).sqrt() / (end - start) as f64;
    if amplitude <= 1e-10 {
        -200.0
    } else {
        20.0 * amplitude.log10()
    }
}

/// The frame of `path` shown at `seconds`, as RGB24 rows of `width` pixels.
fn frame_at(path: &Path, seconds: f64, width: usize) -> Vec<[u8; 3]> {
    let output = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-ss",
            &format!("{seconds}"),
            "-i",
        ])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout.len() % (width * 3), 0, "not rows of {width} pixels");
    output
        .stdout
        .chunks_exact(3)
        .map(|pixel| [pixel[0], pixel[1], pixel[2]])
        .collect()
}

/// Whether `actual` is `expected` give or take the colour conversions' rounding.
fn looks_like(actual: [u8; 3], expected: [u8; 3]) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(left, right)| (i16::from(*left) - i16::from(right)).abs() <= 24)
}

/// ffprobe's JSON about `path`, read by the test itself.
fn probe(path: &Path) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The files in `dir` (names), sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
