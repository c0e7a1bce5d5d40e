//! Fetching one template or asset over HTTP into a temporary file inside the cache folder,
//! hashing the bytes as they arrive.
//!
//! Each attempt has its own deadline. Transient failures (connect errors, timeouts, broken
//! bodies, 408, 429, 5xx) are retried with exponential backoff; other statuses fail at once. When
//! an attempt breaks after some bytes and the server advertised `Accept-Ranges: bytes`, the next
//! attempt asks for `Range: bytes=N-` and appends on `206` (a `200` restarts from zero). A size
//! or hash mismatch deletes the file and refetches once from scratch before failing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_RANGES, CONTENT_RANGE, RANGE, RETRY_AFTER};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use flatrender_proto::types::{ContentHash, HttpUrl};

use super::error::{CacheError, CacheResult};
use super::store;

/// Longest wait between two attempts, whatever the base delay and `Retry-After` say.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Integrity failures (size or hash) tolerated before giving up: the first one refetches.
const MAX_INTEGRITY_FAILURES: u32 = 2;

/// One template or asset to fetch, and the retry policy.
pub(crate) struct DownloadRequest<'a> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) dir: &'a Path,
    pub(crate) url: &'a HttpUrl,
    pub(crate) hash: ContentHash,
    pub(crate) size_bytes: u64,
    pub(crate) attempt_timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base_delay: Duration,
    /// Incremented for every size or hash mismatch.
    pub(crate) num_integrity_failures: &'a AtomicU64,
}

/// Why one attempt ended without a complete body.
#[derive(Debug)]
enum AttemptError {
    /// Worth retrying after a backoff (`retry_after` from the server, when given).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying would not help (most 4xx, malformed request).
    Permanent(String),
    /// Local disk trouble; not a network problem, so not retried.
    Local(CacheError),
    /// More or fewer bytes than the declared size.
    Size { actual: u64 },
}

/// The bytes received so far (in the file and in the hasher, always in step).
struct Partial {
    hasher: blake3::Hasher,
    num_bytes: u64,
    /// The server advertised `Accept-Ranges: bytes`.
    resumable: bool,
}

/// Deletes the temporary file unless the download succeeded (also when the task is dropped).
struct TempFileGuard {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFileGuard {
    fn drop(&mut self) {
        if !self.keep {
            let _ = store::remove_path(&self.path);
        }
    }
}

/// Downloads and verifies the file; returns the temporary file holding exactly the
/// expected bytes. The caller installs (and so consumes) it.
pub(crate) async fn download(request: &DownloadRequest<'_>) -> CacheResult<PathBuf> {
    let mut guard = TempFileGuard {
        path: store::new_temp_path(request.dir),
        keep: false,
    };
    let mut partial_opt: Option<Partial> = None;
    let mut attempt_budget = request.max_attempts.max(1);
    let mut num_integrity_failures = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let integrity_error = match run_attempt(request, &guard.path, &mut partial_opt).await {
            Ok(()) => match check_complete(request, partial_opt.as_ref()) {
                Ok(()) => {
                    info!(template_hash = %request.hash, url = %request.url, attempt, "downloaded");
                    guard.keep = true;
                    return Ok(guard.path.clone());
                }
                Err(error) => error,
            },
            Err(AttemptError::Size { actual }) => CacheError::SizeMismatch {
                hash: request.hash,
                expected: request.size_bytes,
                actual,
            },
            Err(AttemptError::Permanent(message)) => return Err(download_error(request, message)),
            Err(AttemptError::Local(error)) => return Err(error),
            Err(AttemptError::Transient { message, retry_after }) => {
                if attempt >= attempt_budget {
                    return Err(download_error(request, format!("{message} (after {attempt} attempts)")));
                }
                let delay = backoff(request.retry_base_delay, attempt).max(retry_after.unwrap_or_default());
                let delay = delay.min(MAX_BACKOFF);
                warn!(template_hash = %request.hash, url = %request.url, attempt, error = %message,
                    delay_ms = delay.as_millis() as u64, "download failed, retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        request.num_integrity_failures.fetch_add(1, Ordering::Relaxed);
        num_integrity_failures += 1;
        partial_opt = None;
        store::remove_path(&guard.path).map_err(|error| CacheError::io(&guard.path, error))?;
        if num_integrity_failures >= MAX_INTEGRITY_FAILURES {
            warn!(template_hash = %request.hash, url = %request.url, error = %integrity_error,
                "download corrupt again, giving up");
            return Err(integrity_error);
        }
        warn!(template_hash = %request.hash, url = %request.url, error = %integrity_error,
            "download corrupt, refetching from scratch");
        attempt_budget = attempt_budget.saturating_add(1);
    }
}

fn download_error(request: &DownloadRequest<'_>, message: String) -> CacheError {
    CacheError::Download {
        url: request.url.clone(),
        message,
    }
}

/// `base * 2^(attempt - 1)`, saturating.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exponent)
}

/// Whether an HTTP status is worth retrying.
fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT
}

/// The start offset of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _rest) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

fn check_complete(request: &DownloadRequest<'_>, partial_opt: Option<&Partial>) -> Result<(), CacheError> {
    let (num_bytes, actual) = match partial_opt {
        Some(partial) => (
            partial.num_bytes,
            ContentHash::from_bytes(*partial.hasher.finalize().as_bytes()),
        ),
        None => (0, ContentHash::from_bytes(*blake3::hash(b"").as_bytes())),
    };
    if num_bytes != request.size_bytes {
        return Err(CacheError::SizeMismatch {
            hash: request.hash,
            expected: request.size_bytes,
            actual: num_bytes,
        });
    }
    if actual != request.hash {
        return Err(CacheError::HashMismatch {
            expected: request.hash,
            actual,
        });
    }
    Ok(())
}

fn transient(message: impl Into<String>) -> AttemptError {
    AttemptError::Transient {
        message: message.into(),
        retry_after: None,
    }
}

/// One GET, resumed from `partial_opt` when possible, streamed into `temp_path`.
async fn run_attempt(
    request: &DownloadRequest<'_>,
    temp_path: &Path,
    partial_opt: &mut Option<Partial>,
) -> Result<(), AttemptError> {
    let deadline = Instant::now() + request.attempt_timeout;
    let resume_from = partial_opt
        .as_ref()
        .filter(|partial| partial.resumable && partial.num_bytes > 0 && partial.num_bytes < request.size_bytes)
        .map(|partial| partial.num_bytes);
    let mut http_request = request.client.get(request.url.as_str());
    if let Some(offset) = resume_from {
        debug!(template_hash = %request.hash, offset, "resuming download");
        http_request = http_request.header(RANGE, format!("bytes={offset}-"));
    }
    let mut response = match tokio::time::timeout_at(deadline, http_request.send()).await {
        Err(_elapsed) => return Err(transient("timed out waiting for the response")),
        Ok(Err(error)) if error.is_builder() => return Err(AttemptError::Permanent(error.to_string())),
        Ok(Err(error)) => return Err(transient(format!("request failed: {error}"))),
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    let appending = match (status, resume_from) {
        (StatusCode::PARTIAL_CONTENT, Some(offset)) => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .and_then(content_range_start);
            if start != Some(offset) {
                *partial_opt = None;
                return Err(transient(format!("unexpected content-range for offset {offset}")));
            }
            true
        }
        (StatusCode::OK, _) => false,
        (StatusCode::RANGE_NOT_SATISFIABLE, Some(_)) => {
            *partial_opt = None;
            return Err(transient("range not satisfiable, restarting from zero"));
        }
        (status, _) if is_transient_status(status) => {
            return Err(AttemptError::Transient {
                message: format!("http status {status}"),
                retry_after: retry_after(response.headers()),
            });
        }
        (status, _) => return Err(AttemptError::Permanent(format!("http status {status}"))),
    };
    let resumable = response
        .headers()
        .get(ACCEPT_RANGES)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("bytes"));
    let already_received = if appending {
        partial_opt.as_ref().map_or(0, |partial| partial.num_bytes)
    } else {
        0
    };
    if let Some(content_length) = response.content_length() {
        let announced_total = already_received.saturating_add(content_length);
        if announced_total != request.size_bytes {
            return Err(AttemptError::Size {
                actual: announced_total,
            });
        }
    }

