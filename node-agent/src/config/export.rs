//! `[export]`: where finished videos are stored (the shared folder or the file service's HTTP
//! upload), its defaults and its validation. The store itself is `crate::export`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the folder under `aerender.output_root` that holds exports when `export.folder` is
/// not set.
pub const DEFAULT_EXPORT_FOLDER_NAME: &str = "exports";

/// Which kind of store finished videos go to.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportStoreKind {
    /// A folder, usually the farm's shared storage (the default).
    #[default]
    Folder,
    /// An HTTP `PUT` to the file service.
    Http,
}

/// `[export]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// `folder` or `http`.
    pub store: ExportStoreKind,
    /// Root folder of the folder store (empty: `<aerender.output_root>/exports`, filled in when
    /// the configuration loads).
    pub folder: PathBuf,
    /// Base URL of the HTTP store; exports go to `<url>/<tenant id>/<job id>/<file name>`.
    pub url: String,
    /// File holding the bearer token sent to the HTTP store (empty: no `Authorization`).
    pub auth_token_file: PathBuf,
    /// Attempts per HTTP request before giving up (connection errors, timeouts, 5xx, 408, 429).
    pub max_attempts: u32,
    /// Base of the exponential back-off between those attempts, in milliseconds.
    pub retry_base_ms: u64,
    /// Deadline of one HTTP attempt (the whole upload), in seconds.
    pub timeout_seconds: u64,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            store: ExportStoreKind::Folder,
            folder: PathBuf::new(),
            url: String::new(),
            auth_token_file: PathBuf::new(),
            max_attempts: 5,
            retry_base_ms: 500,
            timeout_seconds: 600,
        }
    }
}

/// Longest back-off base accepted (a minute: more is a typo).
const MAX_RETRY_BASE_MS: u64 = 60_000;

impl ExportSettings {
    /// Fills in the default folder, `<output_root>/exports`, when none is set.
    pub fn resolve_default_folder(&mut self, output_root: &Path) {
        if self.folder.as_os_str().is_empty() {
            self.folder = output_root.join(DEFAULT_EXPORT_FOLDER_NAME);
        }
    }

    /// Checks the values; the error names the first bad key (`export.url`) and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self.store {
            ExportStoreKind::Folder => {
                if self.folder.as_os_str().is_empty() {
                    return Err(("export.folder", "required for the folder store".into()));
                }
                if self.folder.to_str().is_none() {
                    return Err((
                        "export.folder",
                        "must be valid UTF-8 (locations are recorded as text)".into(),
                    ));
                }
            }
            ExportStoreKind::Http => check_url(&self.url)?,
        }
        if self.max_attempts == 0 {
            return Err(("export.max_attempts", "must be at least 1".into()));
        }
        if self.retry_base_ms > MAX_RETRY_BASE_MS {
            return Err(("export.retry_base_ms", format!("must be at most {MAX_RETRY_BASE_MS}")));
        }
        if self.timeout_seconds == 0 {
            return Err(("export.timeout_seconds", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The HTTP store's base URL: an absolute http(s) URL with a host, no query or fragment (the key
/// is appended to its path).
fn check_url(url: &str) -> Result<(), (&'static str, String)> {
    const KEY: &str = "export.url";
    if url.is_empty() {
        return Err((KEY, "required when export.store is \"http\"".into()));
    }
    let parsed = reqwest::Url::parse(url).map_err(|error| (KEY, format!("{url:?} is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err((KEY, format!("{url:?} must start with http:// or https://")));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err((KEY, format!("{url:?} must name a host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err((KEY, format!("{url:?} must not have a query or fragment")));
    }
    if parsed.cannot_be_a_base() {
        return Err((KEY, format!("{url:?} cannot be a base URL")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> ExportSettings {
        ExportSettings {
            store: ExportStoreKind::Http,
            url: url.into(),
            ..ExportSettings::default()
        }
    }

    /// The default folder goes under the output root, and a folder set explicitly is kept.
    #[test]
    fn default_folder_is_under_the_output_root() {
        let mut settings = ExportSettings::default();
        settings.resolve_default_folder(Path::new("/srv/renders"));
        assert_eq!(settings.folder, PathBuf::from("/srv/renders/exports"));
        settings.resolve_default_folder(Path::new("/elsewhere"));
        assert_eq!(settings.folder, PathBuf::from("/srv/renders/exports"), "kept once set");
        assert_eq!(settings.check(), Ok(()));
        assert_eq!(ExportSettings::default().check().unwrap_err().0, "export.folder");
    }

    /// The HTTP store needs an absolute http(s) URL with a host and no query.
    #[test]
    fn http_store_url_is_checked() {
        assert_eq!(http("http://files.internal:8080/exports").check(), Ok(()));
        assert_eq!(http("https://files.internal/").check(), Ok(()));
        for bad in [
            "",
            "ftp://files.internal/x",
            "files.internal/x",
            "http://files/x?a=1",
            "http://files/x#f",
        ] {
            let (key, message) = http(bad).check().unwrap_err();
            assert_eq!(key, "export.url", "{bad:?}: {message}");
        }
    }

    /// Retry settings are bounded and name their key.
    #[test]
    fn retry_settings_are_checked() {
        let base = http("http://files.internal/");
        let no_attempts = ExportSettings {
            max_attempts: 0,
            ..base.clone()
        };
        assert_eq!(no_attempts.check().unwrap_err().0, "export.max_attempts");
        let slow = ExportSettings {
            retry_base_ms: MAX_RETRY_BASE_MS + 1,
            ..base.clone()
        };
        assert_eq!(slow.check().unwrap_err().0, "export.retry_base_ms");
        let no_time = ExportSettings {
            timeout_seconds: 0,
            ..base
        };
        assert_eq!(no_time.check().unwrap_err().0, "export.timeout_seconds");
    }
}
