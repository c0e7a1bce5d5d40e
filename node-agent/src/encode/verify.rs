//! Verifying an encoded file before it counts: `ffprobe -v error -print_format json
//! -show_streams -show_format` on it, then [`check`] against the spec: the container, exactly
//! one video stream with the expected codec, pixel format (where it is fixed) and the
//! resolution's size, a video duration within one frame of the scenes' total, and one audio
//! stream of the expected codec (48 kHz stereo) in every container but GIF, which has none.
//! A failed check is an error with the reason.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::error::{EncodeError, EncodeResult};
use super::graph::video_pixel_format;
use super::spec::{AUDIO_SAMPLE_RATE, Container, EncodeSpec};
use super::tool::{self, FfmpegTools, Invocation};
use crate::supervisor::OutputStream;

/// ffprobe only reads headers (and, for WebM, the cues); a minute means it hangs.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// What ffprobe says about a verified file.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbedVideo {
    /// The file's length in seconds (the container's).
    pub duration_seconds: f64,
    /// The video stream's length in seconds.
    pub video_duration_seconds: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `h264`, `vp9`, `prores`, `gif`.
    pub video_codec: String,
    /// `aac`, `opus`, `pcm_s16le`; `None` for a GIF.
    pub audio_codec: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    #[serde(default)]
    format: ProbeFormat,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeStream {
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    pix_fmt: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Default, Deserialize)]
struct ProbeFormat {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Default, Deserialize)]
struct Tags {
    /// Matroska/WebM's per-stream length (`00:00:03.000000000`).
    #[serde(rename = "DURATION")]
    duration: Option<String>,
    /// ISO BMFF's brand: `isom` (MP4) or `qt  ` (QuickTime).
    major_brand: Option<String>,
}

/// What a container's file must show.
struct Expected {
    format_name: &'static str,
    major_brand: Option<&'static str>,
    video_codec: &'static str,
    pixel_format: Option<&'static str>,
    audio_codec: Option<&'static str>,
}

fn expected(container: Container) -> Expected {
    match container {
        Container::Mp4 => Expected {
            format_name: "mp4",
            major_brand: Some("isom"),
            video_codec: "h264",
            pixel_format: Some(video_pixel_format(container)),
            audio_codec: Some("aac"),
        },
        Container::Mov => Expected {
            format_name: "mov",
            major_brand: Some("qt"),
            video_codec: "prores",
            pixel_format: Some(video_pixel_format(container)),
            audio_codec: Some("pcm_s16le"),
        },
        Container::Webm => Expected {
            format_name: "webm",
            major_brand: None,
            video_codec: "vp9",
            pixel_format: Some(video_pixel_format(container)),
            audio_codec: Some("opus"),
        },
        // The GIF decoder reports its own output format, not the file's palette.
        Container::Gif => Expected {
            format_name: "gif",
            major_brand: None,
            video_codec: "gif",
            pixel_format: None,
            audio_codec: None,
        },
    }
}

