//! Everything a render of a scene needs before aerender starts: the assignment's scene validated
//! ([`SceneJob`]), the scene's assets fetched through the asset cache and pinned for the chunk,
//! the working folder built around a copy of the cached project, and `apply.jsx` written into it
//! ([`prepare`]). The runner renders the working copy with `-r <apply.jsx>` and calls
//! [`PreparedScene::finish`] when the chunk's work ends, whatever the outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use flatrender_proto::content::{Asset, SceneContent};
use flatrender_proto::pb;
use flatrender_proto::types::{CrashClass, FrameJobId, JobId, RecoveryAction};

use super::script::{self, ScriptInput};
use super::workdir::{self, AssetFile, WorkDir, WorkDirSpec};
use crate::cache::{AcquireAllError, AssetCache, CacheLease};

/// A chunk of a saved project's scene, validated.
#[derive(Clone, Debug)]
pub struct SceneJob {
    /// The job (a UUID: it names folders).
    pub job_id: JobId,
    /// The chunk (a UUID: it names its working folder).
    pub frame_job_id: FrameJobId,
    /// The scene and its values.
    pub scene: SceneContent,
}

impl SceneJob {
    /// The assignment's scene, validated as the control plane validated it; `None` for a
    /// single-composition job. The error names the bad field.
    pub fn from_assignment(assignment: &pb::WorkAssignment) -> Result<Option<Self>, String> {
        let Some(scene) = assignment.scene.as_ref() else {
            return Ok(None);
        };
        let error = |error: flatrender_proto::types::FieldError| format!("malformed assignment: {error}");
        Ok(Some(Self {
            job_id: JobId::parse_field(&assignment.job_id, "job_id").map_err(error)?,
            frame_job_id: FrameJobId::parse_field(&assignment.frame_job_id, "frame_job_id").map_err(error)?,
            scene: SceneContent::from_wire(scene, "scene").map_err(error)?,
        }))
    }

    /// Where the scene's frames go: `<output_root>/<job id>/scene-<iii>`.
    pub fn output_dir(&self, output_root: &Path) -> PathBuf {
        crate::runner::frames_dir(output_root, &self.job_id.to_string(), Some(self.scene.index))
    }
}

/// Why a scene could not be prepared, as the runner reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepareFailure {
    /// The crash class.
    pub crash_class: CrashClass,
    /// What the control plane should do.
    pub action: RecoveryAction,
    /// One sentence, naming the field for an asset.
    pub message: String,
}

/// A scene ready to render: its working folder, and its assets pinned in the cache.
#[derive(Debug)]
pub struct PreparedScene {
    work_dir: WorkDir,
    project: PathBuf,
    script: PathBuf,
    /// Held until `finish`: no asset a render uses is evicted.
    _asset_leases: Vec<CacheLease>,
}

impl PreparedScene {
    /// The working copy of the project (`-project`).
    pub fn project(&self) -> &Path {
        &self.project
    }

    /// The generated script (`-r`).
    pub fn script(&self) -> &Path {
        &self.script
    }

    /// Removes the working folder (on a blocking thread) and unpins the assets.
    pub async fn finish(self) {
        let Self {
            work_dir,
            _asset_leases: asset_leases,
            ..
        } = self;
        let path = work_dir.path().to_path_buf();
        match tokio::task::spawn_blocking(move || work_dir.remove()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                warn!(path = %path.display(), %error, "could not remove the working folder; the next start does")
            }
            Err(error) => warn!(path = %path.display(), %error, "removing the working folder did not finish"),
        }
        drop(asset_leases);
    }
}

