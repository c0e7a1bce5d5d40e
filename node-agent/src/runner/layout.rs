//! Where a job's frames are: `<output_root>/<job id>/` for a single-composition job,
//! `<output_root>/<job id>/scene-<iii>/` for a scene of a saved project, each frame
//! `<output_name>_<frame, 5 digits>.<frame extension>`. The render runner writes them there and
//! the encode runner reads them from there; both go through [`frame_layout`], so the two never
//! disagree (the encode runs on any node of the farm, reading the shared output folder).

use std::path::{Path, PathBuf};

use flatrender_proto::types::SafeName;

use crate::config::AerenderConfig;
use crate::supervisor::{self, FramePattern, SupervisorResult};

/// A job's (or one scene's) frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameLayout {
    /// The folder.
    pub dir: PathBuf,
    /// The `-output` path handed to aerender (`<dir>/<name>_[#####].<ext>`).
    pub pattern_path: PathBuf,
    /// The file-name pattern.
    pub pattern: FramePattern,
}

/// The folder of a job's frames, or of one scene's (`scene_index`).
pub(crate) fn frames_dir(output_root: &Path, job_id: &str, scene_index: Option<u32>) -> PathBuf {
    let job_dir = output_root.join(job_id);
    match scene_index {
        Some(index) => job_dir.join(format!("scene-{index:03}")),
        None => job_dir,
    }
}

/// Where the frames of `job_id` (its scene `scene_index`) named `stem` are, with the agent's
/// output root and frame extension.
pub(crate) fn frame_layout(
    aerender: &AerenderConfig,
    job_id: &str,
    scene_index: Option<u32>,
    stem: &SafeName,
) -> SupervisorResult<FrameLayout> {
    let dir = frames_dir(&aerender.output_root, job_id, scene_index);
    // `<name>_00012.png`, as OutputSettings.output_name documents.
    let file_stem = format!("{}_", stem.as_str());
    let pattern_path = supervisor::output_pattern(&dir, &file_stem, &aerender.frame_extension);
    let (_, pattern) = FramePattern::from_output_path(&pattern_path)?;
    Ok(FrameLayout {
        dir,
        pattern_path,
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single composition's frames are in the job's folder, a scene's in its own, each named
    /// after the output name with five digits.
    #[test]
    fn frames_of_jobs_and_scenes() {
        let aerender = AerenderConfig {
            output_root: PathBuf::from("/renders"),
            frame_extension: "tif".into(),
            ..AerenderConfig::default()
        };
        let stem = SafeName::file_stem("promo", "output_name").unwrap();
        let job = frame_layout(&aerender, "j-1", None, &stem).unwrap();
        assert_eq!(job.dir, PathBuf::from("/renders/j-1"));
        assert_eq!(job.pattern_path, PathBuf::from("/renders/j-1/promo_[#####].tif"));
        assert_eq!(job.pattern.file_name(12), "promo_00012.tif");
        let scene = frame_layout(&aerender, "j-1", Some(3), &stem).unwrap();
        assert_eq!(scene.dir, PathBuf::from("/renders/j-1/scene-003"));
        assert_eq!(scene.pattern, job.pattern);
    }
}
