//! The working folder of one render of a scene, where the values go instead of the cached
//! template (docs/content.md §3):
//!
//! ```text
//! <state_dir>/work/<job id>/scene-<iii>-<frame job id>/
//!   template/...            the template: its project COPIED, everything else (a bundle's
//!                           footage, in its folders) HARD-LINKED, or copied across filesystems
//!   assets/<file name>      each asset of the scene, linked from the asset cache under the file
//!                           name the request gave (made safe for Windows; a second asset with
//!                           the same name gets its BLAKE3 in front)
//!   apply.jsx               the generated script
//! ```
//!
//! Why the project is a copy and the rest links: a hard link is the cached file itself, so a
//! write through the working copy would change the cache. aerender never saves (the agent passes
//! `-close DO_NOT_SAVE_CHANGES`) and footage is only read, but the project is the one file After
//! Effects opens for writing, and it is small: copying it makes the cache safe whatever happens
//! in the render. Footage and assets can be gigabytes, and linking them costs nothing.
//!
//! An encode attempt has a folder of its own beside them, `<job id>/encode-<frame job id>-<lease
//! token>/`, for the video until it is stored ([`encode_dir_path`]).
//!
//! The folder is removed when the chunk's work ends, whatever the outcome; what an agent that
//! died left behind is removed at its next start ([`remove_leftovers`]). Everything here is
//! blocking file IO: call it from `spawn_blocking`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use flatrender_proto::types::{ContentHash, FrameJobId, JobId};

/// The working folders' root under the state folder.
pub const WORK_DIR_NAME: &str = "work";
/// The generated script's name in a working folder.
pub const SCRIPT_FILE_NAME: &str = "apply.jsx";
const TEMPLATE_DIR_NAME: &str = "template";
const ASSETS_DIR_NAME: &str = "assets";
/// Longest file name most file systems take, in bytes.
const MAX_FILE_NAME_BYTES: usize = 255;

/// `<state_dir>/work`, absolute: After Effects is given absolute paths, whatever the agent's
/// working folder.
pub fn work_root(state_dir: &Path) -> PathBuf {
    let root = state_dir.join(WORK_DIR_NAME);
    std::path::absolute(&root).unwrap_or(root)
}

/// The working folder of one render.
pub fn work_dir_path(work_root: &Path, job_id: JobId, scene_index: u32, frame_job_id: FrameJobId) -> PathBuf {
    work_root
        .join(job_id.to_string())
        .join(format!("scene-{scene_index:03}-{frame_job_id}"))
}

/// The working folder of one encode attempt: `<work root>/<job id>/encode-<frame job id>-<lease
/// token>`, where ffmpeg writes the video before it is stored (removed with
/// [`remove_work_folder`] however the attempt ends).
pub fn encode_dir_path(work_root: &Path, job_id: JobId, frame_job_id: FrameJobId, lease_token: i64) -> PathBuf {
    work_root
        .join(job_id.to_string())
        .join(format!("encode-{frame_job_id}-{lease_token}"))
}

/// Removes a working folder (a missing one is fine), and its job's folder when no other work of
/// the job uses it.
pub fn remove_work_folder(path: &Path) -> std::io::Result<()> {
    remove_folder_and_empty_parent(path)
}

/// Removes everything under the work root (at start, before any render: what an earlier run left).
/// Returns how many job folders went.
pub fn remove_leftovers(work_root: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(work_root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        remove_any(&entry?.path())?;
        removed += 1;
    }
    Ok(removed)
}

/// One asset to put in the working folder.
#[derive(Clone, Debug)]
pub struct AssetFile {
    /// Its BLAKE3.
    pub hash: ContentHash,
    /// The file name the request gave.
    pub file_name: String,
    /// The file in the asset cache.
    pub cached: PathBuf,
}

/// What a working folder is built from.
#[derive(Clone, Copy, Debug)]
pub struct WorkDirSpec<'a> {
    /// The folder to build ([`work_dir_path`]).
    pub path: &'a Path,
    /// The template's project in the cache.
    pub project: &'a Path,
    /// The extracted bundle the project belongs to, if it came as a zip.
    pub bundle_root: Option<&'a Path>,
    /// The scene's assets, each once.
    pub assets: &'a [AssetFile],
}

/// A built working folder; removed by [`WorkDir::remove`] (or, as a last resort, when dropped).
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    project: PathBuf,
    asset_paths: HashMap<ContentHash, PathBuf>,
    removed: bool,
}

