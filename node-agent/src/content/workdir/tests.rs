//! The working folder: the template mirrored (project copied, the rest linked), the assets under
//! their names, nothing of the cache ever changed, and removal.

use super::*;

fn hash(byte: u8) -> ContentHash {
    ContentHash::from_bytes([byte; 32])
}

fn blake3_of(path: &Path) -> blake3::Hash {
    blake3::hash(&std::fs::read(path).expect("read"))
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("metadata").ino()
}

/// A fake cache entry of a bundle: `<entry>/bundle/Promo/Main.aep` with footage beside it.
fn bundle_entry(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("cache").join("ab12").join("bundle");
    std::fs::create_dir_all(root.join("Promo").join("Footage")).expect("mkdir");
    let project = root.join("Promo").join("Main.aep");
    std::fs::write(&project, b"RIFX the project").expect("project");
    std::fs::write(root.join("Promo").join("Footage").join("clip.mov"), b"movie").expect("footage");
    std::fs::write(root.join("readme.txt"), b"notes").expect("notes");
    (root, project)
}

fn asset_in(dir: &Path, byte: u8, name: &str) -> AssetFile {
    let cached = dir.join("assets-cache").join(hash(byte).to_hex()).join("asset.png");
    std::fs::create_dir_all(cached.parent().expect("parent")).expect("mkdir");
    std::fs::write(&cached, [byte; 40]).expect("asset");
    AssetFile {
        hash: hash(byte),
        file_name: name.to_owned(),
        cached,
    }
}

/// A bundle is mirrored with its layout: the project is a copy (writing to it leaves the cached
/// project's BLAKE3 unchanged), footage and assets are hard links; removal takes the folder and
/// the then empty job folder, never the cache.
#[test]
fn bundle_is_mirrored_and_the_cache_is_never_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, project) = bundle_entry(dir.path());
    let logo = asset_in(dir.path(), 1, "Logo.png");
    let root_dir = work_root(&dir.path().join("state"));
    let path = work_dir_path(&root_dir, JobId::new_random(), 3, FrameJobId::new_random());
    assert!(path.is_absolute());
    assert!(path.file_name().unwrap().to_string_lossy().starts_with("scene-003-"));
    let cached_project_hash = blake3_of(&project);
    let assets = [logo.clone()];
    let work_dir = WorkDir::build(&WorkDirSpec {
        path: &path,
        project: &project,
        bundle_root: Some(&root),
        assets: &assets,
    })
    .expect("build");

    let copy = work_dir.project().to_path_buf();
    assert_eq!(copy, path.join("template").join("Promo").join("Main.aep"));
    assert_eq!(std::fs::read(&copy).unwrap(), b"RIFX the project");
    let footage = path.join("template").join("Promo").join("Footage").join("clip.mov");
    assert_eq!(std::fs::read(&footage).unwrap(), b"movie");
    assert!(path.join("template").join("readme.txt").is_file());
    let linked_logo = path.join("assets").join("Logo.png");
    assert_eq!(work_dir.asset_paths().get(&hash(1)), Some(&linked_logo));
    #[cfg(unix)]
    {
        assert_ne!(inode(&copy), inode(&project), "the project is a copy");
        assert_eq!(
            inode(&footage),
            inode(&root.join("Promo").join("Footage").join("clip.mov"))
        );
        assert_eq!(inode(&linked_logo), inode(&logo.cached));
    }
    // After Effects saving over the working copy does not reach the cache.
    std::fs::write(&copy, b"RIFX saved by AE").unwrap();
    assert_eq!(blake3_of(&project), cached_project_hash);

    let script = work_dir.write_script("// script\n").expect("script");
    assert_eq!(script, path.join("apply.jsx"));
    let job_dir = path.parent().unwrap().to_path_buf();
    work_dir.remove().expect("remove");
    assert!(!path.exists());
    assert!(!job_dir.exists(), "the empty job folder goes too");
    assert_eq!(blake3_of(&project), cached_project_hash);
    assert!(logo.cached.is_file());
    assert!(root.join("Promo").join("Footage").join("clip.mov").is_file());
}

