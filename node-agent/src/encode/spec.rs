//! What to encode ([`EncodeSpec`]): the scenes' frame sequences in play order, the frame rate,
//! the delivered [`Resolution`], the [`Container`], the project's audio with each asset's local
//! file, and where the video goes. Validated once, in [`EncodeSpec::new`] and
//! [`EncodeSpec::with_audio`]; the command builder never sees an invalid spec.
//!
//! The video lasts exactly `total frames / fps`: the audio is cut or padded to that length.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flatrender_proto::content::{Music, ProjectAudio, Resolution, SoundEffect, Voiceover};
use flatrender_proto::types::{ContentHash, Volume};

use super::error::{EncodeError, EncodeResult, Track};
use crate::supervisor::FramePattern;

/// The audio sample rate of every encode (Opus only knows 48 kHz; one rate for all formats).
pub const AUDIO_SAMPLE_RATE: u32 = 48_000;
/// The highest frame rate of a GIF: its delays are in hundredths of a second and browsers slow
/// down frames shorter than 2/100 s, so faster compositions are sampled down to 50 fps.
pub const MAX_GIF_FPS: u32 = 50;
/// The highest frame rate accepted (After Effects' own limit is 999).
pub const MAX_FPS: f64 = 999.0;

/// The delivered file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// MPEG-4: H.264 (`yuv420p`) and AAC, `+faststart`; plays everywhere.
    Mp4,
    /// QuickTime: ProRes 422 (10-bit 4:2:2, intra-only) and 16-bit PCM, for editing (see
    /// `command`).
    Mov,
    /// WebM: VP9 (`yuv420p`) and Opus.
    Webm,
    /// GIF: a palette generated from the video itself, no audio.
    Gif,
}

impl Container {
    /// From the job's `output.container` (`mp4`, `mov`, `webm`, `gif`); `None` for anything else
    /// (`png_sequence` is not encoded).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "mp4" => Some(Self::Mp4),
            "mov" => Some(Self::Mov),
            "webm" => Some(Self::Webm),
            "gif" => Some(Self::Gif),
            _ => None,
        }
    }

    /// The name, which is also the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Mov => "mov",
            Self::Webm => "webm",
            Self::Gif => "gif",
        }
    }

    /// Whether the file carries an audio stream. Every container but GIF always has one, silent
    /// when the project has no audio: players, editors and upload pipelines handle a constant
    /// stream layout best.
    pub fn has_audio(self) -> bool {
        !matches!(self, Self::Gif)
    }
}

/// A frame rate as an exact fraction (`30000/1001` for 29.97), so durations and ffmpeg's
/// timestamps agree to the sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    numerator: u32,
    denominator: u32,
}

impl FrameRate {
    /// `numerator / denominator` frames per second, reduced; `None` for zero or above
    /// [`MAX_FPS`].
    pub fn new(numerator: u32, denominator: u32) -> Option<Self> {
        if numerator == 0 || denominator == 0 || f64::from(numerator) / f64::from(denominator) > MAX_FPS {
            return None;
        }
        let divisor = gcd(numerator, denominator);
        Some(Self {
            numerator: numerator / divisor,
            denominator: denominator / divisor,
        })
    }

    /// The job's `fps`: the NTSC rates (23.976, 29.97, 59.94, … given to three decimals or more)
    /// become `N*1000/1001`, anything else is read to a thousandth (12.5 → 25/2).
    pub fn from_fps(fps: f64) -> Option<Self> {
        if !fps.is_finite() || fps <= 0.0 || fps > MAX_FPS {
            return None;
        }
        let ntsc_base = (fps * 1.001).round();
        if fps.fract() != 0.0 && ntsc_base >= 1.0 && (ntsc_base * 1000.0 / 1001.0 - fps).abs() < 0.0005 {
            // ntsc_base <= 1000.0 here, so the cast is exact.
            return Self::new(ntsc_base as u32 * 1000, 1001);
        }
        let thousandths = (fps * 1000.0).round();
        if thousandths < 1.0 {
            return None;
        }
        Self::new(thousandths as u32, 1000)
    }

    /// The numerator (frames).
    pub fn numerator(self) -> u32 {
        self.numerator
    }

    /// The denominator (seconds).
    pub fn denominator(self) -> u32 {
        self.denominator
    }

    /// Frames per second as a float.
    pub fn as_f64(self) -> f64 {
        f64::from(self.numerator) / f64::from(self.denominator)
    }

    /// How ffmpeg reads it (`25`, `30000/1001`).
    pub fn to_ffmpeg(self) -> String {
        if self.denominator == 1 {
            self.numerator.to_string()
        } else {
            format!("{}/{}", self.numerator, self.denominator)
        }
    }

