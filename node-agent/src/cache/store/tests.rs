//! Unit tests of the on-disk layout: install, verification, start-up scan, index file.

use super::*;

fn install_plain(dir: &Path, bytes: &[u8]) -> (ContentHash, EntryManifest) {
    install_as(dir, bytes, CacheContent::Templates, None)
}

fn install_as(
    dir: &Path,
    bytes: &[u8],
    content: CacheContent,
    file_name: Option<&str>,
) -> (ContentHash, EntryManifest) {
    let hash = ContentHash::from_bytes(*blake3::hash(bytes).as_bytes());
    let downloaded_path = new_temp_path(dir);
    std::fs::write(&downloaded_path, bytes).expect("write download");
    let manifest = install(&InstallRequest {
        dir,
        content,
        file_name,
        hash,
        template_id: None,
        template_version: 2,
        downloaded_path: &downloaded_path,
        now: Utc::now(),
    })
    .expect("install");
    assert!(!downloaded_path.exists(), "the download is consumed");
    (hash, manifest)
}

/// A plain project installs as `<hex>/project.aep` with a manifest that verifies.
#[test]
fn plain_install_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hash, manifest) = install_plain(dir.path(), b"RIFXproject");
    assert_eq!(manifest.kind, EntryKind::Project);
    assert_eq!(manifest.size_bytes(), 11);
    assert_eq!(manifest.project_path(), PathBuf::from("project.aep"));
    assert!(entry_dir(dir.path(), &hash).join("project.aep").is_file());
    assert!(matches!(verify_entry(dir.path(), &hash), Verification::Valid(_)));
}

/// Changed bytes, a missing file, or a tampered manifest fail verification.
#[test]
fn verification_detects_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hash, _) = install_plain(dir.path(), b"RIFXproject");
    let project_path = entry_dir(dir.path(), &hash).join("project.aep");
    std::fs::write(&project_path, b"RIFXprojecX").expect("damage");
    assert!(matches!(verify_entry(dir.path(), &hash), Verification::Invalid(_)));
    std::fs::remove_file(&project_path).expect("remove");
    assert!(matches!(verify_entry(dir.path(), &hash), Verification::Invalid(_)));
    let manifest_path = entry_dir(dir.path(), &hash).join(MANIFEST_FILE_NAME);
    std::fs::write(&manifest_path, b"{").expect("damage manifest");
    assert!(matches!(verify_entry(dir.path(), &hash), Verification::Invalid(_)));
    let other = ContentHash::from_bytes([1; 32]);
    assert!(matches!(verify_entry(dir.path(), &other), Verification::Invalid(_)));
}

/// Manifests naming unsafe paths, a foreign hash or a project outside the files are refused.
#[test]
fn manifest_check_refuses_inconsistent_manifests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hash, manifest) = install_plain(dir.path(), b"RIFXproject");
    assert_eq!(manifest.check(&hash), Ok(()));
    let mut unsafe_path = manifest.clone();
    unsafe_path.files[0].path = "../project.aep".to_owned();
    unsafe_path.project = "../project.aep".to_owned();
    assert!(unsafe_path.check(&hash).is_err());
    assert!(manifest.check(&ContentHash::from_bytes([1; 32])).is_err());
    let mut missing_project = manifest.clone();
    missing_project.project = "other.aep".to_owned();
    assert!(missing_project.check(&hash).is_err());
    let mut future_format = manifest;
    future_format.format = 99;
    assert!(future_format.check(&hash).is_err());
}

/// The scan removes temporary leftovers and bad entries, keeps good ones, ignores strangers.
#[test]
fn scan_cleans_up_and_keeps_valid_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (good, _) = install_plain(dir.path(), b"RIFXgood");
    let (bad, _) = install_plain(dir.path(), b"RIFXbad");
    std::fs::write(entry_dir(dir.path(), &bad).join("project.aep"), b"RIFXbaD").expect("damage");
    std::fs::write(new_temp_path(dir.path()), b"partial").expect("leftover file");
    std::fs::create_dir(new_temp_path(dir.path())).expect("leftover dir");
    std::fs::write(dir.path().join("notes.txt"), b"keep me").expect("stranger");
    let outcome = scan(dir.path(), CacheContent::Templates).expect("scan");
    assert_eq!(outcome.entries.len(), 1);
    assert_eq!(outcome.entries[0].0, good);
    assert_eq!(outcome.num_temp_removed, 2);
    assert_eq!(outcome.num_invalid_removed, 1);
    assert!(!entry_dir(dir.path(), &bad).exists());
    assert!(dir.path().join("notes.txt").exists());
}

