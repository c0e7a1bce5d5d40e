//! The `-filter_complex` graph of an encode, as text built from numbers only: inputs are referred
//! to by index (`[3:a]`), never by path, so no file name is ever parsed as filter syntax.
//!
//! Video: each scene's input is cut to its frame count (`trim`: image2 would read on into any
//! later frames left in the folder), scaled to fit the resolution keeping its aspect ratio and
//! padded with black, then the scenes are concatenated in play order. For MP4, WebM and MOV the
//! scaler also converts to Y'CbCr with the BT.709 matrix in TV range (the files are tagged so); a
//! GIF stays RGB and gets a palette generated from its own frames (`palettegen` and `paletteuse`
//! in this one graph). Transparency is not composited: a frame's colour channels are used as
//! they are (After Effects' PNG output modules write RGB unless told to add alpha).
//!
//! Audio, every track converted to 48 kHz stereo by ffmpeg's resampler (stereo files unchanged; a
//! mono file on both channels at -3 dB each, the equal-power rule, so it sounds as loud as from
//! one speaker; more channels downmixed), on the video's timeline:
//! * music: cut to the time left after its start (looped first with `-stream_loop -1` when
//!   `looped`), faded in from its start and out so that the fade ends at the video's end (music
//!   that ends earlier by itself is not faded out), at its volume, delayed to its start;
//! * voiceover: cut to `duration_ms`, at its volume, delayed to its start. With `duck_music` the
//!   music is lowered while the voice speaks by `sidechaincompress` keyed by the voiceover after
//!   its volume ([`DUCKING`]): it follows the voice's actual level, so pauses in the speech let the
//!   music back up and a voiceover at volume 0 ducks nothing (a volume envelope over the
//!   voiceover's whole span would duck through its silences);
//! * each sfx cue: at its volume × the master sfx volume, delayed to its time;
//! * all of it summed by `amix` without normalisation (a volume of 0.5 is -6 dB whatever else
//!   plays; loud tracks together can clip, as in any mixer without a limiter) over a silent bed
//!   exactly as long as the video, which makes the audio exactly the video's length (and is the
//!   silent track of a project without audio).
//!
//! Every length is in samples (`atrim=end_sample`, `afade` sample offsets, `adelay` with `S`), so
//! nothing drifts with rounding.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::command::AudioInput;
use super::error::Track;
use super::spec::{AUDIO_SAMPLE_RATE, Container, EncodeSpec};

/// `sidechaincompress` settings of the music under the voiceover: from 1/56 of full scale
/// (-35 dBFS) up, 5:1, 20 ms attack, 400 ms release. Speech around -20 dBFS RMS lowers the music by
/// about 12 dB; louder speech lowers it more.
pub const DUCKING: &str = "threshold=0.0178:ratio=5:attack=20:release=400:makeup=1";

/// The graph's output labels.
pub const VIDEO_LABEL: &str = "video";
/// See [`VIDEO_LABEL`].
pub const AUDIO_LABEL: &str = "audio";

/// Samples per millisecond at [`AUDIO_SAMPLE_RATE`].
const SAMPLES_PER_MS: u64 = AUDIO_SAMPLE_RATE as u64 / 1000;

/// The whole graph: the video chains, then (for containers with audio) the mix. Scenes are inputs
/// `0..scenes`, the audio inputs follow in `audio_inputs` order.
pub fn filter_graph(spec: &EncodeSpec, audio_inputs: &[AudioInput]) -> String {
    let mut chains = video_chains(spec);
    if spec.container().has_audio() {
        chains.extend(audio_chains(spec, audio_inputs, spec.scenes().len()));
    }
    chains.join(";")
}

fn video_chains(spec: &EncodeSpec) -> Vec<String> {
    let (width, height) = spec.resolution().size();
    // Converting to Y'CbCr in the scaler that fits the frame is one pass; a second `scale` just
    // for the conversion took five times as long. A GIF stays RGB for its palette.
    let conversion = match spec.container() {
        Container::Gif => String::new(),
        container @ (Container::Mp4 | Container::Webm | Container::Mov) => format!(
            ":out_color_matrix=bt709:out_range=tv,format={}",
            video_pixel_format(container)
        ),
    };
    let mut chains = Vec::new();
    let mut concat_inputs = String::new();
    for (index, scene) in spec.scenes().iter().enumerate() {
        chains.push(format!(
            "[{index}:v]trim=end_frame={frames},setpts=PTS-STARTPTS,\
             scale=w={width}:h={height}:force_original_aspect_ratio=decrease:force_divisible_by=2{conversion},\
             pad=w={width}:h={height}:x=(ow-iw)/2:y=(oh-ih)/2:color=black,setsar=1[scene{index}]",
            frames = scene.num_frames,
        ));
        let _ = write!(concat_inputs, "[scene{index}]");
    }
    let num_scenes = spec.scenes().len();
    if spec.container() != Container::Gif {
        chains.push(format!("{concat_inputs}concat=n={num_scenes}:v=1:a=0[{VIDEO_LABEL}]"));
        return chains;
    }
    chains.push(format!("{concat_inputs}concat=n={num_scenes}:v=1:a=0[frames]"));
    let resample = if spec.output_frame_rate() == spec.frame_rate() {
        String::new()
    } else {
        format!("fps={},", spec.output_frame_rate().to_ffmpeg())
    };
    chains.push(format!(
        "[frames]{resample}split[gif_analysed][gif_frames];[gif_analysed]palettegen[gif_palette];\
         [gif_frames][gif_palette]paletteuse[{VIDEO_LABEL}]"
    ));
    chains
}