/// Fetches the scene's assets (pinned), builds the working folder around a copy of `template`'s
/// project, and writes the script applying the values to `composition`.
pub async fn prepare(
    assets: &Arc<AssetCache>,
    state_dir: &Path,
    job: &SceneJob,
    composition: &str,
    template: &CacheLease,
) -> Result<PreparedScene, PrepareFailure> {
    let asset_leases = fetch_assets(assets, &job.scene).await?;
    let asset_files: Vec<AssetFile> = asset_leases
        .iter()
        .map(|(asset, lease)| AssetFile {
            hash: asset.hash,
            file_name: asset.file_name.clone(),
            cached: lease.project_path().to_path_buf(),
        })
        .collect();
    let path = workdir::work_dir_path(
        &workdir::work_root(state_dir),
        job.job_id,
        job.scene.index,
        job.frame_job_id,
    );
    let project = template.project_path().to_path_buf();
    let bundle_root = template.bundle_root().map(Path::to_path_buf);
    let job_for_script = job.clone();
    let composition = composition.to_owned();
    // Copies, links and a write: blocking work.
    let built = tokio::task::spawn_blocking(move || {
        let work_dir = WorkDir::build(&WorkDirSpec {
            path: &path,
            project: &project,
            bundle_root: bundle_root.as_deref(),
            assets: &asset_files,
        })
        .map_err(|error| local_failure(format!("cannot build the working folder {}: {error}", path.display())))?;
        let text = script::generate(&ScriptInput {
            job_id: job_for_script.job_id,
            scene: &job_for_script.scene,
            composition: &composition,
            asset_paths: work_dir.asset_paths(),
        })
        .map_err(|error| PrepareFailure {
            crash_class: CrashClass::Unknown,
            action: RecoveryAction::RetryElsewhere,
            message: format!("cannot write apply.jsx: {error}"),
        })?;
        let script = work_dir
            .write_script(&text)
            .map_err(|error| local_failure(format!("cannot write apply.jsx in {}: {error}", path.display())))?;
        Ok::<_, PrepareFailure>((work_dir, script))
    })
    .await
    .map_err(|error| local_failure(format!("preparing the working folder did not finish: {error}")))?;
    let (work_dir, script) = built?;
    info!(
        frame_job_id = %job.frame_job_id,
        scene_index = job.scene.index,
        fields = job.scene.fields.len(),
        assets = asset_leases.len(),
        work_dir = %work_dir.path().display(),
        "scene prepared"
    );
    Ok(PreparedScene {
        project: work_dir.project().to_path_buf(),
        work_dir,
        script,
        _asset_leases: asset_leases.into_iter().map(|(_, lease)| lease).collect(),
    })
}

/// The working folder could not be made on this node's disk: another node may manage.
fn local_failure(message: String) -> PrepareFailure {
    PrepareFailure {
        crash_class: CrashClass::OutputWrite,
        action: RecoveryAction::RetryElsewhere,
        message,
    }
}

/// Acquires every distinct asset of the scene at once; the first failure names its field.
async fn fetch_assets(
    assets: &Arc<AssetCache>,
    scene: &SceneContent,
) -> Result<Vec<(Asset, CacheLease)>, PrepareFailure> {
    let wanted: Vec<Asset> = scene.assets().into_iter().cloned().collect();
    let leases = assets.acquire_all(&wanted).await.map_err(|failure| {
        let message = match &failure {
            AcquireAllError::Failed { position, error } => {
                format!("{}: {error}", describe_asset(scene, &wanted[*position]))
            }
            AcquireAllError::Unfinished(_) => format!("the scene's assets: {failure}"),
        };
        PrepareFailure {
            crash_class: CrashClass::CacheError,
            action: RecoveryAction::RetryElsewhere,
            message,
        }
    })?;
    Ok(wanted.into_iter().zip(leases).collect())
}

/// `field "logo" (image "logo.png", blake3 …)`: the first field naming the asset.
fn describe_asset(scene: &SceneContent, asset: &Asset) -> String {
    let field = scene
        .fields
        .iter()
        .find(|field| field.value.asset().is_some_and(|named| named.hash == asset.hash));
    match field {
        Some(field) => format!(
            "field \"{}\" ({} \"{}\", blake3 {})",
            field.key,
            field.value.kind(),
            asset.file_name,
            asset.hash
        ),
        None => format!("asset \"{}\" (blake3 {})", asset.file_name, asset.hash),
    }
}
