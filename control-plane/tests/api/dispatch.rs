//! Fair share, cache affinity, requirement matching, wake-ups and multi-instance safety.

use std::{collections::HashSet, time::Duration};

use flatrender_proto::{pb, types::TenantId};

use crate::support::{Farm, HASH_A, HASH_B, authed, job_request, test_config};

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
    assert!(plain.acquire(1).await.is_empty());
    let mut gpu = farm.register("node-gpu", &["gpu", "fast"]).await;
    assert_eq!(gpu.acquire(1).await.len(), 1);
}

/// A node long-polling for work is woken when a job arrives, well before its wait ends.
#[tokio::test]
async fn waiting_node_is_woken_by_a_submission() {
    let farm = Farm::start().await;
    let mut node = farm.register("node-a", &[]).await;
    let waiter = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let got = node.acquire_waiting(1, Duration::from_secs(20)).await;
        (got.len(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    farm.submit(TenantId::new_random(), 0, 0, HASH_A).await;
    let (count, waited) = waiter.await.unwrap();
    assert_eq!(count, 1);
    assert!(
        waited < Duration::from_secs(15),
        "woken by the submission, not the timeout ({waited:?})"
    );
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
    let prefetches = |response: &pb::HeartbeatResponse| -> Vec<String> {
        response
            .commands
            .iter()
            .filter_map(|command| match &command.command {
                Some(pb::node_command::Command::PrefetchTemplate(prefetch)) => {
                    Some(prefetch.template.as_ref().unwrap().blake3_hex.clone())
                }
                _ => None,
            })
            .collect()
    };
    let mut told = Vec::new();
    for _ in 0..80 {
        told = prefetches(&idle.heartbeat(pb::HeartbeatRequest::default()).await);
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
