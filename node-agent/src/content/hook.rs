//! Our After Effects startup hook, `flatrender_hook.jsx` (the file beside this one): it teaches
//! the stock command-line renderer `-r <script>` and runs that script once the project is open
//! (docs/content.md §3, option 3). The agent installs it at start, in
//! `aerender.startup_scripts_dir` or else `<folder of aerender>/Scripts/Startup` (Windows'
//! `Support Files` and the macOS application folder both keep `Scripts/` beside aerender);
//! `node-agent doctor` checks it.
//!
//! The file is written atomically (a temporary name in the same folder, then a rename; the
//! temporary name does not end in `.jsx`, so After Effects never runs a half-written hook) and
//! only when its content differs. Blocking file IO: call from `spawn_blocking` or a CLI.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

/// The hook's file name in the startup folder.
pub const HOOK_FILE_NAME: &str = "flatrender_hook.jsx";
/// Version in the hook's marker line; bump it with every change of `hook.jsx`.
pub const HOOK_VERSION: u32 = 1;
/// The configuration key naming the startup folder.
pub const CONFIG_KEY: &str = "aerender.startup_scripts_dir";
/// The hook's source.
pub const HOOK_SOURCE: &str = include_str!("hook.jsx");
/// How the hook's first line starts; the version follows.
const MARKER_PREFIX: &str = "// flatrender_hook.jsx version ";
/// Temporary names of an install in progress: `.flatrender_hook.jsx.<uuid>.tmp`.
const TEMP_PREFIX: &str = ".flatrender_hook.jsx.";
const TEMP_SUFFIX: &str = ".tmp";
/// Age from which a temporary file is an interrupted install's, not one in progress.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The hook could not be installed or read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot {action} the After Effects startup hook in {}: {source}; give the agent's account write access \
     to that folder, or set {CONFIG_KEY} to the Scripts/Startup folder of the After Effects aerender belongs to",
    dir.display()
)]
pub struct HookError {
    /// What was being done (`install`, `read`).
    pub action: &'static str,
    /// The startup folder.
    pub dir: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// What `install` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// The file was missing or different, and was written.
    Written,
    /// The file already held this agent's hook; nothing was written.
    AlreadyCurrent,
}

/// What the startup folder holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookStatus {
    /// This agent's hook.
    Current,
    /// No hook file.
    Missing,
    /// A hook file with other content: an older or newer agent's (its marker's version), or a
    /// file without our marker (`None`).
    Outdated { version: Option<u32> },
}

/// The startup folder: `configured` when set, else `Scripts/Startup` beside aerender.
pub fn startup_scripts_dir(configured: &Path, aerender: &Path) -> PathBuf {
    if !configured.as_os_str().is_empty() {
        return configured.to_path_buf();
    }
    aerender
        .parent()
        .unwrap_or_else(|| Path::new(""))
        .join("Scripts")
        .join("Startup")
}

/// Installs the hook in `dir` (created if missing) unless it is there already, atomically.
pub fn install(dir: &Path) -> Result<Installed, HookError> {
    let error = |source| HookError {
        action: "install",
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    remove_stale_temp_files(dir);
    let path = dir.join(HOOK_FILE_NAME);
    match std::fs::read(&path) {
        Ok(existing) if existing == HOOK_SOURCE.as_bytes() => return Ok(Installed::AlreadyCurrent),
        // Missing, different or unreadable: (re)written below, which says why if it cannot be.
        _ => {}
    }
    let temp_path = dir.join(format!("{TEMP_PREFIX}{}{TEMP_SUFFIX}", uuid::Uuid::new_v4().simple()));
    let written = write_new(&temp_path).and_then(|()| std::fs::rename(&temp_path, &path));
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp_path);
        return Err(error(source));
    }
    info!(path = %path.display(), version = HOOK_VERSION, "installed the After Effects startup hook");
    Ok(Installed::Written)
}

