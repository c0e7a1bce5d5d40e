//! Is FFmpeg here, and which version: `ffmpeg -version` and `ffprobe -version`, first line
//! parsed ([`parse_version_line`]), for the agent to report at registration.
//!
//! The first line is `<tool> version <version> Copyright (c) … the FFmpeg developers`, where
//! `<version>` is whatever the build put there: `5.1.6-0+deb12u1` (Debian), `n7.1` (a git tag),
//! `7.0.2-static` (static builds), `6.1.1-full_build-www.gyan.dev` (Windows builds),
//! `N-118234-g1d6a1b2c3d-20250101` or `2024-03-04-git-e30369bc1c-full_build-www.gyan.dev`
//! (snapshots of the development branch, which have no release number).

use std::ffi::OsString;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::{EncodeError, EncodeResult};
use super::tool::{self, FfmpegTools, Invocation};
use crate::supervisor::OutputStream;

/// `-version` prints at once; a program that takes longer is not a working FFmpeg.
const VERSION_DEADLINE: Duration = Duration::from_secs(30);

/// A tool's version as its first line gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolVersion {
    /// The version as printed (`5.1.6-0+deb12u1`).
    pub version: String,
    /// The release number (`5.1.6` → `(5, 1)`), `None` for development snapshots.
    pub release: Option<(u32, u32)>,
}

/// The versions of both programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfmpegVersions {
    /// `ffmpeg`'s.
    pub ffmpeg: ToolVersion,
    /// `ffprobe`'s.
    pub ffprobe: ToolVersion,
}

/// Runs both programs with `-version`. Either missing is [`EncodeError::ToolMissing`]; `tag`
/// prefixes the two runs' process tags.
pub async fn detect(tools: &FfmpegTools, tag: &str) -> EncodeResult<FfmpegVersions> {
    Ok(FfmpegVersions {
        ffmpeg: tool_version("ffmpeg", tools, tag).await?,
        ffprobe: tool_version("ffprobe", tools, tag).await?,
    })
}

async fn tool_version(tool: &'static str, tools: &FfmpegTools, tag: &str) -> EncodeResult<ToolVersion> {
    let program = if tool == "ffmpeg" {
        &tools.ffmpeg
    } else {
        &tools.ffprobe
    };
    let args = [OsString::from("-version")];
    let mut first_line: Option<String> = None;
    let finished = tool::run(
        Invocation {
            tool,
            program,
            args: &args,
            tag: &format!("{tag}/{tool}-version"),
            cancel: &CancellationToken::new(),
            deadline: Some(VERSION_DEADLINE),
        },
        &mut |line| {
            if line.stream == OutputStream::Stdout && first_line.is_none() && !line.text.trim().is_empty() {
                first_line = Some(line.text.clone());
            }
        },
    )
    .await?;
    if !finished.exit.success() {
        return Err(finished.failure(tool));
    }
    let first_line = first_line.unwrap_or_default();
    parse_version_line(tool, &first_line).ok_or_else(|| EncodeError::UnexpectedOutput {
        tool,
        reason: format!("`-version` printed {first_line:?}, not `{tool} version <version> …`"),
    })
}

/// Parses `<tool> version <version> …`.
pub fn parse_version_line(tool: &str, line: &str) -> Option<ToolVersion> {
    let mut words = line.split_whitespace();
    if words.next()? != tool || words.next()? != "version" {
        return None;
    }
    let version = words.next()?.to_owned();
    Some(ToolVersion {
        release: release_of(&version),
        version,
    })
}

/// `5.1.6-0+deb12u1` → (5, 1); `n7.1` → (7, 1); `7.0.2-static` → (7, 0); `6.0-essentials…` →
/// (6, 0); `N-…` and dated snapshots → `None`.
fn release_of(version: &str) -> Option<(u32, u32)> {
    let version = version.strip_prefix('n').unwrap_or(version);
    let release: String = version
        .chars()
        .take_while(|character| character.is_ascii_digit() || *character == '.')
        .collect();
    let mut numbers = release.split('.');
    let major: u32 = numbers.next()?.parse().ok()?;
    let minor: u32 = numbers.next().map_or(Some(0), |minor| minor.parse().ok())?;
    // A date such as 2024-03-04 reads as 2024: no FFmpeg release is numbered like a year.
    (major < 1000).then_some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// First lines of real builds: Debian, Ubuntu, git tags, static, Homebrew and Windows builds.
    #[test]
    fn release_versions_are_parsed() {
        let cases = [
            (
                "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers",
                "5.1.6-0+deb12u1",
                Some((5, 1)),
            ),
            (
                "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers",
                "4.4.2-0ubuntu0.22.04.1",
                Some((4, 4)),
            ),
            (
                "ffmpeg version n7.1 Copyright (c) 2000-2024 the FFmpeg developers",
                "n7.1",
                Some((7, 1)),
            ),
            (
                "ffmpeg version 7.0.2-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2024 the FFmpeg developers",
                "7.0.2-static",
                Some((7, 0)),
            ),
            (
                "ffmpeg version 7.1 Copyright (c) 2000-2024 the FFmpeg developers",
                "7.1",
                Some((7, 1)),
            ),
            (
                "ffmpeg version 6.0-essentials_build-www.gyan.dev Copyright (c) 2000-2023 the FFmpeg developers",
                "6.0-essentials_build-www.gyan.dev",
                Some((6, 0)),
            ),
            (
                "ffmpeg version 8-full_build-www.gyan.dev Copyright (c) 2000-2025 the FFmpeg developers",
                "8-full_build-www.gyan.dev",
                Some((8, 0)),
            ),
        ];
        for (line, version, release) in cases {
            let parsed = parse_version_line("ffmpeg", line).unwrap();
            assert_eq!(parsed.version, version, "{line}");
            assert_eq!(parsed.release, release, "{line}");
        }
    }

    /// Development snapshots have a version but no release number.
    #[test]
    fn snapshots_have_no_release() {
        for line in [
            "ffmpeg version N-118234-g1d6a1b2c3d-20250101 Copyright (c) 2000-2025 the FFmpeg developers",
            "ffmpeg version 2024-03-04-git-e30369bc1c-full_build-www.gyan.dev Copyright (c) 2000-2024 the FFmpeg developers",
        ] {
            let parsed = parse_version_line("ffmpeg", line).unwrap();
            assert_eq!(parsed.release, None, "{line}");
            assert!(!parsed.version.is_empty());
        }
    }

    /// ffprobe's line parses as ffprobe's, not as ffmpeg's; other text is refused.
    #[test]
    fn other_lines_are_refused() {
        let probe = "ffprobe version 5.1.6-0+deb12u1 Copyright (c) 2007-2024 the FFmpeg developers";
        assert_eq!(parse_version_line("ffprobe", probe).unwrap().release, Some((5, 1)));
        assert_eq!(parse_version_line("ffmpeg", probe), None);
        assert_eq!(parse_version_line("ffmpeg", ""), None);
        assert_eq!(parse_version_line("ffmpeg", "ffmpeg version"), None);
        assert_eq!(parse_version_line("ffmpeg", "avconv version 12 Copyright"), None);
    }
}
