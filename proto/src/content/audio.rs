//! The audio a saved project mixes into its video: music, sound-effect cues under a master
//! volume, a voiceover. Times are milliseconds on the video's timeline; every start must fall
//! before the video's end, so the mix never places sound after the last frame.

use serde::{Deserialize, Serialize};

use super::Asset;
use crate::pb;
use crate::types::{FieldError, Volume};

/// Sound-effect cues a project may place.
pub const MAX_SOUND_EFFECTS: usize = 200;
const MAX_LABEL_CHARS: usize = 200;

/// Background music.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Music {
    /// The file.
    pub file: Asset,
    /// Where it starts on the video's timeline.
    pub start_ms: u32,
    /// Fade-in length.
    pub fade_in_ms: u32,
    /// Fade-out length, ending at the video's end.
    pub fade_out_ms: u32,
    /// Repeat to the video's end (else stop when the file ends).
    pub looped: bool,
    /// Gain.
    pub volume: Volume,
}

/// One sound effect on the timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoundEffect {
    /// The file.
    pub file: Asset,
    /// Where it plays.
    pub start_ms: u32,
    /// Its own gain, multiplied by the master sfx volume.
    pub volume: Volume,
    /// A label for people.
    pub label: Option<String>,
}

/// Where a voiceover came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceoverSource {
    /// An uploaded file.
    Upload,
    /// Recorded in the browser.
    Recording,
    /// Synthesised from text upstream.
    Tts,
}

impl VoiceoverSource {
    /// The name used in `studio.saved_projects.voiceover_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Recording => "recording",
            Self::Tts => "tts",
        }
    }

    /// Parses the stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "upload" => Some(Self::Upload),
            "recording" => Some(Self::Recording),
            "tts" => Some(Self::Tts),
            _ => None,
        }
    }
}

/// A spoken track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Voiceover {
    /// The file.
    pub file: Asset,
    /// Upload, recording or text-to-speech.
    pub source: VoiceoverSource,
    /// Where it starts.
    pub start_ms: u32,
    /// How much of it plays (`None`: all of it).
    pub duration_ms: Option<u32>,
    /// Gain.
    pub volume: Volume,
    /// Lower the music while it speaks.
    pub duck_music: bool,
}

/// Everything audio about a project.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectAudio {
    /// Background music.
    pub music: Option<Music>,
    /// Sound-effect cues in the order given.
    pub sfx: Vec<SoundEffect>,
    /// Master gain of the cues.
    pub sfx_volume: Volume,
    /// Voiceover.
    pub voiceover: Option<Voiceover>,
}

