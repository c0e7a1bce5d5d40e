//! Zip bundles: recognising them, extracting them safely (no entry may land outside the target
//! folder), hashing each extracted file for the entry manifest, and finding the project to render.
//!
//! Everything here is blocking file IO and runs inside `spawn_blocking` (see `store::install`).
//! The path and project rules are plain functions, unit-tested below.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use flatrender_proto::types::ContentHash;

use super::error::{CacheError, CacheResult};
use super::manifest::{ManifestFile, join_relative, safe_relative_path};

/// The local file header signature every zip archive starts with.
const ZIP_MAGIC: [u8; 4] = *b"PK\x03\x04";

/// The project name looked for at the bundle root when several `.aep` files are present.
const ROOT_PROJECT_NAME: &str = "project.aep";

/// Whether `path` starts with the zip magic bytes.
pub(crate) fn is_zip_file(path: &Path) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        let read = file.read(&mut magic[filled..])?;
        if read == 0 {
            return Ok(false);
        }
        filled += read;
    }
    Ok(magic == ZIP_MAGIC)
}

/// macOS resource-fork noise that must neither be extracted nor count as a project.
fn is_macos_metadata(relative: &str) -> bool {
    relative == "__MACOSX"
        || relative.starts_with("__MACOSX/")
        || relative
            .rsplit('/')
            .next()
            .is_some_and(|file_name| file_name.starts_with("._"))
}

fn has_aep_extension(relative: &str) -> bool {
    Path::new(relative)
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("aep"))
}

/// The project to render among the extracted files: the only `.aep` at any depth, otherwise
/// `project.aep` at the root, otherwise [`CacheError::BundleWithoutProject`].
pub(crate) fn find_project(hash: ContentHash, relative_paths: &[&str]) -> CacheResult<String> {
    let candidates: Vec<&str> = relative_paths
        .iter()
        .copied()
        .filter(|relative| has_aep_extension(relative))
        .collect();
    if let [only] = candidates.as_slice() {
        return Ok((*only).to_owned());
    }
    candidates
        .iter()
        .find(|relative| relative.eq_ignore_ascii_case(ROOT_PROJECT_NAME))
        .map(|relative| (*relative).to_owned())
        .ok_or(CacheError::BundleWithoutProject {
            hash,
            candidates: candidates.len(),
        })
}

/// Extracts the zip at `archive_path` into `target_dir` (which must exist and be empty),
/// hashing every file as it is written. Refuses unsafe names and symlinks before writing
/// anything. Returns the manifest records, sorted by path.
pub(crate) fn extract(hash: ContentHash, archive_path: &Path, target_dir: &Path) -> CacheResult<Vec<ManifestFile>> {
    let archive_file = File::open(archive_path).map_err(|error| CacheError::io(archive_path, error))?;
    let bad_bundle = |error: zip::result::ZipError| CacheError::BadBundle {
        hash,
        message: error.to_string(),
    };
    let mut archive = zip::ZipArchive::new(archive_file).map_err(bad_bundle)?;

    // First pass: validate every name so a bad archive leaves nothing half-written.
    let mut planned = Vec::with_capacity(archive.len());
    for entry_index in 0..archive.len() {
        let entry = archive.by_index_raw(entry_index).map_err(bad_bundle)?;
        let entry_name = entry.name().to_owned();
        let Some(relative) = safe_relative_path(&entry_name) else {
            return Err(CacheError::UnsafeBundlePath { hash, entry_name });
        };
        if entry.is_symlink() {
            return Err(CacheError::UnsafeBundlePath { hash, entry_name });
        }
        if is_macos_metadata(&relative) {
            continue;
        }
        planned.push((entry_index, relative, entry.is_dir()));
    }

    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for (entry_index, relative, is_dir) in planned {
        let output_path = join_relative(target_dir, &relative);
        if is_dir {
            std::fs::create_dir_all(&output_path).map_err(|error| CacheError::io(&output_path, error))?;
            continue;
        }
        if !seen.insert(relative.clone()) {
            return Err(CacheError::BadBundle {
                hash,
                message: format!("duplicate entry {relative:?}"),
            });
        }
        if let Some(parent) = output_path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| CacheError::io(parent, error))?;
        }
        let mut entry = archive.by_index(entry_index).map_err(bad_bundle)?;
        let (digest, size_bytes) = copy_hashing(&mut entry, &output_path)?;
        files.push(ManifestFile {
            path: relative,
            size_bytes,
            blake3: digest.to_hex(),
        });
    }
    files.sort_by(|left, right| left.path.cmp(&right.path));
    Ok(files)
}

