//! Errors scripts branch on: token, endpoint, usage and config mistakes, each with its exit code
//! and a message that says what to do.

use flatrender_e2e::Farm;

use crate::{command, frctl, frctl_raw, output};

fn unused_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// A control plane that is not there is exit 5, naming the endpoint and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_exits_5() {
    let endpoint = unused_endpoint();
    let run = frctl_raw(&[
        "--endpoint",
        &endpoint,
        "--token",
        "x",
        "--timeout",
        "3",
        "nodes",
        "list",
    ])
    .await;
    run.expect_code(5);
    assert!(run.stderr.contains(&endpoint), "{run:?}");
    assert!(run.stderr.contains("--endpoint"), "{run:?}");
}

/// No token anywhere is exit 3 saying where to get one; ./data/admin.token is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_exits_3_and_run_sh_token_is_found() {
    let endpoint = unused_endpoint();
    let run = frctl_raw(&["--endpoint", &endpoint, "nodes", "list"]).await;
    run.expect_code(3);
    assert!(
        run.stderr.contains("control-plane token create --kind admin"),
        "{run:?}"
    );
    // With scripts/run.sh's token file in the working folder the token is found, so the
    // failure moves on to the (absent) control plane.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    std::fs::write(scratch.path().join("data/admin.token"), "secret\n").unwrap();
    let mut with_file = command(&["--endpoint", &endpoint, "--timeout", "3", "nodes", "list"]);
    with_file.current_dir(scratch.path());
    output(with_file).await.expect_code(5);
}

/// Bad usage is exit 2: clap errors, bad durations, a missing explicit config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usage_exits_2() {
    frctl_raw(&["nodes", "fly"]).await.expect_code(2);
    let run = frctl_raw(&["--token", "x", "nodes", "drain", "node-a", "--deadline", "5x"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("1h30m"), "{run:?}");
    frctl_raw(&["--token", "x", "crashes", "list", "--class", "bogus"])
        .await
        .expect_code(2);
    let run = frctl_raw(&["--config", "/nonexistent/frctl.toml", "--token", "x", "stats"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("/nonexistent/frctl.toml"), "{run:?}");
    let help = frctl_raw(&["--help"]).await;
    help.expect_code(0);
    assert!(help.stdout.contains("Exit codes:"), "{help:?}");
}

/// A wrong token is exit 3 with the fix; the config file supplies endpoint and token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_exits_3_and_config_file_works() {
    let farm = Farm::start(&[]).await;
    let run = frctl_raw(&["--endpoint", &farm.endpoint, "--token", "not-a-token", "stats"]).await;
    run.expect_code(3);
    assert!(run.stderr.contains("--token / FRCTL_TOKEN"), "{run:?}");
    // A service token is refused by AdminService: permission, same exit code.
    frctl_raw(&["--endpoint", &farm.endpoint, "--token", &farm.service_token, "stats"])
        .await
        .expect_code(3);

    let config = farm.dir.path().join("frctl.toml");
    std::fs::write(
        &config,
        format!("endpoint = \"{}\"\ntoken = \"{}\"\n", farm.endpoint, farm.admin_token),
    )
    .unwrap();
    let run = frctl_raw(&["--config", config.to_str().unwrap(), "--output", "json", "stats"]).await;
    run.expect_code(0);
    assert!(run.json()["crashes_last_24h"].is_i64(), "{run:?}");
    // The environment variable beats the config file's token.
    let mut wrong_env = command(&["--config", config.to_str().unwrap(), "stats"]);
    wrong_env.env("FRCTL_TOKEN", "not-a-token");
    output(wrong_env).await.expect_code(3);
    // So does a token file.
    let token_file = farm.dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", farm.admin_token)).unwrap();
    frctl_raw(&[
        "--endpoint",
        &farm.endpoint,
        "--token-file",
        token_file.to_str().unwrap(),
        "stats",
    ])
    .await
    .expect_code(0);
    // Without a selector, frames requeue refuses before moving anything, even before it needs
    // a token.
    let run = frctl(&farm, &["frames", "requeue", "--state", "failed"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("--job"), "{run:?}");
    let run = frctl_raw(&["--endpoint", &farm.endpoint, "frames", "requeue"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("--job"), "{run:?}");
}
