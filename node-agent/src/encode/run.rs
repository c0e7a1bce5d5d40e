//! One encode end to end ([`encode`]): check that every frame is there, run ffmpeg on a temporary
//! name next to the output (`.<file name>.partial`), report its progress, verify the result with
//! ffprobe, and only then rename it into place. Whatever fails — a cancellation (ffmpeg's tree
//! is killed), ffmpeg, the verification — the temporary file is removed and the output is left
//! as it was: a file at the output path is always a verified video.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::command::encode_command;
use super::error::{EncodeError, EncodeResult, Track};
use super::failure::InputFailure;
use super::progress::{EncodeProgress, ProgressParser};
use super::spec::EncodeSpec;
use super::tool::{self, FfmpegTools, Invocation};
use super::verify::{ProbedVideo, verify};
use crate::supervisor::OutputStream;

/// A verified video at the spec's output path.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedVideo {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub size_bytes: u64,
    /// What ffprobe says about it.
    pub probe: ProbedVideo,
}

/// Encodes `spec`. `tag` is unique to this attempt (it tags ffmpeg's process tree, as aerender's
/// chunks are tagged); `cancel` stops it at any point, leaving no file; `on_progress` gets each of
/// ffmpeg's progress reports (about two a second).
pub async fn encode(
    tools: &FfmpegTools,
    spec: &EncodeSpec,
    tag: &str,
    cancel: &CancellationToken,
    on_progress: &mut (dyn FnMut(EncodeProgress) + Send),
) -> EncodeResult<EncodedVideo> {
    check_frames(spec).await?;
    let output = spec.output();
    let partial = partial_path(output);
    if let Some(dir) = output.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(|source| EncodeError::Io {
            context: format!("cannot create {}", dir.display()),
            source,
        })?;
    }
    remove_partial(&partial).await;

    let result = encode_into(tools, spec, &partial, tag, cancel, on_progress).await;
    let probe = match result {
        Ok(probe) => probe,
        Err(error) => {
            remove_partial(&partial).await;
            return Err(error);
        }
    };
    let size_bytes = match finish(&partial, output).await {
        Ok(size_bytes) => size_bytes,
        Err(error) => {
            remove_partial(&partial).await;
            return Err(error);
        }
    };
    info!(
        output = %output.display(),
        size_bytes,
        duration_seconds = probe.duration_seconds,
        "video encoded and verified"
    );
    Ok(EncodedVideo {
        path: output.to_path_buf(),
        size_bytes,
        probe,
    })
}

async fn encode_into(
    tools: &FfmpegTools,
    spec: &EncodeSpec,
    partial: &Path,
    tag: &str,
    cancel: &CancellationToken,
    on_progress: &mut (dyn FnMut(EncodeProgress) + Send),
) -> EncodeResult<ProbedVideo> {
    let command = encode_command(spec, partial);
    debug!(args = ?command.args, "running ffmpeg");
    let mut progress = ProgressParser::new(spec.output_frames());
    let mut input_failure = InputFailure::new(&command.inputs);
    // Stopped by the caller, or by us at the first input that does not decode: ffmpeg would go on
    // without it, and the file would be rejected anyway.
    let stop = cancel.child_token();
    let finished = tool::run(
        Invocation {
            tool: "ffmpeg",
            program: &tools.ffmpeg,
            args: &command.args,
            tag: &format!("{tag}/ffmpeg"),
            cancel: &stop,
            deadline: None,
        },
        &mut |line| match line.stream {
            OutputStream::Stdout => {
                if let Some(report) = progress.feed(&line.text) {
                    on_progress(report);
                }
            }
            OutputStream::Stderr => {
                input_failure.feed(&line.text);
                if input_failure.found() {
                    stop.cancel();
                }
            }
        },
    )
    .await;
    let input_error = input_failure.into_error();
    let finished = match finished {
        Err(EncodeError::Cancelled) if !cancel.is_cancelled() => {
            return Err(input_error.unwrap_or(EncodeError::Cancelled));
        }
        other => other?,
    };
    if let Some(error) = input_error {
        return Err(error);
    }
    if !finished.exit.success() {
        return Err(finished.failure("ffmpeg"));
    }
    verify(tools, spec, partial, &format!("{tag}/ffprobe"), cancel).await
}

/// Every frame of every scene must exist and be non-empty: ffmpeg's image2 input stops quietly at
/// the first gap, which would shorten the scene instead of failing.
async fn check_frames(spec: &EncodeSpec) -> EncodeResult<()> {
    let scenes = spec.scenes().to_vec();
    let checked = tokio::task::spawn_blocking(move || {
        for (index, scene) in scenes.iter().enumerate() {
            let mut missing = scene.frames().filter(|frame| {
                !std::fs::metadata(scene.frame_path(*frame)).is_ok_and(|meta| meta.is_file() && meta.len() > 0)
            });
            if let Some(first) = missing.next() {
                let num_missing = 1 + missing.count();
                return Err(EncodeError::input(
                    Track::SceneFrames(index),
                    format!(
                        "{num_missing} of {} frames missing or empty, the first {}",
                        scene.num_frames,
                        scene.frame_path(first).display()
                    ),
                ));
            }
        }
        Ok(())
    })
    .await;
    checked.map_err(|error| EncodeError::Io {
        context: "checking the frames".to_owned(),
        source: std::io::Error::other(error),
    })?
}

/// `<dir>/.<file name>.partial`: hidden, on the same file system, so the rename is atomic.
fn partial_path(output: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(output.file_name().unwrap_or_default());
    name.push(".partial");
    output.with_file_name(name)
}

/// Flushes the verified file to disk and renames it into place; returns its size.
async fn finish(partial: &Path, output: &Path) -> EncodeResult<u64> {
    let partial_owned = partial.to_path_buf();
    let synced = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&partial_owned)?;
        file.sync_all()?;
        file.metadata().map(|meta| meta.len())
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|result| result);
    let size_bytes = synced.map_err(|source| EncodeError::Io {
        context: format!("cannot flush {}", partial.display()),
        source,
    })?;
    tokio::fs::rename(partial, output)
        .await
        .map_err(|source| EncodeError::Io {
            context: format!("cannot rename {} to {}", partial.display(), output.display()),
            source,
        })?;
    Ok(size_bytes)
}

async fn remove_partial(partial: &Path) {
    match tokio::fs::remove_file(partial).await {
        Ok(()) => debug!(partial = %partial.display(), "partial encode removed"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => warn!(partial = %partial.display(), %error, "cannot remove the partial encode"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The partial file is a hidden sibling of the output.
    #[test]
    fn partial_file_is_a_hidden_sibling() {
        assert_eq!(
            partial_path(Path::new("/exports/job/video.mp4")),
            PathBuf::from("/exports/job/.video.mp4.partial")
        );
    }
}