/// Copies `reader` into a new file at `output_path`, hashing the bytes on the way.
fn copy_hashing(reader: &mut impl Read, output_path: &Path) -> CacheResult<(ContentHash, u64)> {
    let io_error = |error| CacheError::io(output_path, error);
    let mut output = File::create_new(output_path).map_err(io_error)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size_bytes = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(io_error)?;
        if read == 0 {
            break;
        }
        output.write_all(&buffer[..read]).map_err(io_error)?;
        hasher.update(&buffer[..read]);
        size_bytes += read as u64;
    }
    output.flush().map_err(io_error)?;
    Ok((ContentHash::from_bytes(*hasher.finalize().as_bytes()), size_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> ContentHash {
        ContentHash::from_bytes([7; 32])
    }

    /// macOS resource forks are recognised anywhere in the bundle.
    #[test]
    fn macos_metadata_is_recognised() {
        assert!(is_macos_metadata("__MACOSX"));
        assert!(is_macos_metadata("__MACOSX/._project.aep"));
        assert!(is_macos_metadata("sub/._project.aep"));
        assert!(!is_macos_metadata("sub/project.aep"));
        assert!(!is_macos_metadata("__MACOSX_not/x"));
    }

    /// The `.aep` extension matches in any case and only as the extension.
    #[test]
    fn aep_extension_is_case_insensitive() {
        assert!(has_aep_extension("a/B.AEP"));
        assert!(has_aep_extension("x.aep"));
        assert!(!has_aep_extension("x.aepx"));
        assert!(!has_aep_extension("aep"));
        assert!(!has_aep_extension("x.aep.bak"));
    }

    /// A single `.aep` anywhere in the bundle is the project.
    #[test]
    fn find_project_takes_the_only_aep_at_any_depth() {
        let project = find_project(hash(), &["footage/a.mov", "deep/er/Main.aep"]).expect("project");
        assert_eq!(project, "deep/er/Main.aep");
    }

    /// With several `.aep` files the root `project.aep` wins.
    #[test]
    fn find_project_prefers_root_project_aep_among_several() {
        let project = find_project(hash(), &["a/other.aep", "project.aep", "b/project.aep"]).expect("project");
        assert_eq!(project, "project.aep");
    }

    /// Several `.aep` files without a root `project.aep`, or none at all, is an error.
    #[test]
    fn find_project_without_a_unique_project_fails() {
        let several = find_project(hash(), &["a/one.aep", "b/two.aep"]);
        assert!(matches!(
            several,
            Err(CacheError::BundleWithoutProject { candidates: 2, .. })
        ));
        let none = find_project(hash(), &["footage/a.mov"]);
        assert!(matches!(
            none,
            Err(CacheError::BundleWithoutProject { candidates: 0, .. })
        ));
    }

    /// Zip magic is detected from the first four bytes; short or other files are not zips.
    #[test]
    fn zip_magic_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zip_path = dir.path().join("z");
        std::fs::write(&zip_path, b"PK\x03\x04rest").expect("write");
        let aep_path = dir.path().join("a");
        std::fs::write(&aep_path, b"RIFX....").expect("write");
        let short_path = dir.path().join("s");
        std::fs::write(&short_path, b"PK").expect("write");
        assert!(is_zip_file(&zip_path).expect("read"));
        assert!(!is_zip_file(&aep_path).expect("read"));
        assert!(!is_zip_file(&short_path).expect("read"));
    }
}
