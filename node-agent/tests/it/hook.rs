//! The After Effects startup hook on disk: installed atomically and only when it differs,
//! reported by `status`, refused with an error naming the folder and the configuration key, and
//! installed by a starting agent, which refuses to start when it cannot.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use flatrender_node_agent::content::hook::{
    self, CONFIG_KEY, HOOK_FILE_NAME, HOOK_SOURCE, HOOK_VERSION, HookStatus, Installed,
};
use tokio::time::Instant;

/// Generous: only a broken agent reaches it, however loaded the machine.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read folder")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).expect("metadata");
    (metadata.ino(), metadata.modified().expect("mtime"))
}

/// A fresh folder (created, parents too) gets exactly the hook file; installing again writes
/// nothing (same file, same inode and time); `status` says current.
#[test]
fn install_creates_the_folder_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let startup = dir.path().join("Support Files").join("Scripts").join("Startup");
    assert_eq!(hook::status(&startup).expect("status"), HookStatus::Missing);
    assert_eq!(hook::install(&startup).expect("install"), Installed::Written);
    let path = startup.join(HOOK_FILE_NAME);
    assert_eq!(std::fs::read_to_string(&path).expect("hook"), HOOK_SOURCE);
    assert_eq!(names_in(&startup), [HOOK_FILE_NAME], "no temporary file left");
    #[cfg(unix)]
    let before = identity(&path);
    assert_eq!(hook::install(&startup).expect("again"), Installed::AlreadyCurrent);
    #[cfg(unix)]
    assert_eq!(identity(&path), before, "not rewritten");
    assert_eq!(hook::status(&startup).expect("status"), HookStatus::Current);
}

/// An older hook or someone else's file of that name is replaced by a rename over it, and the
/// temporary file of an install interrupted long ago is cleared (a recent one may be another
/// agent's install in progress); other startup scripts are untouched.
#[test]
fn install_replaces_a_different_hook_and_clears_stale_temporaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let startup = dir.path().join("Startup");
    std::fs::create_dir_all(&startup).expect("mkdir");
    let path = startup.join(HOOK_FILE_NAME);
    std::fs::write(&path, "// flatrender_hook.jsx version 0 (an old agent)\nold();\n").expect("old hook");
    std::fs::write(startup.join("commandLineRenderer.jsx"), "// Adobe's").expect("stock script");
    let stale = startup.join(".flatrender_hook.jsx.0123.tmp");
    std::fs::write(&stale, "half").expect("stale temporary");
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .and_then(|file| file.set_modified(two_hours_ago))
        .expect("age the temporary");
    // Another agent's install in progress: recent, so left alone.
    let in_progress = startup.join(".flatrender_hook.jsx.4567.tmp");
    std::fs::write(&in_progress, "being written").expect("recent temporary");
    assert_eq!(
        hook::status(&startup).expect("status"),
        HookStatus::Outdated { version: Some(0) }
    );
    assert_eq!(hook::install(&startup).expect("install"), Installed::Written);
    assert_eq!(std::fs::read_to_string(&path).expect("hook"), HOOK_SOURCE);
    assert_eq!(
        names_in(&startup),
        [
            ".flatrender_hook.jsx.4567.tmp",
            "commandLineRenderer.jsx",
            HOOK_FILE_NAME
        ]
    );
    assert_eq!(
        std::fs::read_to_string(startup.join("commandLineRenderer.jsx")).expect("stock"),
        "// Adobe's"
    );
    std::fs::write(&path, "alert('not ours');").expect("foreign");
    assert_eq!(
        hook::status(&startup).expect("status"),
        HookStatus::Outdated { version: None }
    );
    assert_eq!(hook::install(&startup).expect("install"), Installed::Written);
    assert_eq!(hook::status(&startup).expect("status"), HookStatus::Current);
}

/// A folder that cannot exist (its parent is a regular file: root can write anywhere else) is
/// refused with an error naming the folder and the configuration key.
#[test]
fn install_where_it_cannot_write_names_the_folder_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"x").expect("file");
    let startup = file.join("Startup");
    let error = hook::install(&startup).expect_err("cannot install under a file");
    let message = error.to_string();
    assert!(message.contains(&startup.display().to_string()), "{message}");
    assert!(message.contains(CONFIG_KEY), "{message}");
}

/// When the final rename fails (a folder stands where the file goes), nothing is left behind and
/// the error says so.
#[test]
fn a_failed_install_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let startup = dir.path().join("Startup");
    std::fs::create_dir_all(startup.join(HOOK_FILE_NAME).join("in-the-way")).expect("mkdir");
    assert!(hook::install(&startup).is_err());
    assert_eq!(names_in(&startup), [HOOK_FILE_NAME]);
    assert!(startup.join(HOOK_FILE_NAME).is_dir());
}

/// A starting agent installs the hook in `aerender.startup_scripts_dir` before it registers.
#[tokio::test]
async fn a_starting_agent_installs_the_hook() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("agent.log");
    let mut child = crate::agent_without_control_plane(dir.path(), &log, "hook-test")
        .stderr(Stdio::null())
        .spawn()
        .expect("node-agent starts");
    let hook_path: PathBuf = dir.path().join("Scripts").join("Startup").join(HOOK_FILE_NAME);
    let deadline = Instant::now() + WAIT_LIMIT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("retrying registration") || child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("retrying registration"),
        "the agent got to registering: {text}"
    );
    let installed_at = text
        .find("installed the After Effects startup hook")
        .expect("install logged");
    assert!(installed_at < text.find("retrying registration").unwrap_or(usize::MAX));
    assert_eq!(std::fs::read_to_string(&hook_path).expect("hook"), HOOK_SOURCE);
    assert!(text.contains(&format!("version={HOOK_VERSION}")), "{text}");
}

/// An agent that cannot install the hook does not start (and never registers): it exits with an
/// error naming the folder and the key.
#[tokio::test]
async fn an_agent_that_cannot_install_the_hook_does_not_start() {
    let dir = tempfile::tempdir().expect("scratch folder");
    let log = dir.path().join("agent.log");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("file");
    let startup = file.join("Startup");
    let child = crate::agent_without_control_plane(dir.path(), &log, "hook-refused")
        .env("FLATRENDER_AGENT_AERENDER__STARTUP_SCRIPTS_DIR", &startup)
        .stderr(Stdio::piped())
        .spawn()
        .expect("node-agent starts");
    let (status, stderr) = crate::refused_start(child).await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&startup.display().to_string()), "{stderr}");
    assert!(stderr.contains(CONFIG_KEY), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("registration"), "it never got to registering: {text}");
}