/// An asset installs as one file named `asset.<ext>` after the request's extension, and is
/// never extracted, even when it is a zip.
#[test]
fn asset_installs_as_one_file_with_its_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hash, manifest) = install_as(
        dir.path(),
        b"\x89PNGpixels",
        CacheContent::Assets,
        Some("Logo Final.PNG"),
    );
    assert_eq!(manifest.kind, EntryKind::Asset);
    assert_eq!(manifest.project, "asset.PNG");
    assert_eq!(
        std::fs::read(entry_dir(dir.path(), &hash).join("asset.PNG")).expect("asset file"),
        b"\x89PNGpixels"
    );
    assert!(matches!(verify_entry(dir.path(), &hash), Verification::Valid(_)));
    let (zip_hash, zip_manifest) = install_as(
        dir.path(),
        b"PK\x03\x04not extracted",
        CacheContent::Assets,
        Some("a.zip"),
    );
    assert_eq!(zip_manifest.kind, EntryKind::Asset);
    assert!(entry_dir(dir.path(), &zip_hash).join("asset.zip").is_file());
    assert_eq!(asset_file_name(Some("clip")), "asset");
    assert_eq!(asset_file_name(Some("x.tar.gz")), "asset.gz");
    assert_eq!(asset_file_name(Some("bad.e x t")), "asset");
    assert_eq!(asset_file_name(Some("long.abcdefghijklmnopq")), "asset");
    assert_eq!(asset_file_name(None), "asset");
}

/// Each cache keeps only its own kind of entry: the template cache drops an asset entry at the
/// start-up scan, the asset cache a project.
#[test]
fn scan_drops_entries_of_the_other_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (asset, _) = install_as(dir.path(), b"audio bytes", CacheContent::Assets, Some("a.wav"));
    let (project, _) = install_plain(dir.path(), b"RIFXproject");
    let outcome = scan(dir.path(), CacheContent::Templates).expect("scan");
    assert_eq!(
        outcome.entries.iter().map(|(hash, _)| *hash).collect::<Vec<_>>(),
        [project]
    );
    assert!(!entry_dir(dir.path(), &asset).exists());
    let outcome = scan(dir.path(), CacheContent::Assets).expect("scan");
    assert!(outcome.entries.is_empty());
    assert!(!entry_dir(dir.path(), &project).exists());
}

/// `index.json` round-trips; missing, corrupt or future-format files read as `None`.
#[test]
fn index_file_is_tolerant() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(read_index_file(dir.path()), None);
    let index_file = IndexFile::new(vec![IndexFileEntry {
        hash: "ab".repeat(32),
        template_id: None,
        template_version: 1,
        size_bytes: 5,
        hits: 2,
        last_used_at: Utc::now(),
    }]);
    write_index_file(dir.path(), &index_file).expect("write");
    assert_eq!(read_index_file(dir.path()), Some(index_file));
    std::fs::write(dir.path().join(INDEX_FILE_NAME), b"[1,2").expect("corrupt");
    assert_eq!(read_index_file(dir.path()), None);
    std::fs::write(dir.path().join(INDEX_FILE_NAME), br#"{"format":7,"entries":[]}"#).expect("future");
    assert_eq!(read_index_file(dir.path()), None);
}

/// Removing is idempotent for files and folders.
#[test]
fn remove_path_handles_files_folders_and_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_path = dir.path().join("f");
    std::fs::write(&file_path, b"x").expect("write");
    let folder_path = dir.path().join("d");
    std::fs::create_dir_all(folder_path.join("sub")).expect("mkdir");
    remove_path(&file_path).expect("remove file");
    remove_path(&folder_path).expect("remove folder");
    remove_path(&folder_path).expect("missing is fine");
    assert!(!file_path.exists() && !folder_path.exists());
}
