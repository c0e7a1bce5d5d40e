//! Refusals by token: each kind is confined to its service on every method (and the refused
//! calls change nothing), and an expired token is refused on first use.

use flatrender_control_plane::auth;
use flatrender_proto::{
    pb,
    types::{TenantId, TokenKind},
};
use tonic::{Code, Status};

use crate::support::{Farm, HASH_A, authed};

/// Calls every AdminService method with `token` on well-formed requests about real things (the
/// node, its job, the admin token); returns each method's outcome.
async fn every_admin_call(
    farm: &Farm,
    token: &str,
    node_id: &str,
    job_id: &str,
) -> Vec<(&'static str, Result<(), Status>)> {
    let admin_token_id: String = sqlx::query_scalar("SELECT id::text FROM render.api_tokens WHERE kind = 'admin'")
        .fetch_one(farm.db.pool())
        .await
        .unwrap();
    let mut admin = farm.admin().await;
    let node = || node_id.to_string();
    let job = || job_id.to_string();
    vec![
        (
            "ListNodes",
            ok(admin.list_nodes(authed(pb::ListNodesRequest::default(), token)).await),
        ),
        (
            "GetNode",
            ok(admin
                .get_node(authed(pb::GetNodeRequest { node_id: node() }, token))
                .await),
        ),
        (
            "DrainNode",
            ok(admin
                .drain_node(authed(
                    pb::DrainNodeRequest {
                        node_id: node(),
                        deadline: None,
                    },
                    token,
                ))
                .await),
        ),
        (
            "UndrainNode",
            ok(admin
                .undrain_node(authed(pb::UndrainNodeRequest { node_id: node() }, token))
                .await),
        ),
        (
            "DisableNode",
            ok(admin
                .disable_node(authed(
                    pb::DisableNodeRequest {
                        node_id: node(),
                        reason: "taken over".into(),
                    },
                    token,
                ))
                .await),
        ),
        (
            "EnableNode",
            ok(admin
                .enable_node(authed(pb::EnableNodeRequest { node_id: node() }, token))
                .await),
        ),
        (
            "RequeueFrames",
            ok(admin
                .requeue_frames(authed(
                    pb::RequeueFramesRequest {
                        selector: Some(pb::FrameSelector {
                            node_id: node(),
                            ..Default::default()
                        }),
                        dry_run: false,
                        limit: 0,
                    },
                    token,
                ))
                .await),
        ),
        (
            "ListFrameJobs",
            ok(admin
                .list_frame_jobs(authed(
                    pb::ListFrameJobsRequest {
                        job_id: job(),
                        states: vec![],
                    },
                    token,
                ))
                .await),
        ),
        (
            "CancelJob",
            ok(admin
                .cancel_job(authed(
                    pb::CancelJobRequest {
                        job_id: job(),
                        reason: "mine now".into(),
                    },
                    token,
                ))
                .await),
        ),
        (
            "RetryJob",
            ok(admin
                .retry_job(authed(pb::RetryJobRequest { job_id: job() }, token))
                .await),
        ),
        (
            "ListCrashes",
            ok(admin
                .list_crashes(authed(pb::ListCrashesRequest::default(), token))
                .await),
        ),
        (
            "EnsurePartitions",
            ok(admin
                .ensure_partitions(authed(pb::EnsurePartitionsRequest { months_ahead: 12 }, token))
                .await),
        ),
        (
            "ListPartitions",
            ok(admin.list_partitions(authed(pb::ListPartitionsRequest {}, token)).await),
        ),
        (
            "GetFarmStats",
            ok(admin.get_farm_stats(authed(pb::GetFarmStatsRequest {}, token)).await),
        ),
        (
            "CreateToken",
            ok(admin
                .create_token(authed(
                    pb::CreateTokenRequest {
                        kind: pb::TokenKind::Admin as i32,
                        label: "escalated".into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await),
        ),
        (
            "RevokeToken",
            ok(admin
                .revoke_token(authed(
                    pb::RevokeTokenRequest {
                        token_id: admin_token_id,
                    },
                    token,
                ))
                .await),
        ),
    ]
}

/// A call's outcome without its answer.
fn ok<T>(result: Result<T, Status>) -> Result<(), Status> {
    result.map(|_| ())
}

/// What the denied calls of these tests could have changed: jobs and chunks, nodes' states, tokens.
async fn farm_state(farm: &Farm) -> String {
    let mut state = farm.render_state().await;
    for sql in [
        "SELECT coalesce(jsonb_agg(jsonb_build_array(id, state) ORDER BY id), '[]')::text FROM render.nodes",
        "SELECT coalesce(jsonb_agg(jsonb_build_array(id, kind, revoked_at, expires_at) ORDER BY id), '[]')::text
           FROM render.api_tokens",
        "SELECT count(*)::text FROM pg_inherits WHERE inhparent = 'render.node_health_logs'::regclass",
    ] {
        let rows: String = sqlx::query_scalar(sql).fetch_one(farm.db.pool()).await.unwrap();
        state.push_str(&rows);
        state.push('\n');
    }
    state
}

/// Node, join and service tokens are PERMISSION_DENIED on every AdminService method, and none of
/// those calls changes anything (no drain, no requeue, no cancel, no new or revoked token).
#[tokio::test]
async fn admin_service_refuses_node_join_and_service_tokens() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 19, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    assert_eq!(node.acquire(1).await.len(), 1);
    let before = farm_state(&farm).await;
    for (kind, token) in [
        ("node", node.token.clone()),
        ("join", farm.join_token.clone()),
        ("service", farm.service_token.clone()),
    ] {
        for (method, outcome) in every_admin_call(&farm, &token, &node.id, &job.id).await {
            let code = outcome.err().map(|status| status.code());
            assert_eq!(code, Some(Code::PermissionDenied), "{kind} token calling {method}");
        }
        assert_eq!(farm_state(&farm).await, before, "{kind} token changed nothing");
    }
    // The same calls are otherwise sound: the admin token gets past authorization on each.
    for (method, outcome) in every_admin_call(&farm, &farm.admin_token, &node.id, &job.id).await {
        if let Err(status) = outcome {
            assert!(
                !matches!(status.code(), Code::PermissionDenied | Code::Unauthenticated),
                "admin token calling {method}: {status:?}"
            );
        }
    }
}

/// Service, admin and join tokens are PERMISSION_DENIED on NodeService calls about a real lease
/// (and a node token cannot register another node); nothing changes.
#[tokio::test]
async fn node_service_refuses_other_token_kinds() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 19, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    let before = farm_state(&farm).await;
    let mut nodes = farm.nodes().await;
    let start = assignment.frame_range.unwrap().start;
    for (kind, token) in [
        ("service", farm.service_token.as_str()),
        ("admin", farm.admin_token.as_str()),
        ("join", farm.join_token.as_str()),
    ] {
        let heartbeat = pb::HeartbeatRequest {
            leases: vec![pb::LeaseStatus {
                frame_job_id: assignment.frame_job_id.clone(),
                lease_token: assignment.lease_token,
                frames_done: 1,
            }],
            ..Default::default()
        };
        let acquire = pb::AcquireWorkRequest {
            max_chunks: 1,
            wait: None,
        };
        let progress = pb::ReportProgressRequest {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            frames_done: 2,
            frames_written: vec![start],
        };
        let complete = pb::CompleteWorkRequest {
            chunks: vec![crate::support::completed_chunk(&assignment)],
        };
        let fail = pb::FailWorkRequest {
            frame_job_id: assignment.frame_job_id.clone(),
            lease_token: assignment.lease_token,
            crash_class: pb::CrashClass::Crash as i32,
            recovery_action: pb::RecoveryAction::RetryElsewhere as i32,
            ..Default::default()
        };
        let mut outcomes = vec![
            ("Heartbeat", nodes.heartbeat(authed(heartbeat, token)).await.map(|_| ())),
            (
                "AcquireWork",
                nodes.acquire_work(authed(acquire, token)).await.map(|_| ()),
            ),
            (
                "ReportProgress",
                nodes.report_progress(authed(progress, token)).await.map(|_| ()),
            ),
            (
                "CompleteWork",
                nodes.complete_work(authed(complete, token)).await.map(|_| ()),
            ),
            ("FailWork", nodes.fail_work(authed(fail, token)).await.map(|_| ())),
        ];
        if kind != "join" {
            let registration = crate::support::registration("node-b", &[]);
            outcomes.push((
                "RegisterNode",
                nodes.register_node(authed(registration, token)).await.map(|_| ()),
            ));
        }
        for (method, outcome) in outcomes {
            let code = outcome.err().map(|status| status.code());
            assert_eq!(code, Some(Code::PermissionDenied), "{kind} token calling {method}");
        }
        assert_eq!(farm_state(&farm).await, before, "{kind} token changed nothing");
    }
    let denied = nodes
        .register_node(authed(crate::support::registration("node-b", &[]), &node.token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "node token calling RegisterNode");
    assert_eq!(farm_state(&farm).await, before, "node token registered nothing");
    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
}

/// A token past its expiry is UNAUTHENTICATED on first use, whatever its kind; the same kind of
/// token within its expiry gets through.
#[tokio::test]
async fn expired_tokens_are_refused() {
    let farm = Farm::start().await;
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let create = |kind: TokenKind, expires_at| {
        auth::create_token(farm.db.pool(), kind, "expiry test", None, None, Some(expires_at))
    };
    let (_, expired_service) = create(TokenKind::Service, an_hour_ago).await.unwrap();
    let (_, live_service) = create(TokenKind::Service, in_an_hour).await.unwrap();
    let (_, expired_admin) = create(TokenKind::Admin, an_hour_ago).await.unwrap();
    let (_, expired_join) = create(TokenKind::Join, an_hour_ago).await.unwrap();

    let mut render = farm.render().await;
    let get = || pb::GetRenderJobRequest {
        job_id: uuid::Uuid::new_v4().to_string(),
    };
    let refused = render
        .get_render_job(authed(get(), &expired_service))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "expired service token: {refused:?}"
    );
    let live = render.get_render_job(authed(get(), &live_service)).await.unwrap_err();
    assert_eq!(
        live.code(),
        Code::NotFound,
        "a live service token gets past authentication"
    );

    let refused = farm
        .admin()
        .await
        .get_farm_stats(authed(pb::GetFarmStatsRequest {}, &expired_admin))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "expired admin token: {refused:?}"
    );

    let mut nodes = farm.nodes().await;
    let refused = nodes
        .register_node(authed(crate::support::registration("node-late", &[]), &expired_join))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "expired join token: {refused:?}");
    assert_eq!(farm.count("SELECT count(*) FROM render.nodes").await, 0);

    // A node token is issued at registration: expire it before its first use.
    let mut node = farm.register("node-a", &[]).await;
    sqlx::query("UPDATE render.api_tokens SET expires_at = now() - interval '1 minute' WHERE node_id = $1::uuid")
        .bind(&node.id)
        .execute(farm.db.pool())
        .await
        .unwrap();
    let refused = node
        .client
        .heartbeat(authed(pb::HeartbeatRequest::default(), &node.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "expired node token: {refused:?}");
}
