//! The delivered video, checked independently of the agent's own verification: the file the
//! job's export names is read back (size and BLAKE3 as recorded), ffprobe says what is in it
//! (container, duration, streams), and the lines the quickstart prints end with how to play it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use flatrender_proto::pb;
use serde_json::Value;

/// Players tried in this order for the "play it" line.
pub const PLAYERS: [&str; 3] = ["ffplay", "mpv", "vlc"];

/// Where an export is: a file on the shared export folder, or an uploaded URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A path as the encoding node saw it (this machine, in the quickstart).
    File(PathBuf),
    /// An http(s) URL.
    Url(String),
}

impl Location {
    /// The export's location.
    pub fn of(export: &pb::Export) -> Self {
        let location = export.location.as_str();
        if location.starts_with("http://") || location.starts_with("https://") {
            Self::Url(location.to_owned())
        } else {
            Self::File(PathBuf::from(location.strip_prefix("file://").unwrap_or(location)))
        }
    }

    /// As given to a player or ffprobe.
    pub fn as_argument(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Url(url) => url.clone(),
        }
    }
}

/// For a file: checks that it exists with the export's size and BLAKE3.
pub fn check_file(export: &pb::Export) -> anyhow::Result<()> {
    let Location::File(path) = Location::of(export) else {
        return Ok(());
    };
    let bytes = std::fs::read(&path).with_context(|| format!("read the export {}", path.display()))?;
    anyhow::ensure!(
        i64::try_from(bytes.len()).ok() == Some(export.size_bytes),
        "{} has {} bytes, the export says {}",
        path.display(),
        bytes.len(),
        export.size_bytes
    );
    let hash = blake3::hash(&bytes).to_hex();
    anyhow::ensure!(
        hash.as_str() == export.blake3_hex,
        "{} has BLAKE3 {hash}, the export says {}",
        path.display(),
        export.blake3_hex
    );
    Ok(())
}

/// What ffprobe says about a video.
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    /// The container's names (`mov,mp4,m4a,3gp,3g2,mj2`).
    pub format_name: String,
    /// The container's length in seconds.
    pub duration_seconds: f64,
    /// The video stream's length in seconds, when it has one.
    pub video_duration_seconds: Option<f64>,
    /// One line per stream: `#0 video: h264 (High), 1280x720, yuv420p, 25 fps`.
    pub streams: Vec<String>,
}