/// The pixel format a container's video is encoded in (GIF: a palette).
pub fn video_pixel_format(container: Container) -> &'static str {
    match container {
        Container::Mp4 | Container::Webm => "yuv420p",
        Container::Mov => "yuv422p10le",
        Container::Gif => "pal8",
    }
}

fn audio_chains(spec: &EncodeSpec, audio_inputs: &[AudioInput], first_audio_input: usize) -> Vec<String> {
    let total = spec.duration_samples();
    let bed = format!("anullsrc=r={AUDIO_SAMPLE_RATE}:cl=stereo,atrim=end_sample={total}");
    let Some(mix) = spec.audio() else {
        return vec![format!("{bed}[{AUDIO_LABEL}]")];
    };
    let mut chains = vec![format!("{bed}[bed]")];

    // One decoder per distinct file, split into as many copies as tracks play it.
    let mut sources: HashMap<Track, String> = HashMap::new();
    for (position, input) in audio_inputs.iter().enumerate() {
        let index = first_audio_input + position;
        let mut chain =
            format!("[{index}:a]aresample={AUDIO_SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo");
        if input.tracks.len() > 1 {
            let _ = write!(chain, ",asplit={}", input.tracks.len());
        }
        for (copy, track) in input.tracks.iter().enumerate() {
            let label = format!("in{index}_{copy}");
            let _ = write!(chain, "[{label}]");
            sources.insert(*track, label);
        }
        chains.push(chain);
    }
    let source = |track: Track| sources.get(&track).cloned().unwrap_or_default();

    let mut mix_inputs = vec!["bed".to_owned()];
    let mut music_label = None;
    if let Some(music) = &mix.music {
        let settings = &music.settings;
        let start = u64::from(settings.start_ms) * SAMPLES_PER_MS;
        let length = total.saturating_sub(start).max(1);
        let mut chain = format!(
            "[{}]atrim=end_sample={length},asetpts=PTS-STARTPTS",
            source(Track::Music)
        );
        let fade_in = (u64::from(settings.fade_in_ms) * SAMPLES_PER_MS).min(length);
        if fade_in > 0 {
            let _ = write!(chain, ",afade=type=in:start_sample=0:nb_samples={fade_in}");
        }
        let fade_out = (u64::from(settings.fade_out_ms) * SAMPLES_PER_MS).min(length);
        if fade_out > 0 {
            let _ = write!(
                chain,
                ",afade=type=out:start_sample={}:nb_samples={fade_out}",
                length - fade_out
            );
        }
        let _ = write!(chain, ",volume={}{}[music]", gain(settings.volume.get()), delay(start));
        chains.push(chain);
        music_label = Some("music".to_owned());
    }
    if let Some(voice) = &mix.voiceover {
        let settings = &voice.settings;
        let start = u64::from(settings.start_ms) * SAMPLES_PER_MS;
        let room = total.saturating_sub(start).max(1);
        let length = settings
            .duration_ms
            .map_or(room, |ms| (u64::from(ms) * SAMPLES_PER_MS).clamp(1, room));
        chains.push(format!(
            "[{}]atrim=end_sample={length},asetpts=PTS-STARTPTS,volume={}{}[voice]",
            source(Track::Voiceover),
            gain(settings.volume.get()),
            delay(start)
        ));
        if settings.duck_music && music_label.is_some() {
            // The key is padded with silence: sidechaincompress ends with the shorter input, and
            // the music must play on after the voice.
            chains.push("[voice]asplit=2[voice_mixed][voice_key];[voice_key]apad[voice_key_padded]".to_owned());
            chains.push(format!(
                "[music][voice_key_padded]sidechaincompress={DUCKING}[music_ducked]"
            ));
            music_label = Some("music_ducked".to_owned());
            mix_inputs.push("voice_mixed".to_owned());
        } else {
            mix_inputs.push("voice".to_owned());
        }
    }
    mix_inputs.extend(music_label);
    for (index, cue) in mix.sfx.iter().enumerate() {
        let settings = &cue.settings;
        let start = u64::from(settings.start_ms) * SAMPLES_PER_MS;
        let length = total.saturating_sub(start).max(1);
        chains.push(format!(
            "[{}]atrim=end_sample={length},asetpts=PTS-STARTPTS,volume={}{}[sfx{index}]",
            source(Track::SoundEffect(index)),
            gain(settings.volume.get() * mix.sfx_volume.get()),
            delay(start)
        ));
        mix_inputs.push(format!("sfx{index}"));
    }
    let labels: String = mix_inputs.iter().map(|label| format!("[{label}]")).collect();
    chains.push(format!(
        "{labels}amix=inputs={}:duration=first:dropout_transition=0:normalize=0,atrim=end_sample={total}[{AUDIO_LABEL}]",
        mix_inputs.len()
    ));
    chains
}

/// A linear gain as `volume` reads it.
fn gain(value: f64) -> String {
    format!("{value:.6}")
}

/// `,adelay=…` for a start after 0, in samples on every channel.
fn delay(start_samples: u64) -> String {
    if start_samples == 0 {
        String::new()
    } else {
        format!(",adelay=delays={start_samples}S:all=1")
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
