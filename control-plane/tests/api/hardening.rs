//! Regression tests for defects found by an outside gRPC client and by fault injection on a
//! live farm (issue 9). Each failed before its fix.

use std::time::Duration;

use flatrender_control_plane::readiness;
use flatrender_proto::{pb, types::TenantId};
use tonic::Code;

use crate::{
    faults::DbProxy,
    support::{Farm, authed, eventually_within, http_get, job_request, test_config},
};

/// How long a test waits for something that takes well under a second on an idle machine.
const WAIT: Duration = Duration::from_secs(60);

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

/// The database's host and port, from the test database's URL.
fn database_address(farm: &Farm) -> std::net::SocketAddr {
    let url = farm.db.url();
    let host_and_path = url.rsplit_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let host = host_and_path.split('/').next().unwrap();
    host.parse().expect("DATABASE_URL names an IP:port")
}

async fn grpc_health(address: std::net::SocketAddr, service: &str) -> i32 {
    let channel = Farm::channel_to(address).await;
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// With the database hanging (not refusing: hanging, as a stopped host does), `/readyz` still
/// answers, 503, and gRPC health says NOT_SERVING for every service; both come back when the
/// database does. Before, `/readyz` waited on the pool and gRPC health said SERVING forever.
#[tokio::test]
async fn readiness_and_grpc_health_follow_the_database() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let farm = Farm::start().await;
    let proxy = DbProxy::start(database_address(&farm)).await;
    // A pool that would wait ten minutes for a connection: readiness must not.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(600))
        .connect(&proxy.url_for(&farm.db.url()))
        .await
        .unwrap();
    let (grpc, http, _server) = farm.serve_with_pool(test_config(), pool).await;
    assert_eq!(http_get(http, "/readyz").await.0, 200);
    assert_eq!(grpc_health(grpc, "").await, ServingStatus::Serving as i32);

    proxy.blackhole(true);
    let answered = tokio::time::timeout(WAIT, async {
        loop {
            let (status, body) = http_get(http, "/readyz").await;
            if status == 503 {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("/readyz answers 503 while the database hangs");
    assert!(answered.contains("database"), "{answered}");
    for service in readiness::SERVICES {
        assert!(
            eventually_within(WAIT, || async {
                grpc_health(grpc, service).await == ServingStatus::NotServing as i32
            })
            .await,
            "gRPC health of {service:?} turns NOT_SERVING"
        );
    }

    proxy.blackhole(false);
    assert!(eventually_within(WAIT, || async { http_get(http, "/readyz").await.0 == 200 }).await);
    for service in readiness::SERVICES {
        assert!(
            eventually_within(WAIT, || async {
                grpc_health(grpc, service).await == ServingStatus::Serving as i32
            })
            .await,
            "gRPC health of {service:?} is SERVING again"
        );
    }
}
