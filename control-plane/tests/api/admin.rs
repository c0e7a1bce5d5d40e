//! Node states, ops moves, health ingestion and partitions.

use chrono::Datelike;
use flatrender_proto::{pb, types::TenantId};

use crate::support::{Farm, HASH_A, authed, eventually, http_get, metric_sample, names_field, test_config};

fn node_state(node: &pb::Node) -> pb::NodeState {
    node.state()
}

/// Drain lets running work finish and takes no more; the node ends drained, and undrain
/// brings it back.
#[tokio::test]
async fn drain_finishes_running_work_then_undrain_restores() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 19, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let running = node.acquire(1).await.remove(0);
    let mut admin = farm.admin().await;
    let drained = admin
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: node.id.clone(),
                deadline: None,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(node_state(&drained), pb::NodeState::Draining);
    let beat = node.heartbeat(pb::HeartbeatRequest::default()).await;
    assert_eq!(beat.state(), pb::NodeState::Draining);
    assert!(
        beat.commands
            .iter()
            .any(|c| matches!(c.command, Some(pb::node_command::Command::Drain(_))))
    );
    assert!(node.acquire(1).await.is_empty(), "a draining node takes no work");
    assert_eq!(
        node.complete(&running).await,
        pb::CompletionOutcome::Accepted,
        "running work finishes"
    );
    let settled = eventually(|| async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'drained'")
            .await
            == 1
    })
    .await;
    assert!(settled, "an idle draining node becomes drained");
    admin
        .undrain_node(authed(
            pb::UndrainNodeRequest {
                node_id: node.id.clone(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    assert_eq!(node.acquire(1).await.len(), 1);
}

/// With a deadline, work still running when it passes is requeued without costing an attempt.
#[tokio::test]
async fn drain_with_deadline_requeues_running_work() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let running = node.acquire(1).await.remove(0);
    farm.admin()
        .await
        .drain_node(authed(
            pb::DrainNodeRequest {
                node_id: node.id.clone(),
                deadline: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 300_000_000,
                }),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    let requeued = eventually(|| async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending' AND attempt = 0")
            .await
            == 1
    })
    .await;
    assert!(requeued);
    assert_eq!(node.complete(&running).await, pb::CompletionOutcome::StaleLease);
}

/// A node that stops heartbeating goes offline and its chunk is requeued; when it comes back
/// it is online again.
#[tokio::test]
async fn silent_node_goes_offline_and_comes_back() {
    let mut config = test_config();
    config.dispatch.lease_ttl_seconds = 30;
    config.dispatch.heartbeat_interval_seconds = 1;
    config.dispatch.node_offline_after_seconds = 2;
    let farm = Farm::start_with(config).await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    node.acquire(1).await;
    let offline = eventually(|| async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'offline'")
            .await
            == 1
    })
    .await;
    assert!(offline);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending'")
            .await,
        1
    );
    let beat = node.heartbeat(pb::HeartbeatRequest::default()).await;
    assert_eq!(beat.state(), pb::NodeState::Online);
}