/// A plain project is copied alone; another render of the same job keeps the job folder until
/// it is done too; a working folder dropped without `remove` is removed all the same.
#[test]
fn plain_project_is_copied_and_dropping_removes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("cache").join("cd34").join("project.aep");
    std::fs::create_dir_all(project.parent().unwrap()).unwrap();
    std::fs::write(&project, b"RIFX plain").unwrap();
    let root_dir = work_root(&dir.path().join("state"));
    let job_id = JobId::new_random();
    let first_path = work_dir_path(&root_dir, job_id, 0, FrameJobId::new_random());
    let second_path = work_dir_path(&root_dir, job_id, 1, FrameJobId::new_random());
    let build = |path: &Path| {
        WorkDir::build(&WorkDirSpec {
            path,
            project: &project,
            bundle_root: None,
            assets: &[],
        })
        .expect("build")
    };
    let first = build(&first_path);
    let second = build(&second_path);
    assert_eq!(first.project(), first_path.join("template").join("project.aep"));
    assert!(!first_path.join("assets").exists());
    first.remove().unwrap();
    assert!(!first_path.exists());
    assert!(second_path.exists(), "the other render's folder stays");
    drop(second);
    assert!(!second_path.exists());
    assert!(!second_path.parent().unwrap().exists());
    assert_eq!(std::fs::read(&project).unwrap(), b"RIFX plain");
}

/// A leftover of the same name is replaced, and the start-up sweep empties the work root.
#[test]
fn leftovers_are_replaced_and_swept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project.aep");
    std::fs::write(&project, b"RIFX").unwrap();
    let root_dir = work_root(&dir.path().join("state"));
    assert_eq!(remove_leftovers(&root_dir).unwrap(), 0, "no work root yet");
    let path = work_dir_path(&root_dir, JobId::new_random(), 0, FrameJobId::new_random());
    std::fs::create_dir_all(path.join("stale")).unwrap();
    std::fs::write(path.join("stale").join("x"), b"x").unwrap();
    let work_dir = WorkDir::build(&WorkDirSpec {
        path: &path,
        project: &project,
        bundle_root: None,
        assets: &[],
    })
    .unwrap();
    assert!(!path.join("stale").exists());
    std::mem::forget(work_dir); // as if the agent died mid-render
    std::fs::create_dir_all(root_dir.join("other-job").join("scene-000-x")).unwrap();
    assert_eq!(remove_leftovers(&root_dir).unwrap(), 2);
    assert_eq!(std::fs::read_dir(&root_dir).unwrap().count(), 0);
    assert!(project.is_file());
}

/// Two different files under one name (in any case) never collide; one file keeps its name.
#[test]
fn asset_names_never_collide() {
    let names = plan_asset_names([
        (hash(1), "logo.png"),
        (hash(2), "Logo.PNG"),
        (hash(1), "logo.png"),
        (hash(3), "clip.mov"),
    ]);
    assert_eq!(names[0], "logo.png");
    assert_eq!(names[1], format!("{}-Logo.PNG", &hash(2).to_hex()[..16]));
    assert_eq!(names[2], "logo.png");
    assert_eq!(names[3], "clip.mov");
    // A request naming a file after another's disambiguated name still gets a free one.
    let squatter = format!("{}-a.png", &hash(5).to_hex()[..16]);
    let names = plan_asset_names([(hash(4), squatter.as_str()), (hash(6), "a.png"), (hash(5), "a.png")]);
    assert_eq!(names[0], squatter);
    assert_eq!(names[1], "a.png");
    assert_eq!(names[2], format!("{}-a.png", hash(5).to_hex()));
    let lowered: std::collections::HashSet<String> = names.iter().map(|name| name.to_lowercase()).collect();
    assert_eq!(lowered.len(), 3);
}

/// Names Windows refuses are made safe; long names stay within 255 bytes with their extension.
#[test]
fn file_names_are_made_safe() {
    assert_eq!(safe_file_name("a<b>c:d\"e|f?g*h.png"), "a_b_c_d_e_f_g_h.png");
    assert_eq!(safe_file_name("trailing. . "), "trailing");
    assert_eq!(safe_file_name("CON.png"), "_CON.png");
    assert_eq!(safe_file_name("lpt1"), "_lpt1");
    assert_eq!(safe_file_name("COM10.png"), "COM10.png");
    assert_eq!(safe_file_name("console.png"), "console.png");
    assert_eq!(safe_file_name("..."), "asset");
    assert_eq!(safe_file_name("caf\u{e9}.png"), "caf\u{e9}.png");
    let long = format!("{}.jpeg", "\u{e9}".repeat(125));
    let prefixed = with_prefix("0123456789abcdef-", &long);
    assert!(prefixed.len() <= 255, "{}", prefixed.len());
    assert!(prefixed.starts_with("0123456789abcdef-") && prefixed.ends_with(".jpeg"));
}
