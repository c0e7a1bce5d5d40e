//! The encode step: a job's rendered frames and the project's audio into one verified video file,
//! with the system's `ffmpeg` and `ffprobe` run as supervised processes like aerender (issue 12).
//!
//! # Layout
//! * `spec` — [`EncodeSpec`]: the scenes' frames in play order, frame rate, [`Resolution`],
//!   [`Container`], the audio with local files, the output path; validated once.
//! * `graph` — the filter graph: scenes scaled, padded and concatenated; music, sfx and voiceover
//!   placed, faded, ducked and mixed (the module doc has every rule).
//! * `command` — ffmpeg's argument list (pure) and the codecs of each container.
//! * `error` — [`EncodeError`], [`Track`].
//!
//! [`Resolution`]: flatrender_proto::content::Resolution

mod command;
mod error;
mod graph;
mod spec;
#[cfg(test)]
mod test_support;

pub use command::{AudioInput, CommandInput, FfmpegCommand, audio_inputs, encode_command};
pub use error::{EncodeError, EncodeResult, Track, Tracks};
pub use graph::DUCKING;
pub use spec::{
    AUDIO_SAMPLE_RATE, AudioMix, Container, EncodeSpec, FrameRate, MAX_FPS, MAX_GIF_FPS, MixedTrack, SceneFrames,
};
