//! `render.job_scenes`: a saved-project job's scenes in play order, with the user's field values.

use std::collections::HashMap;

use flatrender_proto::{
    content::Field,
    types::{FrameRange, JobId, SafeName},
};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;
use crate::jobs::SceneSpec;

#[derive(sqlx::FromRow)]
struct SceneRow {
    job_id: Uuid,
    scene_index: i32,
    scene_id: Option<Uuid>,
    composition: String,
    frame_start: i32,
    frame_end: i32,
    fields: Option<serde_json::Value>,
}

fn decode(message: String) -> DbError {
    DbError::Other(sqlx::Error::Decode(message.into()))
}

/// Inserts a new job's scenes, each with its place on the video's timeline.
pub(crate) async fn insert(connection: &mut PgConnection, job_id: Uuid, scenes: &[SceneSpec]) -> Result<(), DbError> {
    if scenes.is_empty() {
        return Ok(());
    }
    let mut indexes = Vec::with_capacity(scenes.len());
    let mut timeline_starts = Vec::with_capacity(scenes.len());
    let mut fields = Vec::with_capacity(scenes.len());
    let mut timeline = 0_i64;
    for (index, scene) in scenes.iter().enumerate() {
        indexes.push(i32::try_from(index).map_err(|_| decode(format!("scene index {index}")))?);
        // The scenes' frames were checked at the edge to add up within i32.
        timeline_starts.push(i32::try_from(timeline).map_err(|_| decode(format!("timeline start {timeline}")))?);
        timeline += scene.frame_range.len();
        fields.push(serde_json::to_value(&scene.fields).map_err(|error| decode(error.to_string()))?);
    }
    let scene_ids: Vec<Option<Uuid>> = scenes.iter().map(|scene| scene.scene_id).collect();
    let compositions: Vec<&str> = scenes.iter().map(|scene| scene.composition.as_str()).collect();
    let starts: Vec<i32> = scenes.iter().map(|scene| scene.frame_range.start()).collect();
    let ends: Vec<i32> = scenes.iter().map(|scene| scene.frame_range.end()).collect();
    sqlx::query(
        "INSERT INTO render.job_scenes (job_id, scene_index, scene_id, composition, frame_start, frame_end,
                                        timeline_start, fields)
         SELECT $1, s.* FROM unnest($2::int4[], $3::uuid[], $4::text[], $5::int4[], $6::int4[], $7::int4[], $8::jsonb[])
             AS s(scene_index, scene_id, composition, frame_start, frame_end, timeline_start, fields)",
    )
    .bind(job_id)
    .bind(indexes)
    .bind(scene_ids)
    .bind(compositions)
    .bind(starts)
    .bind(ends)
    .bind(timeline_starts)
    .bind(fields)
    .execute(connection)
    .await?;
    Ok(())
}

/// The scenes of these jobs in play order, keyed by job; `with_fields` false leaves the field
/// values out (lists and watches carry the scenes, not the content).
pub(crate) async fn of_jobs(
    connection: &mut PgConnection,
    job_ids: &[JobId],
    with_fields: bool,
) -> Result<HashMap<JobId, Vec<SceneSpec>>, DbError> {
    let ids: Vec<Uuid> = job_ids.iter().map(JobId::as_uuid).collect();
    let rows: Vec<SceneRow> = sqlx::query_as(
        "SELECT job_id, scene_index, scene_id, composition, frame_start, frame_end,
                CASE WHEN $2 THEN fields END AS fields
         FROM render.job_scenes WHERE job_id = ANY($1) ORDER BY job_id, scene_index",
    )
    .bind(ids)
    .bind(with_fields)
    .fetch_all(connection)
    .await?;
    let mut scenes: HashMap<JobId, Vec<SceneSpec>> = HashMap::new();
    for row in rows {
        let context = |what: &str| format!("stored scene {} of job {}: {what}", row.scene_index, row.job_id);
        let fields: Vec<Field> = match &row.fields {
            Some(json) => serde_json::from_value(json.clone()).map_err(|error| decode(context(&error.to_string())))?,
            None => Vec::new(),
        };
        let scene = SceneSpec {
            scene_id: row.scene_id,
            composition: SafeName::composition(&row.composition, "composition")
                .map_err(|error| decode(context(&error.to_string())))?,
            frame_range: FrameRange::new(row.frame_start, row.frame_end, "frame_range")
                .map_err(|error| decode(context(&error.to_string())))?,
            fields,
        };
        scenes.entry(JobId::from_uuid(row.job_id)).or_default().push(scene);
    }
    Ok(scenes)
}
