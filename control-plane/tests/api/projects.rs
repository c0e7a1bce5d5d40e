//! Saved projects through the API: scenes in play order with the user's field values and the
//! project's audio are validated at the edge, stored, chunked scene by scene and handed to nodes
//! with each chunk's scene (docs/content.md).

use flatrender_proto::{
    pb::{self, field_value::Value},
    types::TenantId,
};
use tonic::Code;

use crate::support::{Farm, HASH_A, Mutation, authed, job_request};

const ASSET_HASH: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

fn asset(name: &str) -> pb::Asset {
    pb::Asset {
        url: format!("https://files.example.com/u/{name}"),
        blake3_hex: ASSET_HASH.into(),
        size_bytes: 2048,
        file_name: String::new(),
    }
}

fn field(key: &str, layer: &str, value: Value) -> pb::FieldValue {
    pb::FieldValue {
        key: key.into(),
        layer_name: layer.into(),
        property: String::new(),
        value: Some(value),
    }
}

/// A three-scene project (25, 12 and 30 frames) with every kind of field and full audio.
pub fn project_request(tenant: TenantId) -> pb::SubmitRenderJobRequest {
    let mut request = job_request(tenant, 0, 0);
    request.composition.clear();
    request.frame_range = None;
    request.music = None;
    request.voiceover = None;
    let output = request.output.as_mut().unwrap();
    output.container = "mp4".into();
    output.resolution = pb::Resolution::Resolution720p as i32;
    request.scenes = vec![
        pb::Scene {
            scene_id: uuid::Uuid::new_v4().to_string(),
            composition: "Intro".into(),
            frame_range: Some(pb::FrameRange { start: 0, end: 24 }),
            fields: vec![
                field("headline", "Title", Value::Text("\"); app.quit(); //".into())),
                field("brand", "Background", Value::Color("#FF8000".into())),
                field("logo", "Logo", Value::Image(asset("logo.png"))),
            ],
        },
        pb::Scene {
            scene_id: String::new(),
            composition: "Middle".into(),
            frame_range: Some(pb::FrameRange { start: 100, end: 111 }),
            fields: vec![
                pb::FieldValue {
                    property: "Effects>Price>Slider".into(),
                    ..field("price", "Price", Value::Number(9.5))
                },
                field("badge", "Badge", Value::Boolean(false)),
                field("plan", "Plan", Value::Select("Pro".into())),
                field("hero", "Hero", Value::Character("Char_Bob".into())),
            ],
        },
        pb::Scene {
            scene_id: String::new(),
            composition: "Outro".into(),
            frame_range: Some(pb::FrameRange { start: 0, end: 29 }),
            fields: vec![
                field("clip", "Clip", Value::Video(asset("clip.mp4"))),
                field("jingle", "Jingle", Value::Audio(asset("jingle.wav"))),
            ],
        },
    ];
    request.audio = Some(pb::ProjectAudio {
        music: Some(pb::Music {
            file: Some(asset("music.mp3")),
            start_ms: 0,
            fade_in_ms: 500,
            fade_out_ms: 800,
            r#loop: Some(false),
            volume: Some(0.6),
        }),
        sfx: vec![pb::SoundEffect {
            file: Some(asset("whoosh.wav")),
            start_ms: 1000,
            volume: Some(0.5),
            label: "whoosh".into(),
        }],
        sfx_volume: Some(0.8),
        voiceover: Some(pb::Voiceover {
            file: Some(asset("vo.wav")),
            source: pb::VoiceoverSource::Tts as i32,
            start_ms: 200,
            duration_ms: 2000,
            volume: Some(1.0),
            duck_music: Some(true),
        }),
    });
    request.has_voiceover = true;
    request
}

async fn submit(
    farm: &Farm,
    request: pb::SubmitRenderJobRequest,
) -> Result<pb::SubmitRenderJobResponse, tonic::Status> {
    farm.render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .map(tonic::Response::into_inner)
}

