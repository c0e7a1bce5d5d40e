//! The encode step: a job's rendered frames and the project's audio into one verified video file,
//! with the system's `ffmpeg` and `ffprobe` run as supervised processes like aerender (issue 12).
//!
//! # Layout
//! * `spec` — [`EncodeSpec`]: the scenes' frames in play order, frame rate, [`Resolution`],
//!   [`Container`], the audio with local files, the output path; validated once.
//! * `graph` — the filter graph: scenes scaled, padded and concatenated; music, sfx and voiceover
//!   placed, faded, ducked and mixed (the module doc has every rule).
//! * `command` — ffmpeg's argument list (pure) and the codecs of each container.
//! * `progress` — `-progress` reports → [`EncodeProgress`].
//! * `failure` — which input an ffmpeg error is about, so the error names the [`Track`].
//! * `tool` — running ffmpeg or ffprobe as a process tree: lines, cancellation, kill.
//! * `run` — [`encode`]: frames checked, ffmpeg on a temporary name, verified, renamed.
//! * `verify` — ffprobe's report checked against the spec ([`ProbedVideo`]).
//! * `detect` — `-version` of both programs ([`FfmpegVersions`]).
//! * `error` — [`EncodeError`], [`Track`].
//!
//! [`Resolution`]: flatrender_proto::content::Resolution

mod command;
mod detect;
mod error;
mod failure;
mod graph;
mod progress;
mod run;
mod spec;
#[cfg(test)]
mod test_support;
mod tool;
mod verify;

pub use command::{AudioInput, CommandInput, FfmpegCommand, audio_inputs, encode_command};
pub use detect::{FfmpegVersions, ToolVersion, detect, parse_version_line};
pub use error::{EncodeError, EncodeResult, Track, Tracks};
pub use graph::DUCKING;
pub use progress::{EncodeProgress, ProgressParser};
pub use run::{EncodedVideo, encode};
pub use spec::{
    AUDIO_SAMPLE_RATE, AudioMix, Container, EncodeSpec, FrameRate, MAX_FPS, MAX_GIF_FPS, MixedTrack, SceneFrames,
};
pub use tool::FfmpegTools;
pub use verify::{ProbedVideo, verify};
