//! The HTTP store: exports uploaded to the file service at `<url>/<tenant id>/<job id>/<file
//! name>`. The upload is a conditional `PUT` (`If-None-Match: *`) with the body streamed from the
//! file, `Content-Length` and `X-Content-Blake3`, so it never overwrites another attempt's upload:
//! a 412 answer means one exists, and it is read back (`HEAD`, or a hashed `GET` when the server
//! gives no checksum) and adopted.
//!
//! Each attempt has a deadline (`export.timeout_seconds`); connection errors, timeouts, 5xx, 408
//! and 429 are retried with capped exponential back-off with full jitter (`crate::retry`), at
//! least as long as a `Retry-After` asks; other statuses fail at once with a short excerpt of the
//! body.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use flatrender_proto::types::ContentHash;

use super::error::is_retryable_status;
use super::{ExportError, ExportKey, StoredExport};
use crate::config::ExportSettings;
use crate::retry::Backoff;

/// Header carrying the BLAKE3 of the body (64 lowercase hex characters), both ways.
pub const CHECKSUM_HEADER: &str = "x-content-blake3";

/// Longest wait between two attempts, whatever the base delay and `Retry-After` say.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Characters of an error response's body quoted in the error.
const EXCERPT_CHARS: usize = 200;

/// Exports uploaded to the file service.
pub struct HttpStore {
    client: reqwest::Client,
    /// The configured URL, its path ending in `/`.
    base: Url,
    /// Sent as `Authorization: Bearer <token>` when set.
    auth_token_opt: Option<String>,
    max_attempts: u32,
    retry_base: Duration,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStore")
            .field("base", &self.base.as_str())
            .field("authorized", &self.auth_token_opt.is_some())
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, and how long the server asked us to wait.
struct Failure {
    error: ExportError,
    retry_after_opt: Option<Duration>,
}

impl From<ExportError> for Failure {
    fn from(error: ExportError) -> Self {
        Self {
            error,
            retry_after_opt: None,
        }
    }
}

impl HttpStore {
    /// The store `settings` describe (`export.url`, the token from `export.auth_token_file`).
    pub fn new(settings: &ExportSettings) -> Result<Self, ExportError> {
        let config_error = |key, message: String| ExportError::Config { key, message };
        let mut base = Url::parse(&settings.url).map_err(|error| config_error("export.url", error.to_string()))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(config_error(
                "export.url",
                format!("{:?} must be an http(s) URL", settings.url),
            ));
        }
        let auth_token_opt = if settings.auth_token_file.as_os_str().is_empty() {
            None
        } else {
            let token = std::fs::read_to_string(&settings.auth_token_file).map_err(|error| {
                config_error(
                    "export.auth_token_file",
                    format!("cannot read {}: {error}", settings.auth_token_file.display()),
                )
            })?;
            let token = token.trim().to_owned();
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(config_error(
                    "export.auth_token_file",
                    format!("{} must hold one token", settings.auth_token_file.display()),
                ));
            }
            Some(token)
        };
        let attempt_timeout = Duration::from_secs(settings.timeout_seconds.max(1));
        let client = reqwest::Client::builder()
            .connect_timeout(attempt_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("flatrender-node-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| config_error("export.url", format!("cannot build the HTTP client: {error}")))?;
        Ok(Self {
            client,
            base,
            auth_token_opt,
            max_attempts: settings.max_attempts.max(1),
            retry_base: Duration::from_millis(settings.retry_base_ms),
            attempt_timeout,
        })
    }

    /// The URL of `key`'s upload: the base with the key's three segments, percent-encoded.
    pub fn url_for(&self, key: &ExportKey) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(key.segments());
        }
        url
    }

    /// Uploads `file` under `key`, or adopts the upload an earlier attempt made there.
    pub async fn store(
        &self,
        file: &Path,
        key: &ExportKey,
        checksum: &ContentHash,
        size_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<StoredExport, ExportError> {
        let url = self.url_for(key);
        let metadata = tokio::fs::metadata(file)
            .await
            .map_err(|error| ExportError::io(file, "look at the file to store", error))?;
        if metadata.len() != size_bytes {
            return Err(ExportError::SourceMismatch {
                location: file.display().to_string(),
                message: format!("expected {size_bytes} bytes, the file has {}", metadata.len()),
            });
        }
        let stored = self
            .with_retries(&url, cancel, || self.put_once(file, &url, checksum, size_bytes))
            .await?;
        if stored.adopted {
            info!(location = %url, size_bytes = stored.size_bytes, ours = %checksum, theirs = %stored.checksum,
                "export already uploaded by an earlier attempt, adopted");
        } else {
            info!(location = %url, size_bytes, "export uploaded");
        }
        Ok(stored)
    }

    /// Deletes the upload at `location` (a URL this store returned); already gone (404, 410) is
    /// fine.
    pub async fn discard(&self, location: &str) -> Result<(), ExportError> {
        let url = Url::parse(location)
            .ok()
            .filter(|url| url.as_str().starts_with(self.base.as_str()))
            .ok_or_else(|| ExportError::Unexpected {
                location: location.to_owned(),
                message: format!("not an export of the store at {}", self.base),
            })?;
        let never_cancelled = CancellationToken::new();
        let url_ref = &url;
        self.with_retries(&url, &never_cancelled, || async move {
            let url = url_ref;
            let response = self.send(Method::DELETE, url).await?;
            match response.status() {
                status if status.is_success() => {
                    info!(location = %url, "export discarded");
                    Ok(())
                }
                StatusCode::NOT_FOUND | StatusCode::GONE => {
                    debug!(location = %url, "export already gone");
                    Ok(())
                }
                _ => Err(status_failure("DELETE", url, response).await),
            }
        })
        .await
    }

    /// Runs `attempt` until it succeeds, fails for good, `cancel` fires, or the attempts run out.
    async fn with_retries<T, F, Fut>(
        &self,
        url: &Url,
        cancel: &CancellationToken,
        mut attempt: F,
    ) -> Result<T, ExportError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let cancelled = || ExportError::Cancelled {
            location: url.to_string(),
        };
        let mut backoff = Backoff::new(self.retry_base, MAX_BACKOFF);
        let mut num_attempts = 0_u32;
        loop {
            num_attempts += 1;
            let outcome = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(cancelled()),
                outcome = tokio::time::timeout(self.attempt_timeout, attempt()) => outcome,
            };
            let failure = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_elapsed) => Failure::from(ExportError::Unreachable {
                    method: "request",
                    location: url.to_string(),
                    message: format!("no complete answer within {} s", self.attempt_timeout.as_secs()),
                }),
            };
            if !failure.error.is_retryable() {
                return Err(failure.error);
            }
            if num_attempts >= self.max_attempts {
                return Err(ExportError::GaveUp {
                    location: url.to_string(),
                    attempts: num_attempts,
                    last: Box::new(failure.error),
                });
            }
            let delay = backoff
                .next_delay()
                .max(failure.retry_after_opt.unwrap_or_default())
                .min(MAX_BACKOFF);
            warn!(location = %url, attempt = num_attempts, error = %failure.error,
                delay_ms = delay.as_millis() as u64, "export store request failed, retrying");
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(cancelled()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One conditional upload; on 412 the existing upload is adopted.
    async fn put_once(
        &self,
        file: &Path,
        url: &Url,
        checksum: &ContentHash,
        size_bytes: u64,
    ) -> Result<StoredExport, Failure> {
        let body = tokio::fs::File::open(file)
            .await
            .map_err(|error| ExportError::io(file, "open the file to store", error))?;
        let request = self
            .authorized(self.client.put(url.clone()))
            .header(CONTENT_LENGTH, size_bytes)
            .header(CHECKSUM_HEADER, checksum.to_hex())
            .header(IF_NONE_MATCH, "*")
            .body(reqwest::Body::from(body));
        let response = request.send().await.map_err(|error| transport("PUT", url, &error))?;
        match response.status() {
            status if status.is_success() => Ok(StoredExport {
                location: url.to_string(),
                size_bytes,
                checksum: *checksum,
                adopted: false,
            }),
            StatusCode::PRECONDITION_FAILED => {
                debug!(location = %url, "an upload exists already, reading it back");
                self.existing(url).await
            }
            _ => Err(status_failure("PUT", url, response).await),
        }
    }

    /// The upload another attempt made: its size and checksum from `HEAD`, or from hashing a
    /// `GET` when the server does not give the checksum.
    async fn existing(&self, url: &Url) -> Result<StoredExport, Failure> {
        let response = self.send(Method::HEAD, url).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(vanished(url));
        }
        if !status.is_success() {
            return Err(status_failure("HEAD", url, response).await);
        }
        if let Some((checksum, size_bytes)) = described(response.headers()) {
            return Ok(adopted(url, checksum, size_bytes));
        }
        let mut response = self.send(Method::GET, url).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(vanished(url));
        }
        if !status.is_success() {
            return Err(status_failure("GET", url, response).await);
        }
        let mut hasher = blake3::Hasher::new();
        let mut size_bytes = 0_u64;
        while let Some(chunk) = response.chunk().await.map_err(|error| transport("GET", url, &error))? {
            hasher.update(&chunk);
            size_bytes = size_bytes.saturating_add(chunk.len() as u64);
        }
        Ok(adopted(
            url,
            ContentHash::from_bytes(*hasher.finalize().as_bytes()),
            size_bytes,
        ))
    }

    /// A bodiless request (`HEAD`, `GET`, `DELETE`).
    async fn send(&self, method: Method, url: &Url) -> Result<reqwest::Response, Failure> {
        let method_name = method_name(&method);
        self.authorized(self.client.request(method, url.clone()))
            .send()
            .await
            .map_err(|error| Failure::from(transport(method_name, url, &error)))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth_token_opt {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }
}