/// A project is stored whole and reads back as submitted: scenes with their values in play
/// order, audio, resolution; the job's frames are the video's, numbered from 0.
#[tokio::test]
async fn a_project_reads_back_as_submitted() {
    let farm = Farm::start().await;
    let request = project_request(TenantId::new_random());
    let job = submit(&farm, request.clone()).await.unwrap().job.unwrap();
    assert_eq!(job.composition, "Intro");
    assert_eq!(job.frame_range, Some(pb::FrameRange { start: 0, end: 66 }));
    assert_eq!(job.progress.as_ref().unwrap().frames_total, 67);
    let read = farm.job(&job.id).await;
    // Colours come back in their canonical form; everything else exactly as sent.
    let mut expected = request.scenes.clone();
    expected[0].fields[1].value = Some(Value::Color("#FF8000FF".into()));
    for scene in &mut expected {
        for field in &mut scene.fields {
            if let Some(Value::Image(asset) | Value::Video(asset) | Value::Audio(asset)) = &mut field.value {
                asset.file_name = asset.url.rsplit('/').next().unwrap().to_owned();
            }
        }
    }
    assert_eq!(read.scenes, expected);
    let audio = read.audio.unwrap();
    assert_eq!(audio.music.as_ref().unwrap().r#loop, Some(false));
    assert_eq!(audio.sfx[0].label, "whoosh");
    assert_eq!(audio.sfx_volume, Some(0.8));
    assert_eq!(audio.voiceover.as_ref().unwrap().duration_ms, 2000);
    assert!(read.has_voiceover);
    assert!(read.music.is_none(), "the first API's track stays empty for a project");
    assert_eq!(read.output.unwrap().resolution, pb::Resolution::Resolution720p as i32);
    // The seed's audio columns keep their meaning.
    let (music_url, voiceover_url): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT music_url, voiceover_url FROM render.render_jobs")
            .fetch_one(farm.db.pool())
            .await
            .unwrap();
    assert_eq!(music_url.as_deref(), Some("https://files.example.com/u/music.mp3"));
    assert_eq!(voiceover_url.as_deref(), Some("https://files.example.com/u/vo.wav"));

    // Lists carry the scenes without their values.
    let listed = farm
        .render()
        .await
        .list_render_jobs(authed(
            pb::ListRenderJobsRequest {
                tenant_id: job.tenant_id.clone(),
                ..Default::default()
            },
            &farm.service_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert_eq!(listed[0].scenes.len(), 3);
    assert!(listed[0].scenes.iter().all(|scene| scene.fields.is_empty()));
    assert_eq!(listed[0].scenes[1].composition, "Middle");
}

/// Each scene is chunked on its own (no chunk spans two scenes) and every chunk goes out with
/// its scene's composition, frames and values; two nodes render different scenes at once.
#[tokio::test]
async fn scenes_are_chunked_and_assigned_with_their_content() {
    let farm = Farm::start().await;
    let job = submit(&farm, project_request(TenantId::new_random()))
        .await
        .unwrap()
        .job
        .unwrap();
    let chunks: Vec<(i32, Option<i32>, i32, i32)> = sqlx::query_as(
        "SELECT chunk_index, scene_index, frame_start, frame_end FROM render.frame_jobs ORDER BY chunk_index",
    )
    .fetch_all(farm.db.pool())
    .await
    .unwrap();
    // chunk_frames is 10 in the test configuration.
    let expected = vec![
        (0, Some(0), 0, 9),
        (1, Some(0), 10, 19),
        (2, Some(0), 20, 24),
        (3, Some(1), 100, 109),
        (4, Some(1), 110, 111),
        (5, Some(2), 0, 9),
        (6, Some(2), 10, 19),
        (7, Some(2), 20, 29),
    ];
    assert_eq!(chunks, expected);
    assert_eq!(job.progress.unwrap().chunks_total, 8);

    let mut first = farm.register("node-a", &[]).await;
    let mut second = farm.register("node-b", &[]).await;
    let mut assignments = first.acquire(4).await;
    assignments.extend(second.acquire(4).await);
    assert_eq!(assignments.len(), 8);
    assignments.sort_by_key(|assignment| assignment.chunk_index);
    for (assignment, (chunk_index, scene_index, start, end)) in assignments.iter().zip(&expected) {
        assert_eq!(assignment.chunk_index, *chunk_index);
        assert_eq!(
            assignment.frame_range,
            Some(pb::FrameRange {
                start: *start,
                end: *end
            })
        );
        let scene = assignment.scene.as_ref().expect("a project's chunk carries its scene");
        assert_eq!(Some(scene.index), *scene_index);
        let composition = ["Intro", "Middle", "Outro"][scene.index as usize];
        assert_eq!(assignment.composition, composition);
    }
    let middle = assignments[3].scene.as_ref().unwrap();
    let keys: Vec<&str> = middle.fields.iter().map(|field| field.key.as_str()).collect();
    assert_eq!(keys, ["price", "badge", "plan", "hero"]);
    assert_eq!(middle.fields[0].property, "Effects>Price>Slider");
    let intro = assignments[0].scene.as_ref().unwrap();
    assert_eq!(intro.fields[0].value, Some(Value::Text("\"); app.quit(); //".into())));
    assert!(!intro.scene_id.is_empty());
    for assignment in &assignments {
        let node = if assignment.chunk_index < 4 {
            &mut first
        } else {
            &mut second
        };
        assert_eq!(node.complete(assignment).await, pb::CompletionOutcome::Accepted);
    }
    // Every frame in: an mp4 waits for its encode (tests/api/encode.rs follows it further).
    assert_eq!(farm.job(&job.id).await.status, pb::JobStatus::Rendered as i32);
}

/// A single-composition job is unchanged: no scene on its chunks, and a resubmission under its
/// key still matches (its request hash did not change with the new fields).
#[tokio::test]
async fn a_single_composition_job_is_unchanged() {
    let farm = Farm::start().await;
    let mut request = job_request(TenantId::new_random(), 0, 19);
    request.idempotency_key = "same".into();
    let job = submit(&farm, request.clone()).await.unwrap();
    assert!(job.created);
    let job = job.job.unwrap();
    assert!(job.scenes.is_empty() && job.audio.is_none());
    assert_eq!(job.composition, "Main Comp");
    let again = submit(&farm, request).await.unwrap();
    assert!(!again.created);
    let mut node = farm.register("node", &[]).await;
    let assignments = node.acquire(4).await;
    assert_eq!(assignments.len(), 2);
    assert!(assignments.iter().all(|assignment| assignment.scene.is_none()));
    assert!(
        assignments
            .iter()
            .all(|assignment| assignment.composition == "Main Comp")
    );
}

/// Resubmitting a project under its key returns it; changing one value is a conflict.
#[tokio::test]
async fn project_idempotency_covers_the_content() {
    let farm = Farm::start().await;
    let mut request = project_request(TenantId::new_random());
    request.idempotency_key = "project-1".into();
    assert!(submit(&farm, request.clone()).await.unwrap().created);
    assert!(!submit(&farm, request.clone()).await.unwrap().created);
    request.scenes[1].fields[2].value = Some(Value::Select("Basic".into()));
    let conflict = submit(&farm, request).await.unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
}

fn set_field(request: &mut pb::SubmitRenderJobRequest, scene: usize, index: usize, value: Value) {
    request.scenes[scene].fields[index].value = Some(value);
}

/// The bad-input table of the issue: each case names its exact field and writes nothing.
#[tokio::test]
async fn bad_projects_name_the_field_and_write_nothing() {
    let farm = Farm::start().await;
    let cases: Vec<(&str, Mutation)> = vec![
        ("scenes[0].fields[\"brand\"].color", |r| {
            set_field(r, 0, 1, Value::Color("#FF80".into()))
        }),
        ("scenes[1].fields[\"plan\"].value", |r| {
            r.scenes[1].fields[2].value = None
        }),
        ("scenes[1].fields[\"price\"]", |r| {
            r.scenes[1].fields[1].key = "price".into()
        }),
        ("scenes[1].fields[1].key", |r| {
            r.scenes[1].fields[1].key = "has space".into()
        }),
        ("scenes[0].fields[\"headline\"].text", |r| {
            set_field(r, 0, 0, Value::Text("x".repeat(10_001)))
        }),
        ("scenes[0].fields[\"logo\"].image.url", |r| {
            set_field(
                r,
                0,
                2,
                Value::Image(pb::Asset {
                    url: "file:///etc/passwd".into(),
                    ..asset("logo.png")
                }),
            )
        }),
        ("scenes[2].fields[\"clip\"].video.blake3_hex", |r| {
            set_field(
                r,
                2,
                0,
                Value::Video(pb::Asset {
                    blake3_hex: "xyz".into(),
                    ..asset("clip.mp4")
                }),
            )
        }),
        ("scenes[1].fields[\"price\"].number", |r| {
            set_field(r, 1, 0, Value::Number(f64::INFINITY))
        }),
        ("scenes[1].composition", |r| r.scenes[1].composition = "a/b".into()),
        ("scenes[2].frame_range.end", |r| {
            r.scenes[2].frame_range = Some(pb::FrameRange { start: 5, end: 4 })
        }),
        ("scenes[2].frame_range", |r| r.scenes[2].frame_range = None),
        ("scenes[0].scene_id", |r| r.scenes[0].scene_id = "nope".into()),
        ("scenes", |r| {
            let scene = r.scenes[0].clone();
            r.scenes = vec![scene; 101];
        }),
        ("composition", |r| r.composition = "Main".into()),
        ("frame_range", |r| {
            r.frame_range = Some(pb::FrameRange { start: 0, end: 9 })
        }),
        ("audio.music.volume", |r| {
            r.audio.as_mut().unwrap().music.as_mut().unwrap().volume = Some(1.01)
        }),
        ("audio.sfx_volume", |r| {
            r.audio.as_mut().unwrap().sfx_volume = Some(-0.5)
        }),
        ("audio.sfx[0].start_ms", |r| {
            r.audio.as_mut().unwrap().sfx[0].start_ms = -1
        }),
        // 67 frames at 25 fps: the video ends at 2680 ms.
        ("audio.sfx[0].start_ms", |r| {
            r.audio.as_mut().unwrap().sfx[0].start_ms = 2680
        }),
        ("audio.voiceover.start_ms", |r| {
            r.audio.as_mut().unwrap().voiceover.as_mut().unwrap().start_ms = 5000
        }),
        ("audio.music.fade_in_ms", |r| {
            r.audio.as_mut().unwrap().music.as_mut().unwrap().fade_in_ms = -10
        }),
        ("audio.voiceover.source", |r| {
            r.audio.as_mut().unwrap().voiceover.as_mut().unwrap().source = 0
        }),
        ("has_voiceover", |r| r.has_voiceover = false),
        ("has_voiceover", |r| {
            r.audio.as_mut().unwrap().voiceover = None;
        }),
        ("music", |r| {
            r.music = Some(pb::AudioTrack {
                url: "https://cdn.example.com/m.mp3".into(),
                volume: 1.0,
            })
        }),
        ("audio.sfx", |r| {
            let cue = r.audio.as_ref().unwrap().sfx[0].clone();
            r.audio.as_mut().unwrap().sfx = vec![cue; 201];
        }),
        ("output.resolution", |r| r.output.as_mut().unwrap().resolution = 99),
        ("output.resolution", |r| {
            let output = r.output.as_mut().unwrap();
            output.container = "gif".into();
            output.resolution = pb::Resolution::Resolution4k as i32;
        }),
        ("output.resolution", |r| {
            r.output.as_mut().unwrap().container = "png_sequence".into();
        }),
    ];
    farm.assert_submissions_refused(&cases, || project_request(TenantId::new_random()))
        .await;
    for table in ["render_jobs", "frame_jobs", "job_scenes"] {
        let rows = farm.count(&format!("SELECT count(*) FROM render.{table}")).await;
        assert_eq!(rows, 0, "{table}");
    }
    // The template hash used by every case is a valid one: the cases failed on their own field.
    let mut valid = project_request(TenantId::new_random());
    valid.template.as_mut().unwrap().blake3_hex = HASH_A.into();
    assert!(submit(&farm, valid).await.is_ok());
}