    /// The length of `frames` frames in seconds.
    pub fn seconds(self, frames: u64) -> f64 {
        frames as f64 * f64::from(self.denominator) / f64::from(self.numerator)
    }

    /// The number of audio samples at [`AUDIO_SAMPLE_RATE`] that `frames` frames last, rounded
    /// to the nearest sample.
    pub fn samples(self, frames: u64) -> u64 {
        let numerator = u128::from(frames) * u128::from(AUDIO_SAMPLE_RATE) * u128::from(self.denominator);
        let denominator = u128::from(self.numerator);
        u64::try_from((numerator + denominator / 2) / denominator).unwrap_or(u64::MAX)
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One scene's rendered frames: `dir/<pattern>` for `num_frames` frames from `first_frame`, in
/// the scene composition's numbering (`<output_root>/<job id>/scene-000/out_00000.png`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SceneFrames {
    /// The folder that holds them (absolute).
    pub dir: PathBuf,
    /// The file-name pattern (`out_[#####].png`).
    pub pattern: FramePattern,
    /// The number of the scene's first frame.
    pub first_frame: i32,
    /// How many frames the scene has (at least one).
    pub num_frames: u32,
}

impl SceneFrames {
    /// The file of frame `frame`.
    pub fn frame_path(&self, frame: i32) -> PathBuf {
        self.dir.join(self.pattern.file_name(frame))
    }

    /// The scene's frame numbers in order.
    pub fn frames(&self) -> impl Iterator<Item = i32> + use<> {
        let first = i64::from(self.first_frame);
        (first..first + i64::from(self.num_frames)).filter_map(|frame| i32::try_from(frame).ok())
    }
}

/// A track of the mix and the local file it plays.
#[derive(Clone, Debug, PartialEq)]
pub struct MixedTrack<T> {
    /// The project's settings for it.
    pub settings: T,
    /// The asset's file on this node (absolute).
    pub file: PathBuf,
}

/// The project's audio resolved to local files; at least one track.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioMix {
    /// Background music.
    pub music: Option<MixedTrack<Music>>,
    /// The voiceover.
    pub voiceover: Option<MixedTrack<Voiceover>>,
    /// Sound-effect cues, in the project's order (`sfx[i]`).
    pub sfx: Vec<MixedTrack<SoundEffect>>,
    /// The cues' master gain.
    pub sfx_volume: Volume,
}

/// A validated encode: see the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeSpec {
    scenes: Vec<SceneFrames>,
    frame_rate: FrameRate,
    resolution: Resolution,
    container: Container,
    audio: Option<AudioMix>,
    output: PathBuf,
}

impl EncodeSpec {
    /// A spec without audio (every container but GIF still gets a silent audio stream). Scenes
    /// are in play order; `fps` is the job's. Errors name the field.
    pub fn new(
        scenes: Vec<SceneFrames>,
        fps: f64,
        resolution: Resolution,
        container: Container,
        output: PathBuf,
    ) -> EncodeResult<Self> {
        if scenes.is_empty() {
            return Err(EncodeError::invalid_spec("scenes", "must have at least one scene"));
        }
        for (index, scene) in scenes.iter().enumerate() {
            let field = format!("scenes[{index}]");
            require_absolute(&scene.dir, &format!("{field}.dir"))?;
            if scene.dir.to_str().is_none() {
                // ffmpeg's image2 pattern is text with `%` escaped.
                return Err(EncodeError::invalid_spec(format!("{field}.dir"), "must be valid UTF-8"));
            }
            if scene.num_frames == 0 {
                return Err(EncodeError::invalid_spec(
                    format!("{field}.num_frames"),
                    "must be at least 1",
                ));
            }
            let last = i64::from(scene.first_frame) + i64::from(scene.num_frames) - 1;
            if i32::try_from(last).is_err() {
                return Err(EncodeError::invalid_spec(
                    format!("{field}.num_frames"),
                    "the last frame number must fit in 32 bits",
                ));
            }
        }
        let frame_rate = FrameRate::from_fps(fps)
            .ok_or_else(|| EncodeError::invalid_spec("fps", format!("must be above 0 and at most {MAX_FPS}")))?;
        require_absolute(&output, "output")?;
        if output.file_name().is_none() {
            return Err(EncodeError::invalid_spec("output", "must name a file"));
        }
        Ok(Self {
            scenes,
            frame_rate,
            resolution,
            container,
            audio: None,
            output,
        })
    }