/// Runs ffprobe on the export.
pub async fn probe(location: &Location) -> anyhow::Result<Probed> {
    let output = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_streams", "-show_format"])
        .arg(location.as_argument())
        .stdin(Stdio::null())
        .output()
        .await
        .context("run ffprobe (scripts/setup.sh installs it)")?;
    anyhow::ensure!(
        output.status.success(),
        "ffprobe cannot read {}: {}",
        location.as_argument(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    parse_probe(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `ffprobe -print_format json -show_streams -show_format`'s output.
pub fn parse_probe(json: &str) -> anyhow::Result<Probed> {
    let probe: Value = serde_json::from_str(json).context("ffprobe's output is not JSON")?;
    let seconds = |value: &Value| value.as_str().and_then(|text| text.parse::<f64>().ok());
    let streams = probe["streams"].as_array().map(Vec::as_slice).unwrap_or_default();
    Ok(Probed {
        format_name: probe["format"]["format_name"].as_str().unwrap_or_default().to_owned(),
        duration_seconds: seconds(&probe["format"]["duration"]).context("ffprobe gives no duration")?,
        video_duration_seconds: streams
            .iter()
            .find(|stream| stream["codec_type"] == "video")
            .and_then(|stream| seconds(&stream["duration"])),
        streams: streams.iter().map(describe_stream).collect(),
    })
}

/// `#1 audio: aac (LC), 48000 Hz, stereo, 192 kb/s`.
fn describe_stream(stream: &Value) -> String {
    let text = |key: &str| stream[key].as_str().filter(|text| !text.is_empty());
    let kind = text("codec_type").unwrap_or("data");
    let mut parts = vec![match (text("codec_name"), text("profile")) {
        (Some(codec), Some(profile)) => format!("{codec} ({profile})"),
        (Some(codec), None) => codec.to_owned(),
        (None, _) => "unknown codec".to_owned(),
    }];
    match kind {
        "video" => {
            if let (Some(width), Some(height)) = (stream["width"].as_u64(), stream["height"].as_u64()) {
                parts.push(format!("{width}x{height}"));
            }
            parts.extend(text("pix_fmt").map(str::to_owned));
            parts.extend(
                text("avg_frame_rate")
                    .and_then(frame_rate)
                    .map(|fps| format!("{fps} fps")),
            );
        }
        "audio" => {
            parts.extend(text("sample_rate").map(|rate| format!("{rate} Hz")));
            parts.extend(text("channel_layout").map(str::to_owned));
        }
        _ => {}
    }
    if kind != "video" {
        let kilobits = text("bit_rate")
            .and_then(|rate| rate.parse::<u64>().ok())
            .map(|bits| bits / 1000);
        parts.extend(kilobits.map(|kilobits| format!("{kilobits} kb/s")));
    }
    let index = stream["index"].as_u64().unwrap_or(0);
    format!("#{index} {kind}: {}", parts.join(", "))
}

/// `25/1` → `25`, `30000/1001` → `29.97`; `None` for `0/0`.
fn frame_rate(fraction: &str) -> Option<String> {
    let (numerator, denominator) = fraction.split_once('/')?;
    let (numerator, denominator) = (numerator.parse::<f64>().ok()?, denominator.parse::<f64>().ok()?);
    if numerator <= 0.0 || denominator <= 0.0 {
        return None;
    }
    let fps = numerator / denominator;
    Some(if fps.fract() == 0.0 {
        format!("{fps:.0}")
    } else {
        format!("{fps:.2}")
    })
}

/// Fails unless the video lasts `expected_seconds` to within one frame at `fps`.
pub fn check_duration(probed: &Probed, expected_seconds: f64, fps: f64) -> anyhow::Result<()> {
    let actual = probed.video_duration_seconds.unwrap_or(probed.duration_seconds);
    anyhow::ensure!(
        (actual - expected_seconds).abs() <= 1.0 / fps + 1e-6,
        "the video lasts {actual:.3} s, expected {expected_seconds:.3} s"
    );
    Ok(())
}

/// The players of [`PLAYERS`] found on `PATH`.
pub fn players_on_path() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    PLAYERS
        .into_iter()
        .filter(|player| std::env::split_paths(&path).any(|dir| is_executable(&dir.join(player))))
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The printed description: where the video is, what it is, its streams, how to play it.
/// `players` are the installed ones, best first.
pub fn report_lines(export: &pb::Export, probed: &Probed, players: &[&str]) -> Vec<String> {
    let location = Location::of(export);
    let argument = shell_quoted(&location.as_argument());
    let mut lines = vec![format!("  video    {}", location.as_argument())];
    let short_hash = export.blake3_hex.get(..16).unwrap_or(&export.blake3_hex);
    lines.push(format!(
        "           {}, {}x{}, {:.2} s, {}, BLAKE3 {short_hash}…",
        export.format,
        export.width,
        export.height,
        probed.duration_seconds,
        size_text(export.size_bytes)
    ));
    for (position, stream) in probed.streams.iter().enumerate() {
        let label = if position == 0 { "  streams" } else { "         " };
        lines.push(format!("{label}  {stream}"));
    }
    match players.split_first() {
        Some((first, others)) => {
            let autoexit = if *first == "ffplay" { " -autoexit" } else { "" };
            lines.push(format!("  play it  {first}{autoexit} {argument}"));
            let mut alternatives: Vec<String> = others.iter().map(|player| format!("{player} {argument}")).collect();
            if matches!(location, Location::File(_)) {
                alternatives.push("open it in a file manager".to_owned());
            }
            if !alternatives.is_empty() {
                lines.push(format!("           or {}", alternatives.join(", or ")));
            }
        }
        None => {
            lines.push(format!(
                "  play it  with any video player: mpv {argument}, vlc {argument},"
            ));
            lines.push("           or open it in a file manager".to_owned());
        }
    }
    lines
}

/// `1.2 MB`, `850 kB`, `12 bytes`.
fn size_text(bytes: i64) -> String {
    match bytes {
        ..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.0} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// `text` as one shell word: unchanged when it is plain, else in single quotes.
fn shell_quoted(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '+' | '=' | ','));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
