//! The encode step: a job's rendered frames and the project's audio into one verified video file,
//! with the system's `ffmpeg` and `ffprobe` run as supervised processes like aerender (issue 12).
//!
//! # Layout
//! * `spec` — [`EncodeSpec`]: the scenes' frames in play order, frame rate, [`Resolution`],
//!   [`Container`], the audio with local files, the output path; validated once.
//! * `error` — [`EncodeError`], [`Track`].
//!
//! [`Resolution`]: flatrender_proto::content::Resolution

mod error;
mod spec;
#[cfg(test)]
mod test_support;

pub use error::{EncodeError, EncodeResult, Track, Tracks};
pub use spec::{
    AUDIO_SAMPLE_RATE, AudioMix, Container, EncodeSpec, FrameRate, MAX_FPS, MAX_GIF_FPS, MixedTrack, SceneFrames,
};
