//! Fair share, cache affinity, requirement matching, wake-ups and multi-instance safety.

use std::{collections::HashSet, time::Duration};

use flatrender_proto::{pb, types::TenantId};

use crate::support::{
    Farm, HASH_A, HASH_B, PATIENCE, authed, eventually, job_request, metric_sample, prefetches, registration,
    test_config,
};

/// A tenant with many queued jobs does not starve a tenant with one.
#[tokio::test]
async fn one_tenants_flood_does_not_starve_another() {
    let farm = Farm::start().await;
    let flood = TenantId::new_random();
    let single = TenantId::new_random();
    for _ in 0..20 {
        farm.submit(flood, 0, 9, HASH_A).await;
    }
    let lone_job = farm.submit(single, 0, 9, HASH_A).await;
    let mut node = farm.register("node-a", &[]).await;
    // One chunk at a time, holding the leases: the flood tenant is running, the other is not.
    let first = node.acquire(1).await.remove(0);
    let second = node.acquire(1).await.remove(0);
    let tenants: HashSet<String> = [first.tenant_id, second.tenant_id].into_iter().collect();
    assert!(
        tenants.contains(&single.to_string()),
        "the lone tenant's chunk is among the first two leased"
    );
    assert!(first.job_id == lone_job.id || second.job_id == lone_job.id);
}

/// Within one tenant and priority, a node gets chunks of a template it holds first.
#[tokio::test]
async fn cache_affinity_prefers_templates_the_node_holds() {
    let farm = Farm::start().await;
    let tenant = TenantId::new_random();
    let older = farm.submit(tenant, 0, 0, HASH_A).await;
    let newer = farm.submit(tenant, 0, 0, HASH_B).await;
    let mut warm = farm.register("node-warm", &[]).await;
    warm.heartbeat(pb::HeartbeatRequest {
        cache: Some(pb::CacheInventory {
            full_sync: true,
            upserted: vec![pb::CacheEntry {
                blake3_hex: HASH_B.into(),
                size_bytes: 10,
                hits: 1,
                ..Default::default()
            }],
            removed_blake3_hex: vec![],
        }),
        ..Default::default()
    })
    .await;
    let got = warm.acquire(1).await.remove(0);
    assert_eq!(got.job_id, newer.id, "the cached template wins over FIFO");
    let mut cold = farm.register("node-cold", &[]).await;
    let fallback = cold.acquire(1).await.remove(0);
    assert_eq!(fallback.job_id, older.id, "a node without the template still gets work");
}

/// Jobs are only given to nodes that match their OS, AE version and tags.
#[tokio::test]
async fn requirements_are_matched() {
    let farm = Farm::start().await;
    let mut request = job_request(TenantId::new_random(), 0, 0);
    request.requirements = Some(pb::NodeRequirements {
        os: pb::OperatingSystem::Windows as i32,
        ae_version: "24".into(),
        tags: vec!["gpu".into()],
    });
    farm.render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .unwrap();
    let mut plain = farm.register("node-plain", &[]).await;
    assert!(plain.acquire(1).await.is_empty(), "lacks the tag");
    let mut mac = registration("node-mac", &["gpu"]);
    mac.os = pb::OperatingSystem::Macos as i32;
    let mut mac = farm.register_as(farm.grpc, mac).await;
    assert!(mac.acquire(1).await.is_empty(), "wrong OS");
    let mut old_ae = registration("node-ae23", &["gpu"]);
    old_ae.ae_version = "23.6.0".into();
    let mut old_ae = farm.register_as(farm.grpc, old_ae).await;
    assert!(old_ae.acquire(1).await.is_empty(), "wrong After Effects version");
    let mut gpu = farm.register("node-gpu", &["gpu", "fast"]).await;
    assert_eq!(gpu.acquire(1).await.len(), 1, "matches all three");
}

/// A node long-polling for work is parked until a job arrives, and the submission wakes it: it
/// gets the chunk, which only a wake-up can give (a wait that runs out answers with nothing).
#[tokio::test]
async fn waiting_node_is_woken_by_a_submission() {
    let mut config = test_config();
    config.dispatch.max_acquire_wait_seconds = 300;
    let farm = Farm::start_with(config).await;
    let mut node = farm.register("node-a", &[]).await;
    assert_eq!(claim_queries(&farm).await, 0.0, "nothing has claimed yet");
    let waiter = tokio::spawn(async move { node.acquire_waiting(1, Duration::from_secs(300)).await });
    // The waiter's first claim ran and found nothing (no job exists yet): it is now parked.
    let first_claim_ran = eventually(|| async { claim_queries(&farm).await >= 1.0 }).await;
    assert!(first_claim_ran, "the long poll reached the dispatcher");
    assert!(!waiter.is_finished(), "a long poll with nothing to claim stays parked");
    farm.submit(TenantId::new_random(), 0, 0, HASH_A).await;
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("the submission wakes the parked waiter")
        .unwrap();
    assert_eq!(got.len(), 1, "the woken waiter claims the new chunk");
    assert_eq!(
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE state = 'leased'")
            .await,
        1
    );
}

