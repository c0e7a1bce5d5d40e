//! Farm-wide commands: stats, partitions, tokens.

use flatrender_e2e::Farm;

use crate::{frctl, frctl_raw};

/// `stats` and `partitions list|ensure` answer with their JSON contract; bad input is exit 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_partitions_report_the_farm() {
    let farm = Farm::start(&[]).await;
    let job = farm.submit("stats", "Main", 40, 0, 9).await;

    let stats = frctl(&farm, &["--output", "json", "stats"]).await;
    let stats = stats.expect_code(0).json();
    assert_eq!(stats["jobs"]["queued"], 1, "{stats}");
    assert_eq!(stats["chunks"]["pending"], 2, "{stats}");
    assert_eq!(stats["tenants"][0]["pending_chunks"], 2, "{stats}");
    assert_eq!(stats["tenants"][0]["tenant_id"], job.tenant_id.as_str(), "{stats}");
    assert_eq!(stats["crashes_last_24h"], 0);
    let table = frctl(&farm, &["stats"]).await;
    assert!(table.expect_code(0).stdout.contains("pending 2"), "{table:?}");

    let ensured = frctl(
        &farm,
        &["--output", "json", "partitions", "ensure", "--months-ahead", "4"],
    )
    .await;
    let ensured = ensured.expect_code(0).json();
    assert!(ensured["created"].is_i64() && ensured["dropped"].is_i64(), "{ensured}");
    let listed = frctl(&farm, &["--output", "json", "partitions", "list"]).await;
    let listed = listed.expect_code(0).json();
    let partitions = listed["partitions"].as_array().unwrap();
    assert!(partitions.len() >= 5, "{listed}");
    assert!(
        partitions.iter().any(|partition| partition["range_start"].is_null()),
        "the default partition is listed: {listed}"
    );
    assert!(
        partitions
            .iter()
            .filter_map(|partition| partition["range_start"].as_str())
            .all(|start| start.ends_with('Z')),
        "RFC 3339 UTC: {listed}"
    );
    frctl(&farm, &["partitions", "ensure", "--months-ahead", "99"])
        .await
        .expect_code(2);
    frctl_raw(&[
        "--endpoint",
        &farm.endpoint,
        "--token",
        &farm.service_token,
        "partitions",
        "list",
    ])
    .await
    .expect_code(3);
}

/// A created admin token works until revoked; revoking twice is not found; a bad tenant id is
/// exit 2 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_created_and_revoked() {
    let farm = Farm::start(&[]).await;
    let created = frctl(
        &farm,
        &[
            "--output", "json", "tokens", "create", "--kind", "admin", "--label", "ops-test", "--ttl", "1d",
        ],
    )
    .await;
    let created = created.expect_code(0).json();
    assert_eq!(created["kind"], "admin");
    let token_id = created["token_id"].as_str().unwrap().to_owned();
    let secret = created["token"].as_str().unwrap().to_owned();
    frctl_raw(&["--endpoint", &farm.endpoint, "--token", &secret, "nodes", "list"])
        .await
        .expect_code(0);

    let revoked = frctl(&farm, &["--output", "json", "tokens", "revoke", &token_id]).await;
    assert_eq!(revoked.expect_code(0).json()["revoked"], true);
    frctl_raw(&["--endpoint", &farm.endpoint, "--token", &secret, "nodes", "list"])
        .await
        .expect_code(3);
    frctl(&farm, &["tokens", "revoke", &token_id]).await.expect_code(4);

    let run = frctl(
        &farm,
        &["tokens", "create", "--kind", "service", "--tenant", "not-a-uuid"],
    )
    .await;
    run.expect_code(2);
    assert!(run.stderr.contains("tenant_ids[0]"), "{run:?}");
    let service = frctl(&farm, &["tokens", "create", "--kind", "service", "--label", "studio"]).await;
    assert!(service.expect_code(0).stdout.contains("shown only now"), "{service:?}");
}
