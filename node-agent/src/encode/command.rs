//! ffmpeg's argument list for an [`EncodeSpec`] ([`encode_command`], pure): each scene an
//! `image2` input, each distinct audio file one input, the filter graph of `graph`, and the
//! container's codecs. Every value is its own argv item; paths only appear as `-i file:<path>`
//! and the output (`file:` so that no path is taken for a protocol such as `http:`), and the
//! graph refers to inputs by index.
//!
//! Codecs:
//! * MP4: H.264 (libx264, `medium`, CRF 20, High profile, `yuv420p`) and AAC 192 kb/s,
//!   `-movflags +faststart` so that playback starts before the download ends.
//! * WebM: VP9 (libvpx, constant quality CRF 32, `good` deadline at `cpu-used 4`, row
//!   multithreading, `yuv420p`) and Opus 128 kb/s.
//! * MOV: ProRes 422 (10-bit 4:2:2, profile "standard", Apple's vendor tag) and 16-bit PCM. MP4
//!   and WebM are the delivery formats; someone who asks for QuickTime wants a master for an
//!   editor (Final Cut, Premiere, Resolve): every frame a key frame for exact scrubbing, 10-bit
//!   4:2:2 that survives grading and re-encoding, uncompressed sample-exact audio. The price is
//!   size, about 10 times an MP4 (≈150 Mb/s at 1080p). The encoder is FFmpeg's `prores`, not
//!   `prores_ks`: for files of the same size, `prores_ks` made 2 frames/s at 1080p on two cores,
//!   `prores` 19.
//! * GIF: `-loop 0` (repeat forever), no audio.
//!
//! MP4, WebM and MOV always carry an audio stream, silent when the project has no audio
//! (`Container::has_audio`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::error::Track;
use super::graph::{self, AUDIO_LABEL, VIDEO_LABEL};
use super::spec::{Container, EncodeSpec, SceneFrames};

/// One distinct audio file and the tracks that play it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInput {
    /// The local file.
    pub file: PathBuf,
    /// Read in an endless loop (`-stream_loop -1`): looped music has its own input.
    pub looped: bool,
    /// The tracks that play it, in mix order; never empty.
    pub tracks: Vec<Track>,
}

/// One `-i` of the command: how ffmpeg names it in its messages, and what it feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandInput {
    /// The URL as passed to `-i` (`file:/…/out_%05d.png`), decoded lossily.
    pub url: String,
    /// The tracks it feeds.
    pub tracks: Vec<Track>,
}

/// An ffmpeg invocation: its arguments and its inputs by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegCommand {
    /// Everything after the program name.
    pub args: Vec<OsString>,
    /// Input `i` of ffmpeg's messages is `inputs[i]`.
    pub inputs: Vec<CommandInput>,
}

/// The command that encodes `spec` into `output` (the temporary file; the spec's output is the
/// final name). Progress goes to stdout (`-progress pipe:1`), errors only to stderr, where each
/// decoding error names its input (`-xerror` is not used: ffmpeg 5 exits on it without saying
/// which input failed; `run` stops ffmpeg at the first such line instead).
pub fn encode_command(spec: &EncodeSpec, output: &Path) -> FfmpegCommand {
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-nostats",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let mut inputs = Vec::new();
    let push = |args: &mut Vec<OsString>, items: &[&str]| args.extend(items.iter().map(OsString::from));

    let rate = spec.frame_rate().to_ffmpeg();
    for (index, scene) in spec.scenes().iter().enumerate() {
        let first = scene.first_frame.to_string();
        push(
            &mut args,
            &[
                "-f",
                "image2",
                "-pattern_type",
                "sequence",
                "-framerate",
                &rate,
                "-start_number",
                &first,
                "-i",
            ],
        );
        let url = file_url(&image2_pattern(scene));
        inputs.push(CommandInput {
            url: url.to_string_lossy().into_owned(),
            tracks: vec![Track::SceneFrames(index)],
        });
        args.push(url);
    }

    let audio_inputs = if spec.container().has_audio() {
        audio_inputs(spec)
    } else {
        Vec::new()
    };
    for input in &audio_inputs {
        if input.looped {
            push(&mut args, &["-stream_loop", "-1"]);
        }
        push(&mut args, &["-i"]);
        let url = file_url(&input.file);
        inputs.push(CommandInput {
            url: url.to_string_lossy().into_owned(),
            tracks: input.tracks.clone(),
        });
        args.push(url);
    }

    let graph = graph::filter_graph(spec, &audio_inputs);
    push(
        &mut args,
        &["-filter_complex", &graph, "-map", &format!("[{VIDEO_LABEL}]")],
    );
    if spec.container().has_audio() {
        push(&mut args, &["-map", &format!("[{AUDIO_LABEL}]")]);
    }
    push(&mut args, &codec_args(spec.container()));
    let output_rate = spec.output_frame_rate().to_ffmpeg();
    push(&mut args, &["-r", &output_rate, "-f", muxer(spec.container())]);
    args.push(file_url(output));
    FfmpegCommand { args, inputs }
}

