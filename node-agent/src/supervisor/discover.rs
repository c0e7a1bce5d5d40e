//! Where aerender is installed (docs/aerender.md §1.2): a configured path wins; otherwise the
//! newest `Adobe After Effects <version>` folder under the OS's install root
//! (`%ProgramFiles%\Adobe` with `Support Files\aerender.exe` inside on Windows, `/Applications`
//! with `aerender` inside on macOS). Other OSes have no default location.
//!
//! Blocking file-system calls: call from `spawn_blocking` or before the runtime starts.

use std::path::{Path, PathBuf};

use super::command::ae_major_version;
use super::{SupervisorError, SupervisorResult};

/// Folder-name prefix of an After Effects install.
const INSTALL_FOLDER_PREFIX: &str = "Adobe After Effects";

/// A usable aerender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AerenderInstall {
    /// The aerender executable.
    pub path: PathBuf,
    /// The install folder's version label (`2025`, `CC 2019`), when the path contains an
    /// `Adobe After Effects <version>` folder; feed it to `ChunkCommand::build_args`.
    pub version: Option<String>,
}

/// How aerender sits inside an `Adobe After Effects <version>` folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallLayout {
    /// `Support Files\aerender.exe`.
    Windows,
    /// `aerender`.
    MacOs,
}

impl InstallLayout {
    fn binary_in_install(self) -> &'static [&'static str] {
        match self {
            Self::Windows => &["Support Files", "aerender.exe"],
            Self::MacOs => &["aerender"],
        }
    }
}

/// The folders that hold `Adobe After Effects <version>` installs on this OS, and their layout
/// (`None` where After Effects does not exist, e.g. Linux).
pub fn default_search_roots() -> (Vec<PathBuf>, Option<InstallLayout>) {
    if cfg!(windows) {
        let mut roots: Vec<PathBuf> = ["ProgramW6432", "ProgramFiles"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|program_files| PathBuf::from(program_files).join("Adobe"))
            .collect();
        roots.push(PathBuf::from(r"C:\Program Files\Adobe"));
        roots.dedup();
        (roots, Some(InstallLayout::Windows))
    } else if cfg!(target_os = "macos") {
        (vec![PathBuf::from("/Applications")], Some(InstallLayout::MacOs))
    } else {
        (Vec::new(), None)
    }
}

/// Finds aerender: `configured` if given (it must be an existing file), else the newest install
/// in this OS's default location.
pub fn find_aerender(configured: Option<&Path>) -> SupervisorResult<AerenderInstall> {
    let (roots, layout) = default_search_roots();
    find_aerender_in(configured, &roots, layout)
}

/// [`find_aerender`] with explicit search roots and layout.
pub fn find_aerender_in(
    configured: Option<&Path>,
    roots: &[PathBuf],
    layout: Option<InstallLayout>,
) -> SupervisorResult<AerenderInstall> {
    if let Some(path) = configured {
        return configured_install(path);
    }
    let binary_parts = layout.map(InstallLayout::binary_in_install).unwrap_or(&["aerender"]);
    let binary = binary_parts.join(std::path::MAIN_SEPARATOR_STR);
    let not_found = || SupervisorError::AerenderNotFound {
        searched: roots.to_vec(),
        binary: binary.clone(),
    };
    if layout.is_none() {
        return Err(not_found());
    }
    let mut candidates: Vec<(VersionRank, AerenderInstall)> = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            let folder_name = entry.file_name().to_string_lossy().into_owned();
            let Some(label) = install_label(&folder_name) else {
                continue;
            };
            let path = binary_parts.iter().fold(entry.path(), |path, part| path.join(part));
            if path.is_file() {
                let version = (!label.is_empty()).then(|| label.to_owned());
                candidates.push((VersionRank::of(label), AerenderInstall { path, version }));
            }
        }
    }
    candidates.sort_by(|(rank_a, install_a), (rank_b, install_b)| {
        rank_a.cmp(rank_b).then_with(|| install_a.path.cmp(&install_b.path))
    });
    candidates.pop().map(|(_, install)| install).ok_or_else(not_found)
}

fn configured_install(path: &Path) -> SupervisorResult<AerenderInstall> {
    let invalid = |reason: &str| SupervisorError::ConfiguredAerenderInvalid {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => {}
        Ok(_) => return Err(invalid("is not a file")),
        Err(error) => return Err(invalid(&format!("cannot be read ({error})"))),
    }
    let version = path
        .ancestors()
        .filter_map(Path::file_name)
        .find_map(|name| install_label(&name.to_string_lossy()).map(str::to_owned))
        .filter(|label| !label.is_empty());
    Ok(AerenderInstall {
        path: path.to_path_buf(),
        version,
    })
}

