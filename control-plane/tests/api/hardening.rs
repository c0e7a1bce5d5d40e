//! Regression tests for defects found by an outside gRPC client and by fault injection on a
//! live farm (issue 9). Each failed before its fix.

use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::support::{Farm, authed, job_request, test_config};

/// The widest frame range a client can send is refused with INVALID_ARGUMENT naming the field
/// (it used to overflow the frame count and reset the stream), and nothing is written.
#[tokio::test]
async fn frame_ranges_near_i32_max_are_refused_not_panicked() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    for (start, end) in [(0, i32::MAX), (1, i32::MAX), (0, i32::MAX - 1), (1000, i32::MAX)] {
        let mut request = job_request(TenantId::new_random(), start, end);
        request.frame_range = Some(pb::FrameRange { start, end });
        let status = client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .expect_err("an over-long range is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{start}..{end}: {status:?}");
        assert!(status.message().contains("frame_range"), "{}", status.message());
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 0);

    // The top of the range still works for a short job.
    let job = farm
        .submit(TenantId::new_random(), i32::MAX - 9, i32::MAX, crate::support::HASH_A)
        .await;
    assert_eq!(job.progress.expect("progress").frames_total, 10);
}

/// Durations from clients (drain deadlines, token TTLs) past what a timestamp holds are
/// INVALID_ARGUMENT, not a panic.
#[tokio::test]
async fn huge_durations_are_refused_not_panicked() {
    let farm = Farm::start().await;
    let node = farm.register("node-far", &[]).await;
    let mut admin = farm.admin().await;
    let huge = prost_types::Duration {
        seconds: i64::MAX / 1000,
        nanos: 0,
    };
    let status = admin
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: node.id.clone(),
                deadline: Some(huge),
            },
            &farm.admin_token,
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("deadline"), "{}", status.message());
    let status = admin
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "far".into(),
                ttl: Some(huge),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ttl"), "{}", status.message());
}

/// A message over `server.max_message_bytes` is RESOURCE_EXHAUSTED, as gRPC's status table says.
#[tokio::test]
async fn oversize_messages_are_resource_exhausted() {
    let mut config = test_config();
    config.server.max_message_bytes = 16 * 1024;
    let farm = Farm::start_with(config).await;
    let mut request = job_request(TenantId::new_random(), 0, 9);
    request.idempotency_key = "k".repeat(32 * 1024);
    let status = farm
        .render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The connection stays usable.
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
}
