//! Bad input is INVALID_ARGUMENT naming the field, and nothing is written.

use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::support::{Farm, Mutation, authed, job_request, names_field};

/// Every malformed submission names its field and leaves the database untouched.
#[tokio::test]
async fn bad_submissions_name_the_field_and_write_nothing() {
    let farm = Farm::start().await;
    let cases: Vec<(&str, Mutation)> = vec![
        ("tenant_id", |r| r.tenant_id.clear()),
        ("tenant_id", |r| r.tenant_id = "not-a-uuid".into()),
        ("user_id", |r| r.user_id.clear()),
        ("saved_project_id", |r| r.saved_project_id = "x".into()),
        ("idempotency_key", |r| r.idempotency_key = "k".repeat(201)),
        ("priority", |r| r.priority = 101),
        ("kind", |r| r.kind = 42),
        ("template", |r| r.template = None),
        ("template.template_id", |r| {
            r.template.as_mut().unwrap().template_id.clear()
        }),
        ("template.version", |r| r.template.as_mut().unwrap().version = 0),
        ("template.download_url", |r| {
            r.template.as_mut().unwrap().download_url = "file:///etc/passwd".into()
        }),
        ("template.download_url", |r| {
            r.template.as_mut().unwrap().download_url = "ftp://x/y.aep".into()
        }),
        ("template.blake3_hex", |r| {
            r.template.as_mut().unwrap().blake3_hex = "abc".into()
        }),
        ("template.blake3_hex", |r| {
            r.template.as_mut().unwrap().blake3_hex = "g".repeat(64)
        }),
        ("template.size_bytes", |r| r.template.as_mut().unwrap().size_bytes = 0),
        ("composition", |r| r.composition.clear()),
        ("composition", |r| r.composition = "../../etc".into()),
        ("composition", |r| r.composition = "a\\b".into()),
        ("composition", |r| r.composition = "x".repeat(300)),
        ("frame_range", |r| r.frame_range = None),
        ("frame_range.end", |r| {
            r.frame_range = Some(pb::FrameRange { start: 10, end: 9 })
        }),
        ("frame_range.start", |r| {
            r.frame_range = Some(pb::FrameRange { start: -5, end: 9 })
        }),
        ("frame_range", |r| {
            r.frame_range = Some(pb::FrameRange {
                start: 0,
                end: 1_000_000,
            })
        }),
        ("fps", |r| r.fps = 0.0),
        ("fps", |r| r.fps = -25.0),
        ("fps", |r| r.fps = f64::NAN),
        ("output.output_name", |r| {
            r.output.as_mut().unwrap().output_name = "../escape".into()
        }),
        ("output.output_name", |r| {
            r.output.as_mut().unwrap().output_name = "a/b".into()
        }),
        ("output.container", |r| {
            r.output.as_mut().unwrap().container = "avi".into()
        }),
        ("output.width", |r| r.output.as_mut().unwrap().width = -1),
        ("music.volume", |r| r.music.as_mut().unwrap().volume = 1.5),
        ("music.volume", |r| r.music.as_mut().unwrap().volume = -0.1),
        ("music.url", |r| {
            r.music.as_mut().unwrap().url = "javascript:alert(1)".into()
        }),
        ("voiceover.volume", |r| r.voiceover.as_mut().unwrap().volume = 2.0),
        ("has_voiceover", |r| r.has_voiceover = false),
        ("has_voiceover", |r| {
            r.voiceover = None;
            r.has_voiceover = true;
        }),
        ("requirements.ae_version", |r| {
            r.requirements = Some(pb::NodeRequirements {
                ae_version: "24; rm -rf".into(),
                ..Default::default()
            })
        }),
        ("requirements.tags[0]", |r| {
            r.requirements = Some(pb::NodeRequirements {
                tags: vec!["bad tag".into()],
                ..Default::default()
            })
        }),
    ];
    farm.assert_submissions_refused(&cases, || job_request(TenantId::new_random(), 0, 99))
        .await;
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 0);
    assert_eq!(farm.count("SELECT count(*) FROM render.frame_jobs").await, 0);
}

/// Unknown ids are NOT_FOUND and malformed ids INVALID_ARGUMENT, on every service.
#[tokio::test]
async fn ids_are_checked() {
    let farm = Farm::start().await;
    let mut render = farm.render().await;
    let missing = render
        .get_render_job(authed(
            pb::GetRenderJobRequest {
                job_id: uuid::Uuid::new_v4().to_string(),
            },
            &farm.service_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let malformed = render
        .get_render_job(authed(
            pb::GetRenderJobRequest { job_id: "42".into() },
            &farm.service_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(names_field(&malformed, "job_id"), "{malformed:?}");
    let mut admin = farm.admin().await;
    let node = admin
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: uuid::Uuid::new_v4().to_string(),
                deadline: None,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(node.code(), Code::NotFound);
    let selector = admin
        .requeue_frames(authed(
            pb::RequeueFramesRequest {
                selector: Some(pb::FrameSelector::default()),
                dry_run: true,
                limit: 0,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(selector.code(), Code::InvalidArgument);
    assert!(names_field(&selector, "selector"), "{selector:?}");
}

/// Node-side requests are validated too: registration fields, acquire sizes, health samples.
#[tokio::test]
async fn node_requests_are_validated() {
    let farm = Farm::start().await;
    let mut nodes = farm.nodes().await;
    let mut bad = crate::support::registration("ok-name", &[]);
    bad.name = "../evil".into();
    let status = nodes.register_node(authed(bad, &farm.join_token)).await.unwrap_err();
    assert!(
        status.code() == Code::InvalidArgument && names_field(&status, "name"),
        "{status:?}"
    );
    let mut bad = crate::support::registration("ok-name", &[]);
    bad.os = 0;
    let status = nodes.register_node(authed(bad, &farm.join_token)).await.unwrap_err();
    assert!(
        status.code() == Code::InvalidArgument && names_field(&status, "os"),
        "{status:?}"
    );
    let mut node = farm.register("node-a", &[]).await;
    let status = node
        .client
        .acquire_work(authed(
            pb::AcquireWorkRequest {
                max_chunks: 0,
                wait: None,
            },
            &node.token,
        ))
        .await
        .unwrap_err();
    assert!(
        status.code() == Code::InvalidArgument && names_field(&status, "max_chunks"),
        "{status:?}"
    );
    let sample = pb::HealthSample {
        recorded_at: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
        cpu_percent: 250.0,
        ..Default::default()
    };
    let status = node
        .client
        .heartbeat(authed(
            pb::HeartbeatRequest {
                health: vec![sample],
                ..Default::default()
            },
            &node.token,
        ))
        .await
        .unwrap_err();
    assert!(
        status.code() == Code::InvalidArgument && names_field(&status, "health[0].cpu_percent"),
        "{status:?}"
    );
    assert_eq!(farm.count("SELECT count(*) FROM render.node_health_logs").await, 0);
}