/// The distinct audio files of the mix in input order (music, voiceover, cues), each with the
/// tracks that play it; looped music is never shared (its input loops).
pub fn audio_inputs(spec: &EncodeSpec) -> Vec<AudioInput> {
    let Some(mix) = spec.audio() else {
        return Vec::new();
    };
    let mut inputs: Vec<AudioInput> = Vec::new();
    let mut add = |file: &Path, looped: bool, track: Track| match inputs
        .iter_mut()
        .find(|input| !looped && !input.looped && input.file == file)
    {
        Some(input) => input.tracks.push(track),
        None => inputs.push(AudioInput {
            file: file.to_path_buf(),
            looped,
            tracks: vec![track],
        }),
    };
    if let Some(music) = &mix.music {
        add(&music.file, music.settings.looped, Track::Music);
    }
    if let Some(voice) = &mix.voiceover {
        add(&voice.file, false, Track::Voiceover);
    }
    for (index, cue) in mix.sfx.iter().enumerate() {
        add(&cue.file, false, Track::SoundEffect(index));
    }
    inputs
}

/// The image2 sequence of a scene: `%` of the path doubled, the frame number as `%0<digits>d`.
fn image2_pattern(scene: &SceneFrames) -> PathBuf {
    let escape = |text: &str| text.replace('%', "%%");
    let file_name = format!(
        "{}%0{}d{}",
        escape(scene.pattern.prefix()),
        scene.pattern.digits(),
        escape(scene.pattern.suffix())
    );
    // The spec refuses folders that are not UTF-8, so nothing is lost here.
    let dir = escape(&scene.dir.to_string_lossy());
    Path::new(&dir).join(file_name)
}

/// `file:<path>`: ffmpeg's file protocol, whatever the path looks like.
fn file_url(path: &Path) -> OsString {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn codec_args(container: Container) -> Vec<&'static str> {
    let (video, audio): (&[&str], &[&str]) = match container {
        Container::Mp4 => (
            &[
                "-c:v",
                "libx264",
                "-preset",
                "medium",
                "-crf",
                "20",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ],
            &["-c:a", "aac", "-b:a", "192k", "-movflags", "+faststart"],
        ),
        Container::Webm => (
            &[
                "-c:v",
                "libvpx-vp9",
                "-crf",
                "32",
                "-b:v",
                "0",
                "-deadline",
                "good",
                "-cpu-used",
                "4",
                "-row-mt",
                "1",
                "-pix_fmt",
                "yuv420p",
            ],
            &["-c:a", "libopus", "-b:a", "128k"],
        ),
        Container::Mov => (
            &[
                "-c:v",
                "prores",
                "-profile:v",
                "2",
                "-vendor",
                "apl0",
                "-pix_fmt",
                "yuv422p10le",
            ],
            &["-c:a", "pcm_s16le"],
        ),
        Container::Gif => return vec!["-c:v", "gif", "-loop", "0"],
    };
    // The graph converts with the BT.709 matrix in TV range; the tags say so to players.
    const BT709: &[&str] = &[
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-colorspace",
        "bt709",
        "-color_range",
        "tv",
    ];
    [video, BT709, audio].concat()
}

/// ffmpeg's muxer for a container.
fn muxer(container: Container) -> &'static str {
    match container {
        Container::Mp4 => "mp4",
        Container::Mov => "mov",
        Container::Webm => "webm",
        Container::Gif => "gif",
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