impl ProjectAudio {
    /// Validates the wire form for a video of `video_ms` milliseconds; `field` is its path
    /// (`audio`).
    pub fn from_wire(audio: &pb::ProjectAudio, video_ms: f64, field: &str) -> Result<Self, FieldError> {
        let music = audio
            .music
            .as_ref()
            .map(|music| {
                let path = format!("{field}.music");
                Ok::<_, FieldError>(Music {
                    file: required_asset(music.file.as_ref(), &path)?,
                    start_ms: start(music.start_ms, video_ms, &format!("{path}.start_ms"))?,
                    fade_in_ms: non_negative(music.fade_in_ms, &format!("{path}.fade_in_ms"))?,
                    fade_out_ms: non_negative(music.fade_out_ms, &format!("{path}.fade_out_ms"))?,
                    looped: music.r#loop.unwrap_or(true),
                    volume: volume(music.volume, &format!("{path}.volume"))?,
                })
            })
            .transpose()?;
        if audio.sfx.len() > MAX_SOUND_EFFECTS {
            return Err(FieldError::new(
                format!("{field}.sfx"),
                format!("must have at most {MAX_SOUND_EFFECTS} cues"),
            ));
        }
        let sfx = audio
            .sfx
            .iter()
            .enumerate()
            .map(|(index, cue)| {
                let path = format!("{field}.sfx[{index}]");
                let label = match cue.label.as_str() {
                    "" => None,
                    label if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) => {
                        return Err(FieldError::new(
                            format!("{path}.label"),
                            format!("must be at most {MAX_LABEL_CHARS} characters, no control characters"),
                        ));
                    }
                    label => Some(label.to_owned()),
                };
                Ok(SoundEffect {
                    file: required_asset(cue.file.as_ref(), &path)?,
                    start_ms: start(cue.start_ms, video_ms, &format!("{path}.start_ms"))?,
                    volume: volume(cue.volume, &format!("{path}.volume"))?,
                    label,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let voiceover = audio
            .voiceover
            .as_ref()
            .map(|voice| {
                let path = format!("{field}.voiceover");
                let source = match pb::VoiceoverSource::try_from(voice.source) {
                    Ok(pb::VoiceoverSource::Upload) => VoiceoverSource::Upload,
                    Ok(pb::VoiceoverSource::Recording) => VoiceoverSource::Recording,
                    Ok(pb::VoiceoverSource::Tts) => VoiceoverSource::Tts,
                    _ => {
                        return Err(FieldError::new(
                            format!("{path}.source"),
                            "must be UPLOAD, RECORDING or TTS",
                        ));
                    }
                };
                Ok(Voiceover {
                    file: required_asset(voice.file.as_ref(), &path)?,
                    source,
                    start_ms: start(voice.start_ms, video_ms, &format!("{path}.start_ms"))?,
                    duration_ms: match voice.duration_ms {
                        0 => None,
                        ms if ms > 0 => Some(ms.unsigned_abs()),
                        _ => {
                            return Err(FieldError::new(
                                format!("{path}.duration_ms"),
                                "must be >= 0 (0: all of it)",
                            ));
                        }
                    },
                    volume: volume(voice.volume, &format!("{path}.volume"))?,
                    duck_music: voice.duck_music.unwrap_or(true),
                })
            })
            .transpose()?;
        Ok(Self {
            music,
            sfx,
            sfx_volume: volume(audio.sfx_volume, &format!("{field}.sfx_volume"))?,
            voiceover,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> pb::ProjectAudio {
        let ms = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
        pb::ProjectAudio {
            music: self.music.as_ref().map(|music| pb::Music {
                file: Some(music.file.to_wire()),
                start_ms: ms(music.start_ms),
                fade_in_ms: ms(music.fade_in_ms),
                fade_out_ms: ms(music.fade_out_ms),
                r#loop: Some(music.looped),
                volume: Some(music.volume.get()),
            }),
            sfx: self
                .sfx
                .iter()
                .map(|cue| pb::SoundEffect {
                    file: Some(cue.file.to_wire()),
                    start_ms: ms(cue.start_ms),
                    volume: Some(cue.volume.get()),
                    label: cue.label.clone().unwrap_or_default(),
                })
                .collect(),
            sfx_volume: Some(self.sfx_volume.get()),
            voiceover: self.voiceover.as_ref().map(|voice| pb::Voiceover {
                file: Some(voice.file.to_wire()),
                source: match voice.source {
                    VoiceoverSource::Upload => pb::VoiceoverSource::Upload,
                    VoiceoverSource::Recording => pb::VoiceoverSource::Recording,
                    VoiceoverSource::Tts => pb::VoiceoverSource::Tts,
                } as i32,
                start_ms: ms(voice.start_ms),
                duration_ms: voice.duration_ms.map_or(0, ms),
                volume: Some(voice.volume.get()),
                duck_music: Some(voice.duck_music),
            }),
        }
    }
}

fn required_asset(asset: Option<&pb::Asset>, path: &str) -> Result<Asset, FieldError> {
    let field = format!("{path}.file");
    let asset = asset.ok_or_else(|| FieldError::new(&field, "is required"))?;
    Asset::from_wire(asset, &field)
}

fn non_negative(ms: i32, field: &str) -> Result<u32, FieldError> {
    u32::try_from(ms).map_err(|_| FieldError::new(field, "must be >= 0"))
}

/// A start time: not negative and before the video's end.
fn start(ms: i32, video_ms: f64, field: &str) -> Result<u32, FieldError> {
    let ms = non_negative(ms, field)?;
    if f64::from(ms) >= video_ms {
        return Err(FieldError::new(
            field,
            format!("must be before the end of the video ({} ms)", video_ms.floor()),
        ));
    }
    Ok(ms)
}

fn volume(value: Option<f64>, field: &str) -> Result<Volume, FieldError> {
    Volume::new(value.unwrap_or(1.0), field)
}