/// Probes `path` with ffprobe and checks it against `spec`.
pub async fn verify(
    tools: &FfmpegTools,
    spec: &EncodeSpec,
    path: &Path,
    tag: &str,
    cancel: &CancellationToken,
) -> EncodeResult<ProbedVideo> {
    let mut url = OsString::from("file:");
    url.push(path.as_os_str());
    let args: Vec<OsString> = ["-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
        .into_iter()
        .map(OsString::from)
        .chain([url])
        .collect();
    let mut json = String::new();
    let finished = tool::run(
        Invocation {
            tool: "ffprobe",
            program: &tools.ffprobe,
            args: &args,
            tag,
            cancel,
            deadline: Some(PROBE_DEADLINE),
        },
        &mut |line| {
            if line.stream == OutputStream::Stdout {
                json.push_str(&line.text);
                json.push('\n');
            }
        },
    )
    .await?;
    if !finished.exit.success() {
        return Err(EncodeError::Verify {
            reason: format!("ffprobe cannot read it: {}", finished.stderr_tail.join(" / ")),
        });
    }
    check(&json, spec).map_err(|reason| EncodeError::Verify { reason })
}

/// Checks ffprobe's JSON against the spec; the error is the first failed check.
pub fn check(json: &str, spec: &EncodeSpec) -> Result<ProbedVideo, String> {
    let probe: ProbeOutput =
        serde_json::from_str(json).map_err(|error| format!("ffprobe's output is not JSON: {error}"))?;
    let expected = expected(spec.container());
    let formats: Vec<&str> = probe.format.format_name.split(',').collect();
    if !formats.contains(&expected.format_name) {
        return Err(format!(
            "container is {:?}, expected {}",
            probe.format.format_name, expected.format_name
        ));
    }
    if let Some(brand) = expected.major_brand {
        let actual = probe.format.tags.major_brand.as_deref().unwrap_or("").trim();
        if actual != brand {
            return Err(format!("major brand is {actual:?}, expected {brand:?}"));
        }
    }

    let videos: Vec<&ProbeStream> = probe.streams.iter().filter(|s| s.codec_type == "video").collect();
    let [video] = videos.as_slice() else {
        return Err(format!("{} video streams, expected 1", videos.len()));
    };
    if video.codec_name != expected.video_codec {
        return Err(format!(
            "video codec is {}, expected {}",
            video.codec_name, expected.video_codec
        ));
    }
    if let Some(pixel_format) = expected.pixel_format
        && video.pix_fmt.as_deref() != Some(pixel_format)
    {
        return Err(format!(
            "pixel format is {}, expected {pixel_format}",
            video.pix_fmt.as_deref().unwrap_or("unknown")
        ));
    }
    let (width, height) = spec.resolution().size();
    if video.width != Some(width) || video.height != Some(height) {
        return Err(format!(
            "video is {}x{}, expected {width}x{height} ({})",
            video.width.unwrap_or(0),
            video.height.unwrap_or(0),
            spec.resolution().as_str()
        ));
    }
    let format_duration = probe.format.duration.as_deref().and_then(parse_seconds);
    let video_duration = stream_duration(video)
        .or(format_duration)
        .ok_or("the video stream has no duration")?;
    let expected_duration = spec.duration_seconds();
    let one_frame = 1.0 / spec.output_frame_rate().as_f64();
    if (video_duration - expected_duration).abs() > one_frame + 1e-6 {
        return Err(format!(
            "video lasts {video_duration:.3} s, expected {expected_duration:.3} s (within one frame, {one_frame:.3} s)"
        ));
    }

    let audios: Vec<&ProbeStream> = probe.streams.iter().filter(|s| s.codec_type == "audio").collect();
    let audio_codec = match (expected.audio_codec, audios.as_slice()) {
        (None, []) => None,
        (None, streams) => return Err(format!("{} audio streams, expected none", streams.len())),
        (Some(codec), [audio]) => {
            if audio.codec_name != codec {
                return Err(format!("audio codec is {}, expected {codec}", audio.codec_name));
            }
            let sample_rate = audio.sample_rate.as_deref().and_then(|rate| rate.parse::<u32>().ok());
            if sample_rate != Some(AUDIO_SAMPLE_RATE) || audio.channels != Some(2) {
                return Err(format!(
                    "audio is {} Hz with {} channels, expected {AUDIO_SAMPLE_RATE} Hz stereo",
                    sample_rate.unwrap_or(0),
                    audio.channels.unwrap_or(0)
                ));
            }
            Some(audio.codec_name.clone())
        }
        (Some(_), streams) => return Err(format!("{} audio streams, expected 1", streams.len())),
    };
    Ok(ProbedVideo {
        duration_seconds: format_duration.unwrap_or(video_duration),
        video_duration_seconds: video_duration,
        width,
        height,
        video_codec: video.codec_name.clone(),
        audio_codec,
    })
}

/// A stream's length: its `duration`, else Matroska's `DURATION` tag.
fn stream_duration(stream: &ProbeStream) -> Option<f64> {
    stream
        .duration
        .as_deref()
        .and_then(parse_seconds)
        .or_else(|| stream.tags.duration.as_deref().and_then(parse_clock))
}

/// `3.000000` → 3.0.
fn parse_seconds(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
}

/// `00:01:03.500000000` → 63.5.
fn parse_clock(text: &str) -> Option<f64> {
    let mut parts = text.trim().splitn(3, ':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds).filter(|total| total.is_finite() && *total >= 0.0)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