/// What `dir` holds (for `doctor`).
pub fn status(dir: &Path) -> Result<HookStatus, HookError> {
    match std::fs::read(dir.join(HOOK_FILE_NAME)) {
        Ok(existing) if existing == HOOK_SOURCE.as_bytes() => Ok(HookStatus::Current),
        Ok(existing) => Ok(HookStatus::Outdated {
            version: marker_version(&String::from_utf8_lossy(&existing)),
        }),
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(HookStatus::Missing),
        Err(source) => Err(HookError {
            action: "read",
            dir: dir.to_path_buf(),
            source,
        }),
    }
}

/// The version in a hook's first line, `None` without our marker.
pub fn marker_version(source: &str) -> Option<u32> {
    let first_line = source.lines().next()?;
    let rest = first_line.strip_prefix(MARKER_PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn write_new(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::File::create_new(path)?;
    file.write_all(HOOK_SOURCE.as_bytes())?;
    // On disk before the rename makes it visible: a crash never leaves a truncated hook.
    file.sync_all()
}

/// Temporary files of an install that was interrupted long ago (best effort: they never run,
/// being no `.jsx`). Recent ones are left alone: they may be another agent's install in progress
/// (agents sharing one After Effects), whose rename would fail without its file.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age >= STALE_TEMP_AGE);
        if stale && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            if let Err(error) = std::fs::remove_file(entry.path()) {
                warn!(path = %entry.path().display(), %error, "could not remove a stale temporary hook file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker line carries the version the agent checks, and the script records the same one.
    #[test]
    fn marker_and_script_agree_on_the_version() {
        assert_eq!(marker_version(HOOK_SOURCE), Some(HOOK_VERSION));
        assert!(HOOK_SOURCE.contains(&format!("renderer.flatrenderHookVersion = {HOOK_VERSION};")));
        assert!(HOOK_SOURCE.is_ascii());
        assert_eq!(marker_version("// flatrender_hook.jsx version 12 (x)"), Some(12));
        assert_eq!(marker_version("// someone else's script"), None);
        assert_eq!(marker_version(""), None);
    }

    /// The hook consumes -r with the stock value reader, runs the script with $.evalFile in the
    /// comp lookup, and reports a failure through the stock error path.
    #[test]
    fn hook_wraps_the_two_stock_methods() {
        for expected in [
            "renderer.ParseParamStartingAt = function (arg_num)",
            "this.GetValueForFlag(arg_num + 1, \"-r\")",
            "return 2;",
            "stockParseParamStartingAt.call(this, arg_num)",
            "renderer.GetFirstQueuedRQItemWithName = function (comp_name)",
            "this.log_file.writeln(\"PROGRESS: Running Script: \" + path)",
            "$.evalFile(new File(path))",
            "this.SetExitCode(this.EXIT_AE_RUNTIME)",
            "throw \"ERROR: Error executing script: \" + path + \"\\n\" + e.toString();",
            "stockGetFirstQueuedRQItemWithName.call(this, comp_name)",
        ] {
            assert!(HOOK_SOURCE.contains(expected), "missing: {expected}");
        }
    }

    /// The default folder is `Scripts/Startup` beside aerender; a configured one wins.
    #[test]
    fn startup_folder_is_beside_aerender_unless_configured() {
        let windows_like = Path::new("/ae/Adobe After Effects 2025/Support Files/aerender.exe");
        assert_eq!(
            startup_scripts_dir(Path::new(""), windows_like),
            Path::new("/ae/Adobe After Effects 2025/Support Files/Scripts/Startup")
        );
        let mac_like = Path::new("/Applications/Adobe After Effects 2024/aerender");
        assert_eq!(
            startup_scripts_dir(Path::new(""), mac_like),
            Path::new("/Applications/Adobe After Effects 2024/Scripts/Startup")
        );
        assert_eq!(
            startup_scripts_dir(Path::new("/custom/Startup"), mac_like),
            Path::new("/custom/Startup")
        );
    }
}
