//! What can go wrong in an encode, and which input it was: every failure that an input causes
//! names its [`Track`] (`music`, `sfx[2]`, `voiceover`, `scene 1 frames`), so a job fails with a
//! reason a person can act on.

use std::fmt;
use std::path::PathBuf;

/// One input of an encode, as a person names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    /// The frames of the scene at this place in play order (from 0).
    SceneFrames(usize),
    /// The background music.
    Music,
    /// The sound-effect cue at this index of `ProjectAudio::sfx`.
    SoundEffect(usize),
    /// The voiceover.
    Voiceover,
}

impl Track {
    /// Whether the track is one of the user's audio files (as opposed to rendered frames).
    pub fn is_audio(self) -> bool {
        !matches!(self, Self::SceneFrames(_))
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SceneFrames(index) => write!(f, "scene {index} frames"),
            Self::Music => f.write_str("music"),
            Self::SoundEffect(index) => write!(f, "sfx[{index}]"),
            Self::Voiceover => f.write_str("voiceover"),
        }
    }
}

/// Several tracks that share one input file (`sfx[0], sfx[3]`); never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracks(pub Vec<Track>);

impl Tracks {
    /// Whether any of them is an audio track.
    pub fn any_audio(&self) -> bool {
        self.0.iter().any(|track| track.is_audio())
    }
}

impl fmt::Display for Tracks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, track) in self.0.iter().enumerate() {
            if position > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{track}")?;
        }
        Ok(())
    }
}

/// Errors of the encode step; messages say what failed and, for inputs, which track.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The spec is not encodable (a caller's mistake, not the user's content).
    #[error("invalid encode spec: {field}: {reason}")]
    InvalidSpec {
        /// The field of the spec.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input is unusable: an audio file that does not decode, a cue after the video's end, a
    /// missing or undecodable frame.
    #[error("{tracks}: {reason}")]
    Input {
        /// The tracks that use the input.
        tracks: Tracks,
        /// What is wrong, lowercase (ffmpeg's own message where it gave one).
        reason: String,
    },
    /// The ffmpeg or ffprobe program is not there.
    #[error(
        "{tool} not found ({program:?}): install FFmpeg (Debian/Ubuntu: `apt-get install ffmpeg`, as \
         scripts/setup.sh does) or configure the path of `{tool}`"
    )]
    ToolMissing {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// The program that was looked for.
        program: PathBuf,
    },
    /// The program exists but could not be started.
    #[error("could not start {tool}: {source}")]
    Spawn {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// The supervisor's error.
        source: crate::supervisor::SupervisorError,
    },
    /// A tool exited unsuccessfully for a reason no input explains.
    #[error("{tool} failed ({exit}); last lines of its output:\n{stderr_tail}")]
    ToolFailed {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// `exit code 1`, `signal 9`.
        exit: String,
        /// The last lines it wrote to stderr.
        stderr_tail: String,
    },
    /// A tool ran longer than its deadline and was killed.
    #[error("{tool} did not finish within {seconds} s and was killed")]
    ToolTimedOut {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// The deadline.
        seconds: u64,
    },
    /// The tool's output could not be understood.
    #[error("{tool}: unexpected output: {reason}")]
    UnexpectedOutput {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The encoded file is not what the spec asked for.
    #[error("the encoded file failed verification: {reason}")]
    Verify {
        /// The first check that failed.
        reason: String,
    },
    /// The encode was cancelled; ffmpeg was killed and nothing was left behind.
    #[error("encode cancelled")]
    Cancelled,
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EncodeError {
    /// Whether the user's content is at fault (an audio file that does not decode, a cue after the
    /// video's end): another attempt, on any node, fails the same way.
    pub fn is_bad_content(&self) -> bool {
        matches!(self, Self::Input { tracks, .. } if tracks.any_audio())
    }

    pub(crate) fn input(track: Track, reason: impl Into<String>) -> Self {
        Self::Input {
            tracks: Tracks(vec![track]),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_spec(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result of the encode step.
pub type EncodeResult<T> = Result<T, EncodeError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Tracks read as the brief names them, and shared inputs list every track.
    #[test]
    fn tracks_are_named_for_people() {
        assert_eq!(Track::SceneFrames(2).to_string(), "scene 2 frames");
        assert_eq!(Track::Music.to_string(), "music");
        assert_eq!(Track::SoundEffect(3).to_string(), "sfx[3]");
        assert_eq!(Track::Voiceover.to_string(), "voiceover");
        let shared = Tracks(vec![Track::SoundEffect(0), Track::SoundEffect(3)]);
        assert_eq!(shared.to_string(), "sfx[0], sfx[3]");
        let error = EncodeError::Input {
            tracks: shared,
            reason: "does not decode: Invalid data found when processing input".to_owned(),
        };
        assert_eq!(
            error.to_string(),
            "sfx[0], sfx[3]: does not decode: Invalid data found when processing input"
        );
        assert!(error.is_bad_content());
    }

    /// Missing frames are the farm's fault, not the user's: only audio inputs are bad content.
    #[test]
    fn only_audio_inputs_are_bad_content() {
        assert!(!EncodeError::input(Track::SceneFrames(0), "missing").is_bad_content());
        assert!(EncodeError::input(Track::Voiceover, "does not decode").is_bad_content());
        assert!(!EncodeError::Cancelled.is_bad_content());
    }
}
