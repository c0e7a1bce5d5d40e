//! Regression tests for defects an outside gRPC client found (issue 9): input that panicked or
//! was mis-answered, contract gaps (idempotency, duplicates, tokens), dispatch and quarantine
//! records. Each failed before its fix. Fault-injection cases are in `outages`.

use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::support::{Farm, authed, completed_chunk, eventually, http_get, job_request, metric_sample, test_config};

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

/// One CompleteWork naming the same chunk twice is ACCEPTED once, then DUPLICATE, and counts
/// one accepted completion; a stale token next to the live one is STALE.
#[tokio::test]
async fn a_chunk_named_twice_in_one_completion_counts_once() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-twice", &[]).await;
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
    let assignment = node.acquire(1).await.pop().unwrap();
    let mut stale = completed_chunk(&assignment);
    stale.lease_token += 1000;
    let results = node
        .client
        .complete_work(authed(
            pb::CompleteWorkRequest {
                chunks: vec![completed_chunk(&assignment), completed_chunk(&assignment), stale],
            },
            &node.token,
        ))
        .await
        .unwrap()
        .into_inner()
        .results;
    let outcomes: Vec<_> = results.iter().map(pb::CompletionResult::outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::CompletionOutcome::Accepted,
            pb::CompletionOutcome::Duplicate,
            pb::CompletionOutcome::StaleLease
        ]
    );
    let (_, metrics) = http_get(farm.http, "/metrics").await;
    assert_eq!(
        metric_sample(&metrics, "flatrender_completions_total", &[("outcome", "accepted")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_sample(&metrics, "flatrender_completions_total", &[("outcome", "duplicate")]),
        Some(1.0)
    );
    assert_eq!(
        farm.count("SELECT chunks_completed::int8 FROM render.render_jobs")
            .await,
        1
    );
}

/// Reusing an idempotency key with a different request is ALREADY_EXISTS naming the key (it
/// used to return the first job silently); the identical request still returns that job.
#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_a_conflict() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    let tenant = TenantId::new_random();
    let mut first = job_request(tenant, 0, 99);
    first.idempotency_key = "order-1234".into();
    let created = client
        .submit_render_job(authed(first.clone(), &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    let job_id = created.job.unwrap().id;

    let again = client
        .submit_render_job(authed(first.clone(), &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.job.unwrap().id, job_id);

    type Change = fn(&mut pb::SubmitRenderJobRequest);
    let changes: [Change; 5] = [
        |r| r.frame_range = Some(pb::FrameRange { start: 0, end: 100 }),
        |r| r.composition = "Other Comp".into(),
        |r| r.fps = 30.0,
        |r| r.music.as_mut().unwrap().volume = 0.5,
        |r| r.template.as_mut().unwrap().blake3_hex = crate::support::HASH_B.into(),
    ];
    for change in changes {
        let mut different = first.clone();
        change(&mut different);
        let status = client
            .submit_render_job(authed(different, &farm.service_token))
            .await
            .expect_err("a different request under the same key is refused");
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert!(status.message().contains("order-1234"), "{}", status.message());
        assert!(status.message().contains(&job_id), "{}", status.message());
    }
    assert_eq!(farm.count("SELECT count(*) FROM render.render_jobs").await, 1);
    // The same key under another tenant is another job.
    let mut other_tenant = first.clone();
    other_tenant.tenant_id = TenantId::new_random().to_string();
    let other = client
        .submit_render_job(authed(other_tenant, &farm.service_token))
        .await
        .unwrap()
        .into_inner();
    assert!(other.created);
}

async fn list_jobs_with(address: std::net::SocketAddr, token: &str) -> Result<(), tonic::Status> {
    flatrender_proto::pb::render_service_client::RenderServiceClient::new(Farm::channel_to(address).await)
        .list_render_jobs(authed(
            pb::ListRenderJobsRequest {
                tenant_id: TenantId::new_random().to_string(),
                ..Default::default()
            },
            token,
        ))
        .await
        .map(|_| ())
}

/// A token used once (so cached) stops working when it expires, not a cache lifetime later.
#[tokio::test]
async fn a_cached_token_stops_working_when_it_expires() {
    let mut config = test_config();
    config.server.auth_cache_seconds = 3600;
    let farm = Farm::start_with(config).await;
    let created = farm
        .admin()
        .await
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "short-lived".into(),
                ttl: Some(prost_types::Duration { seconds: 2, nanos: 0 }),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    list_jobs_with(farm.grpc, &created.token)
        .await
        .expect("valid before expiry");
    let expires_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM render.api_tokens WHERE id = $1::uuid")
            .bind(&created.token_id)
            .fetch_one(farm.db.pool())
            .await
            .unwrap();
    assert!(eventually(|| async { chrono::Utc::now() > expires_at }).await);
    let status = list_jobs_with(farm.grpc, &created.token).await.expect_err("expired");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// A token revoked on one replica stops working on another at once (announced), even with a
/// cache lifetime of an hour there.
#[tokio::test]
async fn a_revocation_reaches_every_replica() {
    let mut config = test_config();
    config.server.auth_cache_seconds = 3600;
    let farm = Farm::start_with(config.clone()).await;
    let (other, _, _other_server) = farm.serve(config).await;
    let mut admin = farm.admin().await;
    let created = admin
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "revoked soon".into(),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    list_jobs_with(farm.grpc, &created.token).await.unwrap();
    list_jobs_with(other, &created.token)
        .await
        .expect("cached on the other replica");
    admin
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                token_id: created.token_id.clone(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    let status = list_jobs_with(farm.grpc, &created.token)
        .await
        .expect_err("revoked here");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        eventually(|| async {
            list_jobs_with(other, &created.token)
                .await
                .is_err_and(|status| status.code() == Code::Unauthenticated)
        })
        .await,
        "the other replica refuses the revoked token"
    );
}

/// More than a ranking window of tenants with higher-ranked work only macOS nodes can run do
/// not hide a lower-ranked tenant's work from an idle Windows node.
#[tokio::test]
async fn unrunnable_tenants_do_not_hide_runnable_work() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    for _ in 0..20 {
        let mut request = job_request(TenantId::new_random(), 0, 9);
        request.priority = 90;
        request.requirements = Some(pb::NodeRequirements {
            os: pb::OperatingSystem::Macos as i32,
            ..Default::default()
        });
        client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .unwrap();
    }
    // Tags no node carries: unrunnable too.
    for _ in 0..4 {
        let mut request = job_request(TenantId::new_random(), 0, 9);
        request.priority = 95;
        request.requirements = Some(pb::NodeRequirements {
            tags: vec!["gpu-a100".into()],
            ..Default::default()
        });
        client
            .submit_render_job(authed(request, &farm.service_token))
            .await
            .unwrap();
    }
    let mut runnable = job_request(TenantId::new_random(), 0, 9);
    runnable.priority = 10;
    let runnable = client
        .submit_render_job(authed(runnable, &farm.service_token))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let mut node = farm.register("node-win", &[]).await;
    let taken = node.acquire(4).await;
    assert_eq!(taken.len(), 1, "the only runnable chunk is taken");
    assert_eq!(taken[0].job_id, runnable.id);
}

/// The crash that quarantines a node is recorded as such, and the re-admission after a passed
/// canary render marks the node's crashes recovered.
#[tokio::test]
async fn quarantine_and_readmission_are_recorded() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-loop", &[]).await;
    farm.submit(TenantId::new_random(), 0, 9, crate::support::HASH_A).await;
    let assignment = node.acquire(1).await.pop().unwrap();
    node.fail(&assignment, pb::CrashClass::Crash, pb::RecoveryAction::Quarantine)
        .await
        .unwrap();
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            quarantined: true,
            quarantine_reason: "3 crashes in 10 minutes".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Quarantined);
    assert_eq!(
        farm.count(
            "SELECT count(*) FROM render.node_crashes WHERE recovery_action = 'quarantine' AND recovered_at IS NULL"
        )
        .await,
        1
    );
    // Still quarantined while the agent says so and no probe passed.
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            quarantined: true,
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Quarantined);
    let response = node
        .heartbeat(pb::HeartbeatRequest {
            probe_succeeded: true,
            ..Default::default()
        })
        .await;
    assert_eq!(response.state(), pb::NodeState::Online);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.node_crashes WHERE recovered_at IS NOT NULL")
            .await,
        1
    );
}