    /// Adds the project's audio; `files` maps each asset's BLAKE3 to its local file (from the
    /// asset cache). A start at or after the video's end fails naming the track (the control
    /// plane validates this too; this catches what slipped past). A GIF has no audio: the audio is
    /// not mixed at all.
    pub fn with_audio(mut self, audio: &ProjectAudio, files: &HashMap<ContentHash, PathBuf>) -> EncodeResult<Self> {
        if !self.container.has_audio() {
            return Ok(self);
        }
        let video_ms = self.duration_seconds() * 1000.0;
        let resolve = |track: Track, field: &str, start_ms: u32, hash: &ContentHash| -> EncodeResult<PathBuf> {
            if f64::from(start_ms) >= video_ms {
                return Err(EncodeError::input(
                    track,
                    format!(
                        "starts at {start_ms} ms, at or after the end of the video ({} ms)",
                        video_ms.floor()
                    ),
                ));
            }
            let file = files.get(hash).ok_or_else(|| {
                EncodeError::invalid_spec(format!("{field}.file"), format!("no local file for asset {hash}"))
            })?;
            require_absolute(file, &format!("{field}.file"))?;
            Ok(file.clone())
        };
        let music = audio
            .music
            .as_ref()
            .map(|music| {
                let file = resolve(Track::Music, "audio.music", music.start_ms, &music.file.hash)?;
                Ok::<_, EncodeError>(MixedTrack {
                    settings: music.clone(),
                    file,
                })
            })
            .transpose()?;
        let voiceover = audio
            .voiceover
            .as_ref()
            .map(|voice| {
                let file = resolve(Track::Voiceover, "audio.voiceover", voice.start_ms, &voice.file.hash)?;
                Ok::<_, EncodeError>(MixedTrack {
                    settings: voice.clone(),
                    file,
                })
            })
            .transpose()?;
        let sfx = audio
            .sfx
            .iter()
            .enumerate()
            .map(|(index, cue)| {
                let field = format!("audio.sfx[{index}]");
                let file = resolve(Track::SoundEffect(index), &field, cue.start_ms, &cue.file.hash)?;
                Ok(MixedTrack {
                    settings: cue.clone(),
                    file,
                })
            })
            .collect::<EncodeResult<Vec<_>>>()?;
        let has_tracks = music.is_some() || voiceover.is_some() || !sfx.is_empty();
        self.audio = has_tracks.then_some(AudioMix {
            music,
            voiceover,
            sfx,
            sfx_volume: audio.sfx_volume,
        });
        Ok(self)
    }

    /// The scenes in play order.
    pub fn scenes(&self) -> &[SceneFrames] {
        &self.scenes
    }

    /// The frame rate of the frames.
    pub fn frame_rate(&self) -> FrameRate {
        self.frame_rate
    }

    /// The frame rate of the encoded video: the frames' own, except a GIF above
    /// [`MAX_GIF_FPS`].
    pub fn output_frame_rate(&self) -> FrameRate {
        match self.container {
            Container::Gif if self.frame_rate.as_f64() > f64::from(MAX_GIF_FPS) => FrameRate {
                numerator: MAX_GIF_FPS,
                denominator: 1,
            },
            _ => self.frame_rate,
        }
    }

    /// The delivered size.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// The format.
    pub fn container(&self) -> Container {
        self.container
    }

    /// The audio to mix, if the project has any (and the container carries audio).
    pub fn audio(&self) -> Option<&AudioMix> {
        self.audio.as_ref()
    }

    /// Where the verified video goes.
    pub fn output(&self) -> &Path {
        &self.output
    }

    /// Frames of all scenes.
    pub fn total_frames(&self) -> u64 {
        self.scenes.iter().map(|scene| u64::from(scene.num_frames)).sum()
    }

    /// The video's length: total frames / fps.
    pub fn duration_seconds(&self) -> f64 {
        self.frame_rate.seconds(self.total_frames())
    }

    /// The video's length in audio samples at [`AUDIO_SAMPLE_RATE`].
    pub fn duration_samples(&self) -> u64 {
        self.frame_rate.samples(self.total_frames())
    }

    /// How many frames the encoded video has (fewer than the scenes' for a GIF sampled down).
    pub fn output_frames(&self) -> u64 {
        let output_rate = self.output_frame_rate();
        if output_rate == self.frame_rate {
            return self.total_frames();
        }
        (self.duration_seconds() * output_rate.as_f64()).round() as u64
    }
}

fn require_absolute(path: &Path, field: &str) -> EncodeResult<()> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(EncodeError::invalid_spec(
            field,
            format!("must be an absolute path, not {path:?}"),
        ))
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