/// Claim queries this control plane has run (the count of its acquire-latency histogram).
async fn claim_queries(farm: &Farm) -> f64 {
    metric_sample(&farm.metrics().await, "flatrender_lease_acquire_seconds_count", &[]).unwrap_or(0.0)
}

/// Two control planes on one database, many nodes claiming at once: no chunk is leased twice.
#[tokio::test]
async fn two_instances_never_double_lease() {
    let farm = Farm::start().await;
    let (second_grpc, _, _second) = farm.serve(test_config()).await;
    for _ in 0..4 {
        farm.submit(TenantId::new_random(), 0, 99, HASH_A).await;
    }
    let mut workers = Vec::new();
    for index in 0..8 {
        let address = if index % 2 == 0 { farm.grpc } else { second_grpc };
        let mut node = farm.register_at(address, &format!("node-{index}"), &[]).await;
        workers.push(tokio::spawn(async move {
            let mut leased = Vec::new();
            loop {
                let got = node.acquire(3).await;
                if got.is_empty() {
                    return leased;
                }
                for assignment in got {
                    assert_eq!(node.complete(&assignment).await, pb::CompletionOutcome::Accepted);
                    leased.push(assignment.frame_job_id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 40, "every chunk leased exactly once");
    assert_eq!(unique.len(), 40);
    assert_eq!(
        farm.count("SELECT count(*) FROM render.render_jobs WHERE status = 'completed'")
            .await,
        4
    );
}

/// An idle node is told to prefetch the template at the head of the queue, once; a node that
/// holds it already is not.
#[tokio::test]
async fn idle_nodes_are_told_to_prefetch_hot_templates() {
    let farm = Farm::start().await;
    farm.submit(TenantId::new_random(), 0, 9, HASH_B).await;
    let mut idle = farm.register("node-idle", &[]).await;
    // Suggestions come from a periodically refreshed view of the queue: heartbeat until one comes.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let told = loop {
        let told = prefetches(&idle.heartbeat(pb::HeartbeatRequest::default()).await);
        if !told.is_empty() || tokio::time::Instant::now() >= deadline {
            break told;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(told, vec![HASH_B.to_string()]);
    assert!(
        prefetches(&idle.heartbeat(pb::HeartbeatRequest::default()).await).is_empty(),
        "not repeated"
    );
    let mut warm = farm.register("node-warm", &[]).await;
    let inventory = pb::CacheInventory {
        full_sync: true,
        upserted: vec![pb::CacheEntry {
            blake3_hex: HASH_B.into(),
            size_bytes: 1,
            ..Default::default()
        }],
        removed_blake3_hex: vec![],
    };
    assert!(
        prefetches(
            &warm
                .heartbeat(pb::HeartbeatRequest {
                    cache: Some(inventory),
                    ..Default::default()
                })
                .await
        )
        .is_empty()
    );
}

/// Nodes claiming at the same moment lock the head of the queue for each other; none of them is
/// told "nothing" while hundreds of chunks are pending (issue 13: the fixed candidate window
/// made concurrent batched claims come back empty).
#[tokio::test]
async fn concurrent_claims_are_never_empty_while_work_is_pending() {
    let farm = Farm::start().await;
    let tenant = TenantId::new_random();
    // 480 chunks of 10 frames.
    farm.submit(tenant, 0, 4799, HASH_A).await;
    let mut nodes = Vec::new();
    for index in 0..12 {
        let mut request = registration(&format!("node-{index}"), &[]);
        // Room for both rounds.
        request.max_leases = 32;
        nodes.push(farm.register_as(farm.grpc, request).await);
    }
    for round in 0..2 {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(nodes.len()));
        let claims: Vec<_> = nodes
            .drain(..)
            .map(|mut node| {
                let start = start.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    let got = node.acquire(16).await;
                    (node, got)
                })
            })
            .collect();
        for claim in claims {
            let (node, got) = claim.await.unwrap();
            assert!(!got.is_empty(), "round {round}: {} was told nothing", node.id);
            nodes.push(node);
        }
    }
}
