//! TLS on the gRPC listener: agents and frctl connect over `https://`, trusting only the CA
//! they are given, and a job renders end to end.

use std::{path::Path, process::Command};

use flatrender_e2e::{Farm, WAIT_LIMIT, authed, binary, wait_until};
use flatrender_proto::pb::render_service_client::RenderServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::fake_aerender;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A throwaway CA (`ca.pem`) and a server certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`).
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=flatrender-test-ca",
    ]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

async fn frctl(args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(binary("frctl"))
        .args(args)
        .env_remove("FRCTL_TOKEN")
        .env_remove("FRCTL_CA_CERT")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT_LIMIT, run)
        .await
        .expect("frctl finished in time")
        .expect("frctl runs")
}

/// With TLS on, an agent and frctl given the CA work over https; without the CA, or over
/// plaintext, they are refused with a clear exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_frctl_work_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let cert = certs.path().join("server.pem");
    let key = certs.path().join("server.key");
    let ca = certs.path().join("ca.pem");
    let farm = Farm::start(&[
        ("FLATRENDER_SERVER__TLS_CERT", cert.to_str().unwrap()),
        ("FLATRENDER_SERVER__TLS_KEY", key.to_str().unwrap()),
    ])
    .await;
    let https = farm.endpoint.replacen("http://", "https://", 1);

    let channel = Channel::from_shared(https.clone())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap())))
        .unwrap()
        .connect()
        .await
        .expect("TLS connect with the CA");
    let request = farm.submit_request("tls", "Main", 40, 0, 9);
    RenderServiceClient::new(channel)
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .expect("submit over TLS");

    let agent = farm.agent(
        "node-tls",
        &fake_aerender(),
        &[
            ("FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS", https.as_str()),
            ("FLATRENDER_AGENT_CONTROL_PLANE__CA_CERT", ca.to_str().unwrap()),
        ],
    );
    let completed = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.render_jobs WHERE status = 'completed'")
            .await
            == 1
    })
    .await;
    assert!(completed, "{}", farm.logs());
    assert!(agent.log_text().contains("registered with the control plane"));

    let ca_arg = ca.to_str().unwrap();
    let token = farm.admin_token.as_str();
    let stats = frctl(&[
        "--endpoint",
        &https,
        "--ca-cert",
        ca_arg,
        "--token",
        token,
        "--output",
        "json",
        "stats",
    ])
    .await;
    assert_eq!(
        stats.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
    assert_eq!(parsed["jobs"]["completed"], 1, "the job rendered over TLS: {parsed}");
    let no_ca = frctl(&["--endpoint", &https, "--token", token, "stats"]).await;
    assert_eq!(no_ca.status.code(), Some(2), "https without a CA is a usage error");
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("--ca-cert"));
    let plaintext = frctl(&[
        "--endpoint",
        &farm.endpoint,
        "--token",
        token,
        "--timeout",
        "3",
        "stats",
    ])
    .await;
    assert_eq!(
        plaintext.status.code(),
        Some(5),
        "plaintext to a TLS listener: {}",
        String::from_utf8_lossy(&plaintext.stderr)
    );
}