    let local = |error: std::io::Error| AttemptError::Local(CacheError::io(temp_path, error));
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(temp_path)
        .await
        .map_err(local)?;
    file.set_len(already_received).await.map_err(local)?;
    file.seek(std::io::SeekFrom::Start(already_received))
        .await
        .map_err(local)?;
    let mut partial = match partial_opt.take() {
        Some(mut partial) if appending => {
            partial.resumable = resumable;
            partial
        }
        _ => Partial {
            hasher: blake3::Hasher::new(),
            num_bytes: 0,
            resumable,
        },
    };
    let result = stream_body(request, temp_path, deadline, &mut response, &mut file, &mut partial).await;
    let flushed = file.flush().await.map_err(local);
    *partial_opt = Some(partial);
    result.and(flushed)
}

/// Copies the body into `file`, hashing each chunk after it is written so that the file and
/// the hasher always hold the same bytes (the deadline only interrupts network reads).
async fn stream_body(
    request: &DownloadRequest<'_>,
    temp_path: &Path,
    deadline: Instant,
    response: &mut reqwest::Response,
    file: &mut tokio::fs::File,
    partial: &mut Partial,
) -> Result<(), AttemptError> {
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_elapsed) => return Err(transient(format!("timed out after {} bytes", partial.num_bytes))),
            Ok(Err(error)) => {
                return Err(transient(format!(
                    "body interrupted after {} bytes: {error}",
                    partial.num_bytes
                )));
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let num_bytes_after = partial.num_bytes.saturating_add(chunk.len() as u64);
        if num_bytes_after > request.size_bytes {
            return Err(AttemptError::Size {
                actual: num_bytes_after,
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|error| AttemptError::Local(CacheError::io(temp_path, error)))?;
        partial.hasher.update(&chunk);
        partial.num_bytes = num_bytes_after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Backoff doubles from the base delay and saturates instead of overflowing.
    #[test]
    fn backoff_doubles_per_attempt() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert!(backoff(Duration::MAX, 5) >= Duration::from_secs(1));
        assert_eq!(backoff(base, 0), base);
    }

    /// 5xx, 429 and 408 are transient; other 4xx and 3xx are not.
    #[test]
    fn transient_statuses_are_classified() {
        for status in [500, 502, 503, 504, 429, 408] {
            assert!(
                is_transient_status(StatusCode::from_u16(status).expect("status")),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 410, 416, 301] {
            assert!(
                !is_transient_status(StatusCode::from_u16(status).expect("status")),
                "{status}"
            );
        }
    }

    /// The start of a `Content-Range` header is parsed; malformed values are `None`.
    #[test]
    fn content_range_start_is_parsed() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start(" bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
        assert_eq!(content_range_start(""), None);
    }

    /// `Retry-After` seconds are honoured; HTTP dates and garbage are ignored.
    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"));
        assert_eq!(retry_after(&headers), None);
    }
}