/// Disable takes a node out at once and requeues its work; enable brings it back.
#[tokio::test]
async fn disable_requeues_and_enable_restores() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    node.acquire(1).await;
    let mut admin = farm.admin().await;
    let response = admin
        .disable_node(authed(
            pb::DisableNodeRequest {
                node_id: node.id.clone(),
                reason: "bad GPU".into(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.requeued_chunks, 1);
    assert_eq!(node_state(response.node.as_ref().unwrap()), pb::NodeState::Disabled);
    assert!(node.acquire(1).await.is_empty());
    let undrain = admin
        .undrain_node(authed(
            pb::UndrainNodeRequest {
                node_id: node.id.clone(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        undrain.code(),
        tonic::Code::FailedPrecondition,
        "undrain does not apply to a disabled node"
    );
    admin
        .enable_node(authed(
            pb::EnableNodeRequest {
                node_id: node.id.clone(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    assert_eq!(node.acquire(1).await.len(), 1);
}

/// A dry run lists what would move and moves nothing; the real run moves exactly that.
#[tokio::test]
async fn requeue_dry_run_moves_nothing() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 29, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    node.acquire(2).await;
    let mut admin = farm.admin().await;
    let selector = pb::FrameSelector {
        node_id: node.id.clone(),
        ..Default::default()
    };
    let dry = admin
        .requeue_frames(authed(
            pb::RequeueFramesRequest {
                selector: Some(selector.clone()),
                dry_run: true,
                limit: 0,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(dry.dry_run);
    assert_eq!(dry.frame_jobs.len(), 2);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        2
    );
    let real = admin
        .requeue_frames(authed(
            pb::RequeueFramesRequest {
                selector: Some(selector),
                dry_run: false,
                limit: 0,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let moved_ids = |frame_jobs: &[pb::FrameJob]| {
        let mut ids: Vec<String> = frame_jobs.iter().map(|chunk| chunk.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(real.frame_jobs.len(), 2);
    assert_eq!(
        moved_ids(&real.frame_jobs),
        moved_ids(&dry.frame_jobs),
        "exactly what the dry run listed"
    );
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'pending'")
            .await,
        3
    );
    let too_many = admin
        .requeue_frames(authed(
            pb::RequeueFramesRequest {
                selector: Some(pb::FrameSelector {
                    job_id: job.id,
                    ..Default::default()
                }),
                dry_run: true,
                limit: 0,
            },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    assert!(
        too_many.into_inner().frame_jobs.is_empty(),
        "pending chunks are not requeue candidates"
    );
}

/// ListFrameJobs returns every chunk of a job in order with the lease holder's name, filters by
/// state, and names the field of a bad request; an unknown job is not found.
#[tokio::test]
async fn frame_jobs_are_listed_by_job_with_node_names() {
    let farm = Farm::start().await;
    let job = farm.submit(TenantId::new_random(), 0, 29, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    assert_eq!(node.acquire(2).await.len(), 2);
    let mut admin = farm.admin().await;
    let list = |job_id: String, states: Vec<i32>| pb::ListFrameJobsRequest { job_id, states };

    let all = admin
        .list_frame_jobs(authed(list(job.id.clone(), vec![]), &farm.admin_token))
        .await
        .unwrap()
        .into_inner()
        .frame_jobs;
    assert_eq!(
        all.iter().map(|chunk| chunk.chunk_index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let leased: Vec<&pb::FrameJob> = all
        .iter()
        .filter(|chunk| chunk.state() == pb::FrameJobState::Leased)
        .collect();
    assert_eq!(leased.len(), 2);
    assert!(
        leased
            .iter()
            .all(|chunk| chunk.node_name == "node-a" && chunk.node_id == node.id)
    );
    let pending = all
        .iter()
        .find(|chunk| chunk.state() == pb::FrameJobState::Pending)
        .unwrap();
    assert!(pending.node_name.is_empty() && pending.node_id.is_empty());

    let only_pending = admin
        .list_frame_jobs(authed(
            list(job.id.clone(), vec![pb::FrameJobState::Pending as i32]),
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .frame_jobs;
    assert_eq!(only_pending.len(), 1);

    let bad_state = admin
        .list_frame_jobs(authed(list(job.id.clone(), vec![0]), &farm.admin_token))
        .await
        .unwrap_err();
    assert_eq!(bad_state.code(), tonic::Code::InvalidArgument);
    assert!(names_field(&bad_state, "states[0]"), "{bad_state:?}");
    let bad_id = admin
        .list_frame_jobs(authed(list("nope".into(), vec![]), &farm.admin_token))
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), tonic::Code::InvalidArgument);
    assert!(names_field(&bad_id, "job_id"), "{bad_id:?}");
    let unknown = admin
        .list_frame_jobs(authed(
            list(uuid::Uuid::new_v4().to_string(), vec![]),
            &farm.admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let denied = admin
        .list_frame_jobs(authed(list(job.id.clone(), vec![]), &farm.service_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
}

/// Health samples from heartbeats land in the partitioned table, in batches, and the node's
/// gauges on `/metrics` show its latest sample.
#[tokio::test]
async fn health_samples_are_ingested() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-a", &[]).await;
    let now = chrono::Utc::now();
    // Oldest first, as the agent sends them; each sample differs so the gauge shows which one won.
    let samples = (0..25)
        .map(|index| pb::HealthSample {
            recorded_at: Some(prost_types::Timestamp {
                seconds: now.timestamp() - 24 + index,
                nanos: 0,
            }),
            cpu_percent: 20.0 + index as f32,
            memory_used_bytes: (8 << 30) + index,
            memory_total_bytes: 64 << 30,
            output_disk_free_bytes: 500 << 30,
            ae_process_count: 1,
            load_average_1m: 3.5,
            uptime_seconds: 86_400,
            aerender_running: true,
            ..Default::default()
        })
        .collect();
    node.heartbeat(pb::HeartbeatRequest {
        health: samples,
        ..Default::default()
    })
    .await;
    // The writer counts a batch once it is committed: wait for the count, then read the rows.
    let written = |metrics: &str| metric_sample(metrics, "flatrender_health_samples_written_total", &[]);
    let stored = eventually(|| async { written(&farm.metrics().await) == Some(25.0) }).await;
    assert!(stored, "all 25 samples are written: {}", farm.metrics().await);
    assert_eq!(farm.count("SELECT count(*) FROM render.node_health_logs").await, 25);
    let (nodes, newest_cpu): (i64, f32) = sqlx::query_as(
        "SELECT count(DISTINCT node_id), (array_agg(cpu_percent ORDER BY recorded_at DESC))[1]
           FROM render.node_health_logs WHERE node_id = $1::uuid",
    )
    .bind(&node.id)
    .fetch_one(farm.db.pool())
    .await
    .unwrap();
    assert_eq!((nodes, newest_cpu), (1, 44.0), "stored under the node, values intact");

    let metrics = farm.metrics().await;
    let this_node = [("node_id", node.id.as_str())];
    assert_eq!(
        metric_sample(&metrics, "flatrender_node_cpu_percent", &this_node),
        Some(44.0),
        "{metrics}"
    );
    assert_eq!(
        metric_sample(&metrics, "flatrender_node_memory_used_bytes", &this_node),
        Some(((8_i64 << 30) + 24) as f64),
        "{metrics}"
    );
    assert_eq!(
        metric_sample(&metrics, "flatrender_health_samples_dropped_total", &[]),
        Some(0.0),
        "{metrics}"
    );
}

/// Partition upkeep creates the coming months once, and lists them.
#[tokio::test]
async fn partitions_are_ensured_and_listed() {
    let farm = Farm::start().await;
    let mut admin = farm.admin().await;
    // The server's start-up upkeep (this month and 3 ahead, by default) runs in the background:
    // wait for it, so that asking for 6 months ahead creates exactly the 3 months it lacks.
    let fourth_month = chrono::Utc::now().date_naive().with_day(1).unwrap() + chrono::Months::new(3);
    let last_of_start_up = format!("render.node_health_logs_{}", fourth_month.format("y%Ym%m"));
    let upkept = eventually(|| async {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
            .bind(&last_of_start_up)
            .fetch_one(farm.db.pool())
            .await
            .unwrap()
    })
    .await;
    assert!(upkept, "start-up upkeep creates {last_of_start_up}");
    let response = admin
        .ensure_partitions(authed(
            pb::EnsurePartitionsRequest { months_ahead: 6 },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.created, 3, "{response:?}");
    let again = admin
        .ensure_partitions(authed(
            pb::EnsurePartitionsRequest { months_ahead: 6 },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.created, 0);
    let listed = admin
        .list_partitions(authed(pb::ListPartitionsRequest {}, &farm.admin_token))
        .await
        .unwrap()
        .into_inner();
    let this_month = chrono::Utc::now().format("y%Ym%m").to_string();
    assert!(
        listed.partitions.iter().any(|p| p.name.ends_with(&this_month)),
        "{:?}",
        listed.partitions
    );
    assert!(listed.partitions.iter().any(|p| p.name.ends_with("_default")));
    assert!(
        !listed.partitions.iter().any(|p| p.name.ends_with("y2026m01")),
        "older than the 6-month retention"
    );
}

/// Farm stats and the crash list reflect what happened.
#[tokio::test]
async fn stats_and_crashes_are_reported() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    let assignment = node.acquire(1).await.remove(0);
    node.fail(&assignment, pb::CrashClass::Hang, pb::RecoveryAction::RetryElsewhere)
        .await
        .unwrap();
    let mut admin = farm.admin().await;
    let stats = admin
        .get_farm_stats(authed(pb::GetFarmStatsRequest {}, &farm.admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.crashes_last_24h, 1);
    assert!(stats.nodes.iter().any(|c| c.state == "online" && c.count == 1));
    let crashes = admin
        .list_crashes(authed(
            pb::ListCrashesRequest {
                node_id: node.id.clone(),
                ..Default::default()
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .crashes;
    assert_eq!(crashes.len(), 1);
    assert_eq!(crashes[0].crash_class(), pb::CrashClass::Hang);
    assert_eq!(crashes[0].node_name, "node-a");
}

/// Standard gRPC health checking answers SERVING for every service, without a token, so load
/// balancers and grpcurl-style tools work.
#[tokio::test]
async fn grpc_health_checking_reports_serving() {
    let farm = Farm::start().await;
    let channel = Farm::channel_to(farm.grpc).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in [
        "",
        "flatrender.render.v1.RenderService",
        "flatrender.render.v1.NodeService",
        "flatrender.render.v1.AdminService",
    ] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service}"
        );
    }
    let (status, body) = http_get(farm.http, "/readyz").await;
    assert!(status == 200 && body.ends_with("ready"), "{status} {body}");
}