/// `Adobe After Effects 2025` → `2025`; `Adobe After Effects` → `` ; other names → `None`.
fn install_label(folder_name: &str) -> Option<&str> {
    let rest = folder_name.strip_prefix(INSTALL_FOLDER_PREFIX)?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some(rest.trim())
}

/// Orders installs: known major version first, then release over beta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct VersionRank {
    major: Option<u32>,
    is_release: bool,
}

impl VersionRank {
    fn of(label: &str) -> Self {
        Self {
            major: ae_major_version(label),
            is_release: !label.to_ascii_lowercase().contains("beta"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(root: &Path, folder: &str, layout: InstallLayout) -> PathBuf {
        let path = layout
            .binary_in_install()
            .iter()
            .fold(root.join(folder), |path, part| path.join(part));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        path
    }

    /// The newest Windows install wins; "CC 2019" sorts below 2020 and a beta below a release.
    #[test]
    fn newest_windows_install_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        install(root.path(), "Adobe After Effects CC 2019", InstallLayout::Windows);
        install(root.path(), "Adobe After Effects 2020", InstallLayout::Windows);
        let newest = install(root.path(), "Adobe After Effects 2025", InstallLayout::Windows);
        install(root.path(), "Adobe After Effects 2025 (Beta)", InstallLayout::Windows);
        install(root.path(), "Adobe Premiere Pro 2026", InstallLayout::Windows);
        std::fs::create_dir_all(root.path().join("Adobe After Effects 2026")).unwrap();
        let found = find_aerender_in(None, &[root.path().to_path_buf()], Some(InstallLayout::Windows)).unwrap();
        assert_eq!(found.path, newest);
        assert_eq!(found.version.as_deref(), Some("2025"));
    }

    /// macOS installs have aerender directly in the version folder; several roots are searched.
    #[test]
    fn macos_layout_across_roots() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        install(first.path(), "Adobe After Effects CC 2019", InstallLayout::MacOs);
        let newest = install(second.path(), "Adobe After Effects 2024", InstallLayout::MacOs);
        let roots = [first.path().to_path_buf(), second.path().to_path_buf()];
        let found = find_aerender_in(None, &roots, Some(InstallLayout::MacOs)).unwrap();
        assert_eq!(found.path, newest);
        assert_eq!(found.version.as_deref(), Some("2024"));
    }

    /// A configured file wins over installs and takes its version from the folder name.
    #[test]
    fn configured_path_wins() {
        let root = tempfile::tempdir().unwrap();
        install(root.path(), "Adobe After Effects 2025", InstallLayout::MacOs);
        let configured = install(root.path(), "Adobe After Effects 2022", InstallLayout::Windows);
        let found = find_aerender_in(
            Some(&configured),
            &[root.path().to_path_buf()],
            Some(InstallLayout::MacOs),
        )
        .unwrap();
        assert_eq!(found.path, configured);
        assert_eq!(found.version.as_deref(), Some("2022"));
        let elsewhere = root.path().join("aerender-custom");
        std::fs::write(&elsewhere, b"").unwrap();
        assert_eq!(find_aerender_in(Some(&elsewhere), &[], None).unwrap().version, None);
    }

    /// A configured folder or missing file is an error naming the path and the config key.
    #[test]
    fn configured_path_must_be_an_existing_file() {
        let root = tempfile::tempdir().unwrap();
        let folder_error = find_aerender_in(Some(root.path()), &[], None).unwrap_err().to_string();
        assert!(folder_error.contains("is not a file") && folder_error.contains("aerender_path"));
        let missing = root.path().join("nope");
        let missing_error = find_aerender_in(Some(&missing), &[], None).unwrap_err().to_string();
        assert!(missing_error.contains("cannot be read"), "{missing_error}");
    }

    /// Without installs the error lists the searched folders and how to configure the path.
    #[test]
    fn not_found_names_searched_folders() {
        let root = tempfile::tempdir().unwrap();
        let error = find_aerender_in(None, &[root.path().to_path_buf()], Some(InstallLayout::Windows))
            .unwrap_err()
            .to_string();
        assert!(error.contains(&root.path().display().to_string()), "{error}");
        assert!(
            error.contains("aerender.exe") && error.contains("aerender_path"),
            "{error}"
        );
        let no_default = find_aerender_in(None, &[], None).unwrap_err().to_string();
        assert!(no_default.contains("no default location"), "{no_default}");
    }
}
