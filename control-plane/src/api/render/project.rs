//! The saved-project parts of a submission: scenes in play order with their field values, the
//! project's audio, and the rules that tie them to the rest of the request. Validated here, at
//! the edge, once; every refusal names its field (`scenes[1].fields["headline"].color`). The
//! limits are in `docs/content.md`.

use flatrender_proto::{
    content::{self, ProjectAudio, Resolution},
    convert::frame_range_from_wire,
    pb,
    types::{FieldError, FrameRange, SafeName},
};

use crate::jobs::SceneSpec;

/// Scenes a project may have.
pub const MAX_SCENES: usize = 100;

/// What a request renders: one composition, or a project's scenes. For a project the job's
/// composition is the first scene's and its frames are the video's, numbered from 0.
pub struct Timeline {
    /// The job's composition.
    pub composition: SafeName,
    /// The job's frames.
    pub frame_range: FrameRange,
    /// The scenes (empty: a single-composition job).
    pub scenes: Vec<SceneSpec>,
}

/// Validates either the single composition (`composition`, `frame_range`) or the scenes.
pub fn timeline(request: &pb::SubmitRenderJobRequest) -> Result<Timeline, FieldError> {
    if request.scenes.is_empty() {
        return Ok(Timeline {
            composition: SafeName::composition(&request.composition, "composition")?,
            frame_range: frame_range_from_wire(request.frame_range.as_ref(), "frame_range")?,
            scenes: Vec::new(),
        });
    }
    if !request.composition.is_empty() {
        return Err(FieldError::new(
            "composition",
            "must be empty when scenes are given (each scene names its composition)",
        ));
    }
    if request.frame_range.is_some() {
        return Err(FieldError::new(
            "frame_range",
            "must be unset when scenes are given (each scene has its frame range)",
        ));
    }
    if request.scenes.len() > MAX_SCENES {
        return Err(FieldError::new(
            "scenes",
            format!("must have at most {MAX_SCENES} scenes"),
        ));
    }
    let scenes = request
        .scenes
        .iter()
        .enumerate()
        .map(|(index, scene)| scene_spec(scene, &format!("scenes[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let frames: i64 = scenes.iter().map(|scene| scene.frame_range.len()).sum();
    let last = i32::try_from(frames - 1)
        .map_err(|_| FieldError::new("scenes", "the scenes' frames add up to more than 2^31 - 1"))?;
    Ok(Timeline {
        composition: scenes[0].composition.clone(),
        frame_range: FrameRange::new(0, last, "scenes")?,
        scenes,
    })
}

fn scene_spec(scene: &pb::Scene, path: &str) -> Result<SceneSpec, FieldError> {
    Ok(SceneSpec {
        scene_id: content::optional_uuid(&scene.scene_id, &format!("{path}.scene_id"))?,
        composition: SafeName::composition(&scene.composition, &format!("{path}.composition"))?,
        frame_range: frame_range_from_wire(scene.frame_range.as_ref(), &format!("{path}.frame_range"))?,
        fields: content::fields_from_wire(&scene.fields, path)?,
    })
}

/// The project's audio for a video of `duration_ms`, which must not come with the first API's
/// tracks (`music`, `sfx`, `voiceover`): a request says its audio one way.
pub fn audio(request: &pb::SubmitRenderJobRequest, duration_ms: f64) -> Result<Option<ProjectAudio>, FieldError> {
    let Some(audio) = &request.audio else {
        return Ok(None);
    };
    for (given, field) in [
        (request.music.is_some(), "music"),
        (request.sfx.is_some(), "sfx"),
        (request.voiceover.is_some(), "voiceover"),
    ] {
        if given {
            return Err(FieldError::new(
                field,
                "must be unset when audio is given (audio carries music, sfx and voiceover in full)",
            ));
        }
    }
    ProjectAudio::from_wire(audio, duration_ms, "audio").map(Some)
}

/// The video size asked for, checked against the container: a PNG sequence has none, and GIF
/// stops at 1080p (a 4k GIF is hundreds of megabytes a second).
pub fn resolution(output: &pb::OutputSettings, container: &str) -> Result<Option<Resolution>, FieldError> {
    let resolution = Resolution::from_wire_optional(output.resolution, "output.resolution")?;
    match (container, resolution) {
        ("png_sequence", Some(_)) => Err(FieldError::new(
            "output.resolution",
            "must be unset for png_sequence (frames are delivered at the render size)",
        )),
        ("gif", Some(Resolution::K4)) => Err(FieldError::new(
            "output.resolution",
            "gif is produced up to 1080p; choose 480p, 720p or 1080p, or another container",
        )),
        _ => Ok(resolution),
    }
}