fn adopted(url: &Url, checksum: ContentHash, size_bytes: u64) -> StoredExport {
    StoredExport {
        location: url.to_string(),
        size_bytes,
        checksum,
        adopted: true,
    }
}

fn vanished(url: &Url) -> Failure {
    Failure::from(ExportError::Vanished {
        location: url.to_string(),
    })
}

/// The checksum and size a `HEAD` answer gives, when it gives both well-formed. `Content-Length`
/// is read from the header: a `HEAD` response has no body whose size reqwest could report.
fn described(headers: &HeaderMap) -> Option<(ContentHash, u64)> {
    let checksum_text = headers.get(CHECKSUM_HEADER)?.to_str().ok()?;
    let checksum = ContentHash::parse_hex(checksum_text.trim(), CHECKSUM_HEADER).ok()?;
    let size_bytes = headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()?;
    Some((checksum, size_bytes))
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        Method::GET => "GET",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// A request that got no answer: retryable, with the error's causes (reqwest's own message
/// omits them: "error sending request" says nothing of the refused connection).
fn transport(method: &'static str, url: &Url, error: &reqwest::Error) -> ExportError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    // The URL is already in the error's own location.
    let message = message.replace(&format!(" for url ({url})"), "");
    ExportError::Unreachable {
        method,
        location: url.to_string(),
        message,
    }
}

/// An unexpected status, with the start of the body and the server's `Retry-After`.
async fn status_failure(method: &'static str, url: &Url, response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let retry_after_opt = if is_retryable_status(status) {
        retry_after(response.headers())
    } else {
        None
    };
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    Failure {
        error: ExportError::Status {
            method,
            location: url.to_string(),
            status,
            excerpt: if excerpt.is_empty() {
                String::new()
            } else {
                format!(": {excerpt}")
            },
        },
        retry_after_opt,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use flatrender_proto::types::{JobId, TenantId};

    use super::*;
    use crate::config::ExportStoreKind;

    fn store(url: &str) -> HttpStore {
        HttpStore::new(&ExportSettings {
            store: ExportStoreKind::Http,
            url: url.into(),
            ..ExportSettings::default()
        })
        .unwrap()
    }

    /// The key's segments go after the base path, percent-encoded, whether or not the base ends
    /// in a slash.
    #[test]
    fn upload_url_appends_encoded_segments() {
        let tenant_id = TenantId::new_random();
        let job_id = JobId::new_random();
        let key = ExportKey::new(tenant_id, job_id, "promo 100%#1 é.mp4").unwrap();
        let expected =
            format!("http://files.internal:8080/exports/{tenant_id}/{job_id}/promo%20100%25%231%20%C3%A9.mp4");
        assert_eq!(
            store("http://files.internal:8080/exports").url_for(&key).as_str(),
            expected
        );
        assert_eq!(
            store("http://files.internal:8080/exports/").url_for(&key).as_str(),
            expected
        );
        let at_root = store("https://files.internal").url_for(&key);
        assert_eq!(
            at_root.path(),
            format!("/{tenant_id}/{job_id}/promo%20100%25%231%20%C3%A9.mp4")
        );
    }

    /// A `HEAD` answer describes the upload only with a well-formed checksum and a length.
    #[test]
    fn head_headers_describe_an_upload_only_when_complete() {
        let hash = ContentHash::from_bytes(*blake3::hash(b"video").as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, "5".parse().unwrap());
        assert_eq!(described(&headers), None);
        headers.insert(CHECKSUM_HEADER, hash.to_hex().to_uppercase().parse().unwrap());
        assert_eq!(described(&headers), Some((hash, 5)));
        headers.insert(CHECKSUM_HEADER, "not-hex".parse().unwrap());
        assert_eq!(described(&headers), None);
        headers.insert(CHECKSUM_HEADER, hash.to_hex().parse().unwrap());
        headers.remove(CONTENT_LENGTH);
        assert_eq!(described(&headers), None);
    }

    /// The bearer token is read from its file, and the store's debug output does not show it.
    #[test]
    fn token_is_read_from_its_file_and_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret-token\n").unwrap();
        let settings = ExportSettings {
            store: ExportStoreKind::Http,
            url: "http://files.internal/".into(),
            auth_token_file: token_file,
            ..ExportSettings::default()
        };
        let store = HttpStore::new(&settings).unwrap();
        assert_eq!(store.auth_token_opt.as_deref(), Some("s3cret-token"));
        assert!(!format!("{store:?}").contains("s3cret"));
        let missing = ExportSettings {
            auth_token_file: dir.path().join("absent"),
            ..settings
        };
        let error = HttpStore::new(&missing).unwrap_err();
        assert!(error.to_string().starts_with("export.auth_token_file: "), "{error}");
    }
}
