//! The entry manifest (`<hex>/entry.json`): what an installed cache entry holds, file by file
//! with BLAKE3 digests, and the rules for the entry-relative paths it lists. Plain data and pure
//! functions; `store` reads and writes it, `bundle` fills in the files of an extracted zip.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use flatrender_proto::types::{ContentHash, TemplateId};

/// Format of `entry.json`; a manifest of another format is not trusted.
pub(crate) const MANIFEST_FORMAT: u32 = 1;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EntryKind {
    /// A plain `.aep` download.
    Project,
    /// An extracted zip bundle (project and footage).
    Bundle,
    /// One asset file (image, video, audio) of the asset cache, kept as downloaded.
    Asset,
}

/// One file of an entry, relative to the entry folder, with its BLAKE3 digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestFile {
    pub(crate) path: String,
    pub(crate) size_bytes: u64,
    pub(crate) blake3: String,
}

/// `<hex>/entry.json`: written in the staging folder before the atomic rename, so an entry
/// folder without a valid manifest is never a complete install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EntryManifest {
    pub(crate) format: u32,
    pub(crate) hash: String,
    pub(crate) kind: EntryKind,
    /// The project to render (an asset entry: its file), relative to the entry folder,
    /// `/`-separated.
    pub(crate) project: String,
    pub(crate) template_id: Option<TemplateId>,
    pub(crate) template_version: i32,
    pub(crate) installed_at: DateTime<Utc>,
    pub(crate) files: Vec<ManifestFile>,
}

impl EntryManifest {
    /// Bytes the entry's files occupy.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size_bytes).sum()
    }

    /// The project path relative to the entry folder, as a native path.
    pub(crate) fn project_path(&self) -> PathBuf {
        join_relative(Path::new(""), &self.project)
    }

    /// Structural checks of a manifest read from disk (never trust disk input).
    pub(crate) fn check(&self, hash: &ContentHash) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!("unknown manifest format {}", self.format));
        }
        if self.hash != hash.to_hex() {
            return Err(format!("manifest is for {}", self.hash));
        }
        for file in &self.files {
            if safe_relative_path(&file.path).as_deref() != Some(file.path.as_str()) {
                return Err(format!("manifest lists unsafe path {:?}", file.path));
            }
        }
        if !self.files.iter().any(|file| file.path == self.project) {
            return Err(format!("project {:?} is not among the files", self.project));
        }
        let single_file = matches!(self.kind, EntryKind::Project | EntryKind::Asset);
        if single_file && (self.files.len() != 1 || self.files.iter().any(|file| file.blake3 != self.hash)) {
            return Err("a single-file entry must hold one file whose digest is the entry hash".to_owned());
        }
        Ok(())
    }
}

/// Normalises a zip entry or manifest name into `/`-separated relative components, refusing
/// anything that could escape the target folder: `..`, absolute paths (`/x`, `\x`), drive or
/// stream prefixes (`C:`), NUL bytes. Both `/` and `\` separate components (Windows zippers
/// write either). `.` and empty components are dropped; an all-empty name is refused.
pub(crate) fn safe_relative_path(name: &str) -> Option<String> {
    if name.is_empty() || name.contains('\0') || name.starts_with(['/', '\\']) {
        return None;
    }
    let mut components = Vec::new();
    for component in name.split(['/', '\\']) {
        match component {
            "" | "." => continue,
            ".." => return None,
            other if other.contains(':') => return None,
            other => components.push(other),
        }
    }
    if components.is_empty() {
        return None;
    }
    Some(components.join("/"))
}

/// `relative` (already validated, `/`-separated) as a path under `base`.
pub(crate) fn join_relative(base: &Path, relative: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    path.extend(relative.split('/'));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain relative names pass, normalised to `/` separators without `.` or empty parts.
    #[test]
    fn safe_relative_path_normalises_plain_names() {
        assert_eq!(safe_relative_path("project.aep").as_deref(), Some("project.aep"));
        assert_eq!(safe_relative_path("a/b/c.aep").as_deref(), Some("a/b/c.aep"));
        assert_eq!(safe_relative_path("a\\b\\c.aep").as_deref(), Some("a/b/c.aep"));
        assert_eq!(safe_relative_path("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(
            safe_relative_path("footage/..data.mov").as_deref(),
            Some("footage/..data.mov")
        );
    }

    /// Parent components, absolute paths, drive prefixes, NUL and empty names are refused.
    #[test]
    fn safe_relative_path_refuses_escapes() {
        for name in [
            "../evil",
            "a/../../evil",
            "a/..",
            "..\\evil",
            "/etc/passwd",
            "\\windows\\evil",
            "C:\\evil",
            "C:evil",
            "a/b:stream",
            "a\0b",
            "",
            ".",
            "./",
        ] {
            assert_eq!(safe_relative_path(name), None, "{name:?} must be refused");
        }
    }

    /// `join_relative` builds a path below the base from `/`-separated parts.
    #[test]
    fn join_relative_stays_below_base() {
        let joined = join_relative(Path::new("/cache/x"), "a/b.aep");
        assert_eq!(joined, Path::new("/cache/x").join("a").join("b.aep"));
    }
}
