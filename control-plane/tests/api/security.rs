//! Authentication, token kinds, tenant isolation, and the render role's privileges.

use flatrender_control_plane::auth;
use flatrender_proto::{
    pb,
    types::{TenantId, TokenKind},
};
use tonic::{Code, Request};

use crate::support::{Farm, HASH_A, authed, job_request, test_config};

/// No token, a malformed header, an unknown token and a revoked token are all UNAUTHENTICATED.
#[tokio::test]
async fn missing_wrong_and_revoked_tokens_are_refused() {
    let farm = Farm::start().await;
    let mut client = farm.render().await;
    let request = || pb::GetRenderJobRequest {
        job_id: uuid::Uuid::new_v4().to_string(),
    };
    assert_eq!(
        client.get_render_job(Request::new(request())).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut malformed = Request::new(request());
    malformed
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        client.get_render_job(malformed).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert_eq!(
        client
            .get_render_job(authed(request(), "fr_service_nope"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mut admin = farm.admin().await;
    let created = admin
        .create_token(authed(
            pb::CreateTokenRequest {
                kind: pb::TokenKind::Service as i32,
                label: "temp".into(),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        client
            .get_render_job(authed(request(), &created.token))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "valid token, unknown job"
    );
    admin
        .revoke_token(authed(
            pb::RevokeTokenRequest {
                token_id: created.token_id,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    let revoked = farm.serve(test_config()).await; // a fresh instance has no cached lookups
    let mut fresh =
        flatrender_proto::pb::render_service_client::RenderServiceClient::new(Farm::channel_to(revoked.0).await);
    assert_eq!(
        fresh
            .get_render_job(authed(request(), &created.token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

/// Each token kind reaches only its service.
#[tokio::test]
async fn token_kinds_are_confined_to_their_service() {
    let farm = Farm::start().await;
    let node = farm.register("node-a", &[]).await;
    let mut render = farm.render().await;
    let denied = render
        .submit_render_job(authed(job_request(TenantId::new_random(), 0, 0), &node.token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut admin = farm.admin().await;
    let denied = admin
        .get_farm_stats(authed(pb::GetFarmStatsRequest {}, &farm.service_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut nodes = farm.nodes().await;
    let denied = nodes
        .heartbeat(authed(pb::HeartbeatRequest::default(), &farm.join_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = nodes
        .register_node(authed(crate::support::registration("x", &[]), &farm.service_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// A service token scoped to tenant A cannot submit, read, watch, list or cancel tenant B's jobs.
#[tokio::test]
async fn scoped_tokens_see_only_their_tenants() {
    let farm = Farm::start().await;
    let tenant_a = TenantId::new_random();
    let tenant_b = TenantId::new_random();
    let (_, token_a) = auth::create_token(
        farm.db.pool(),
        TokenKind::Service,
        "tenant a",
        Some(&[tenant_a]),
        None,
        None,
    )
    .await
    .unwrap();
    let job_b = farm.submit(tenant_b, 0, 9, HASH_A).await;
    let mut client = farm.render().await;

    let submit = client
        .submit_render_job(authed(job_request(tenant_b, 0, 0), &token_a))
        .await
        .unwrap_err();
    assert_eq!(submit.code(), Code::PermissionDenied);
    let get = client
        .get_render_job(authed(
            pb::GetRenderJobRequest {
                job_id: job_b.id.clone(),
            },
            &token_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let watch = client
        .watch_render_job(authed(
            pb::WatchRenderJobRequest {
                job_id: job_b.id.clone(),
            },
            &token_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(watch.code(), Code::NotFound);
    let cancel = client
        .cancel_render_job(authed(
            pb::CancelRenderJobRequest {
                job_id: job_b.id.clone(),
                reason: String::new(),
            },
            &token_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound);
    let list_b = client
        .list_render_jobs(authed(
            pb::ListRenderJobsRequest {
                tenant_id: tenant_b.to_string(),
                ..Default::default()
            },
            &token_a,
        ))
        .await
        .unwrap_err();
    assert_eq!(list_b.code(), Code::PermissionDenied);
    let own = client
        .list_render_jobs(authed(pb::ListRenderJobsRequest::default(), &token_a))
        .await
        .unwrap()
        .into_inner();
    assert!(own.jobs.is_empty(), "an unfiltered list shows only the token's tenants");
    assert_eq!(
        farm.job(&job_b.id).await.status(),
        pb::JobStatus::Queued,
        "tenant B's job untouched"
    );
    client
        .submit_render_job(authed(job_request(tenant_a, 0, 0), &token_a))
        .await
        .unwrap();
}

/// The control plane needs nothing beyond the render role of `00_setup.sql`.
#[tokio::test]
async fn serves_as_the_render_role() {
    let farm = Farm::start().await;
    // Roles are cluster-wide: every test sets the same password, so concurrent tests agree.
    sqlx::query("ALTER ROLE flatrender_render LOGIN PASSWORD 'render-test-password'")
        .execute(farm.db.pool())
        .await
        .unwrap();
    let url = farm.db.url_as("flatrender_render", "render-test-password");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(&url)
        .await
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (bound_sender, bound_receiver) = tokio::sync::oneshot::channel();
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        flatrender_control_plane::server::run(test_config(), pool, server_shutdown, move |bound| {
            let _ = bound_sender.send(bound);
        })
        .await
    });
    let bound = bound_receiver.await.unwrap();
    let channel = Farm::channel_to(bound.grpc).await;
    let mut render = pb::render_service_client::RenderServiceClient::new(channel.clone());
    render
        .submit_render_job(authed(job_request(TenantId::new_random(), 0, 19), &farm.service_token))
        .await
        .unwrap();
    let mut nodes = pb::node_service_client::NodeServiceClient::new(channel.clone());
    let registered = nodes
        .register_node(authed(crate::support::registration("node-r", &[]), &farm.join_token))
        .await
        .unwrap()
        .into_inner();
    let acquired = nodes
        .acquire_work(authed(
            pb::AcquireWorkRequest {
                max_chunks: 4,
                wait: None,
            },
            &registered.node_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acquired.assignments.len(), 2);
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel);
    admin
        .ensure_partitions(authed(
            pb::EnsurePartitionsRequest { months_ahead: 2 },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