impl WorkDir {
    /// Builds the folder (replacing a leftover of the same name).
    pub fn build(spec: &WorkDirSpec<'_>) -> std::io::Result<Self> {
        remove_any(spec.path)?;
        create_dir_all_retrying(spec.path)?;
        // From here on a failure removes what was built.
        let mut work_dir = Self {
            path: spec.path.to_path_buf(),
            project: PathBuf::new(),
            asset_paths: HashMap::new(),
            removed: false,
        };
        let template_dir = spec.path.join(TEMPLATE_DIR_NAME);
        work_dir.project = mirror_template(spec.project, spec.bundle_root, &template_dir)?;
        let assets_dir = spec.path.join(ASSETS_DIR_NAME);
        if !spec.assets.is_empty() {
            std::fs::create_dir(&assets_dir)?;
        }
        let names = plan_asset_names(spec.assets.iter().map(|asset| (asset.hash, asset.file_name.as_str())));
        for (asset, name) in spec.assets.iter().zip(names) {
            if let std::collections::hash_map::Entry::Vacant(slot) = work_dir.asset_paths.entry(asset.hash) {
                let linked = assets_dir.join(name);
                link_or_copy(&asset.cached, &linked)?;
                slot.insert(linked);
            }
        }
        Ok(work_dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The working copy of the project, to hand to aerender.
    pub fn project(&self) -> &Path {
        &self.project
    }

    /// Where each asset is in the folder, by BLAKE3.
    pub fn asset_paths(&self) -> &HashMap<ContentHash, PathBuf> {
        &self.asset_paths
    }

    /// Writes the generated script into the folder and returns its path.
    pub fn write_script(&self, script: &str) -> std::io::Result<PathBuf> {
        let path = self.path.join(SCRIPT_FILE_NAME);
        std::fs::write(&path, script)?;
        Ok(path)
    }

    /// Removes the folder, and the job's folder when no other render of the job uses it.
    pub fn remove(mut self) -> std::io::Result<()> {
        self.removed = true;
        remove_folder_and_empty_parent(&self.path)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Only when the chunk's task ended without `remove` (a panic, an aborted task).
        if !self.removed {
            if let Err(error) = remove_folder_and_empty_parent(&self.path) {
                warn!(path = %self.path.display(), %error, "could not remove a working folder; the next start does");
            }
        }
    }
}

fn remove_folder_and_empty_parent(path: &Path) -> std::io::Result<()> {
    remove_any(path)?;
    if let Some(job_dir) = path.parent() {
        // Fails while another render of the job has its folder there: that one removes it.
        let _ = std::fs::remove_dir(job_dir);
    }
    Ok(())
}

/// `create_dir_all`, again when a concurrent render removed the (then empty) job folder between
/// its steps.
fn create_dir_all_retrying(path: &Path) -> std::io::Result<()> {
    let mut attempts_left = 3;
    loop {
        match std::fs::create_dir_all(path) {
            Err(error) if error.kind() == ErrorKind::NotFound && attempts_left > 0 => attempts_left -= 1,
            result => return result,
        }
    }
}

/// Copies the project into `template_dir` and links the rest of its bundle around it, keeping
/// the bundle's layout. Returns the working copy of the project.
fn mirror_template(project: &Path, bundle_root: Option<&Path>, template_dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir(template_dir)?;
    let Some(root) = bundle_root else {
        let copy = template_dir.join(project.file_name().unwrap_or_else(|| "project.aep".as_ref()));
        std::fs::copy(project, &copy)?;
        return Ok(copy);
    };
    let relative = project
        .strip_prefix(root)
        .map_err(|_| std::io::Error::other(format!("{} is not inside {}", project.display(), root.display())))?;
    mirror_tree(root, template_dir, project)?;
    Ok(template_dir.join(relative))
}

/// Recreates `source`'s folders under `target`: `project` copied, other files linked.
fn mirror_tree(source: &Path, target: &Path, project: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let from = entry.path();
        let to = target.join(entry.file_name());
        if file_type.is_dir() {
            std::fs::create_dir(&to)?;
            mirror_tree(&from, &to, project)?;
        } else if file_type.is_file() {
            if from == project {
                std::fs::copy(&from, &to)?;
            } else {
                link_or_copy(&from, &to)?;
            }
        }
        // Symbolic links: bundles never hold any (extraction refuses them).
    }
    Ok(())
}

/// A hard link to `from` at `to`, or a copy where linking fails (another file system, a file
/// system without links).
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(error) => {
            debug!(from = %from.display(), %error, "cannot hard-link; copying");
            std::fs::copy(from, to).map(drop)
        }
    }
}

/// Removes a file or folder; a missing one is fine.
fn remove_any(path: &Path) -> std::io::Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) => Err(error),
    };
    match result {
        Err(error) if error.kind() != ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The name of each asset in `assets/`, in order: the request's file name made safe, or for a
/// different file under a name already taken (compared without case, as Windows and macOS do)
/// the same with its BLAKE3 in front (16 hex digits, all 64 if those are taken too). The same
/// file under the same name gets the same name.
pub fn plan_asset_names<'a>(assets: impl IntoIterator<Item = (ContentHash, &'a str)>) -> Vec<String> {
    let mut taken: HashMap<String, ContentHash> = HashMap::new();
    let mut names = Vec::new();
    for (hash, file_name) in assets {
        let safe = safe_file_name(file_name);
        let hex = hash.to_hex();
        let candidates = [
            safe.clone(),
            with_prefix(&format!("{}-", &hex[..16]), &safe),
            with_prefix(&format!("{hex}-"), &safe),
        ];
        let mut chosen = None;
        for candidate in candidates
            .into_iter()
            .chain((1..).map(|n| with_prefix(&format!("{hex}-{n}-"), &safe)))
        {
            match taken.get(&candidate.to_lowercase()) {
                Some(owner) if *owner != hash => continue,
                _ => {
                    chosen = Some(candidate);
                    break;
                }
            }
        }
        let name = chosen.unwrap_or(safe);
        taken.insert(name.to_lowercase(), hash);
        names.push(name);
    }
    names
}

/// A file name every OS the agent runs on accepts: Windows' reserved characters and control
/// characters become `_`, trailing dots and spaces go, device names (`CON`, `LPT1`) get a `_`.
pub fn safe_file_name(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return "asset".to_owned();
    }
    let stem = trimmed
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    }
}

/// `prefix` + `name`, shortening the name's stem (never its extension) to stay within 255 bytes.
fn with_prefix(prefix: &str, name: &str) -> String {
    let budget = MAX_FILE_NAME_BYTES.saturating_sub(prefix.len());
    if name.len() <= budget {
        return format!("{prefix}{name}");
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if extension.len() < 32 => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    let mut cut = budget.saturating_sub(extension.len()).min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{prefix}{}{extension}", &stem[..cut])
}

#[cfg(test)]
mod tests;
