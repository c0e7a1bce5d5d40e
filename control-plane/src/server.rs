//! Wires the control plane together: database (configured, or the embedded private cluster),
//! background tasks, the gRPC listener (three services, health checking, reflection) and the
//! HTTP listener (`/metrics`, `/healthz`, `/readyz`; readiness and gRPC health follow one
//! probe, `readiness`). `run` returns after a graceful shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::State, http::StatusCode, routing::get, serve::ListenerExt};
use flatrender_proto::pb;
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig, server::TcpIncoming};
use tracing::{info, warn};

use crate::{
    api::{AppState, admin::AdminApi, node::NodeApi, render::RenderApi},
    auth::Authenticator,
    config::Config,
    dispatch::Dispatcher,
    embedded,
    health::HealthIngest,
    leases::{LeaseRenewer, Reaper},
    metrics::Metrics,
    nodes::NodeRegistry,
    partitions,
    readiness::Readiness,
    retention::FrameRetention,
};

/// Addresses a running control plane actually bound (ports may have been 0).
#[derive(Clone, Copy, Debug)]
pub struct BoundAddresses {
    /// gRPC.
    pub grpc: SocketAddr,
    /// HTTP metrics and probes.
    pub http: SocketAddr,
}

/// Connects to the configured database, or starts the embedded cluster; returns the pool and
/// the cluster (kept alive for as long as the control plane runs).
pub async fn connect_database(config: &Config) -> anyhow::Result<(PgPool, Option<embedded::EmbeddedDatabase>)> {
    let (url, embedded) = if config.database.url.is_empty() {
        let database = embedded::EmbeddedDatabase::start(&config.database.data_dir).await?;
        (database.render_url.clone(), Some(database))
    } else {
        (config.database.url.clone(), None)
    };
    let pool = PgPoolOptions::new()
        .max_connections(config.database.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await?;
    Ok((pool, embedded))
}

/// Runs until `shutdown`, reporting bound addresses through `on_bound`.
pub async fn run(
    config: Config,
    pool: PgPool,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(BoundAddresses),
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let nodes = Arc::new(NodeRegistry::new(pool.clone()));
    nodes.refresh().await?;
    let dispatcher = Arc::new(Dispatcher::new(
        pool.clone(),
        config.dispatch.clone(),
        nodes.clone(),
        metrics.clone(),
    ));
    let background = CancellationToken::new();
    let health = HealthIngest::start(pool.clone(), &config.health, metrics.clone(), background.clone());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let readiness = Readiness::new(health_reporter).await;
    let auth = Arc::new(Authenticator::new(
        pool.clone(),
        Duration::from_secs(config.server.auth_cache_seconds),
    ));
    let state = Arc::new(AppState {
        pool: pool.clone(),
        config: config.clone(),
        auth: auth.clone(),
        nodes: nodes.clone(),
        dispatcher: dispatcher.clone(),
        renewer: LeaseRenewer::start(pool.clone(), config.dispatch.lease_ttl()),
        completer: crate::completer::Completer::start(pool.clone(), Arc::clone(&metrics)),
        health,
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        retention: Arc::new(FrameRetention::new(pool.clone(), config.dispatch.frames_retention())),
    });

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(nodes.clone().run(background.clone()));
    tasks.spawn(dispatcher.clone().listen_for_work(background.clone()));
    tasks.spawn(dispatcher.clone().track_hot_templates(background.clone()));
    tasks.spawn(
        Reaper::new(
            pool.clone(),
            config.dispatch.clone(),
            nodes.clone(),
            dispatcher.clone(),
            metrics.clone(),
        )
        .run(background.clone()),
    );
    tasks.spawn(partitions::run(
        pool.clone(),
        config.partitions.clone(),
        background.clone(),
    ));
    tasks.spawn(metrics.clone().run(pool.clone(), background.clone()));
    {
        let background = background.clone();
        tasks.spawn(async move { auth.follow_revocations(background).await });
    }
    // Readiness stops with the listeners, so probes say "not serving" while they drain.
    tasks.spawn(readiness.clone().run(pool.clone(), shutdown.clone()));

    let grpc_listener = TcpListener::bind(&config.server.grpc_listen).await?;
    let http_listener = TcpListener::bind(&config.server.http_listen).await?;
    let bound = BoundAddresses {
        grpc: grpc_listener.local_addr()?,
        http: http_listener.local_addr()?,
    };
    info!(grpc = %bound.grpc, http = %bound.http, "control plane listening");
    on_bound(bound);

    let http_listener = http_listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            warn!(%error, "cannot set TCP_NODELAY on an HTTP connection");
        }
    });
    let http = axum::serve(http_listener, http_router(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let http_task = tokio::spawn(async move {
        if let Err(error) = http.await {
            warn!(%error, "http listener failed");
        }
    });

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let max = config.server.max_message_bytes;
    let mut builder = Server::builder().tcp_nodelay(true);
    if !config.server.tls_cert.as_os_str().is_empty() {
        let cert = tokio::fs::read(&config.server.tls_cert).await?;
        let key = tokio::fs::read(&config.server.tls_key).await?;
        builder = builder.tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?;
    }
    let incoming = grpc_incoming(grpc_listener);
    builder
        .layer(crate::api::oversize::layer())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            pb::render_service_server::RenderServiceServer::new(RenderApi::new(state.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            pb::node_service_server::NodeServiceServer::new(NodeApi::new(state.clone())).max_decoding_message_size(max),
        )
        .add_service(
            pb::admin_service_server::AdminServiceServer::new(AdminApi::new(state.clone()))
                .max_decoding_message_size(max),
        )
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await?;

    info!("grpc stopped; finishing background work");
    background.cancel();
    let _ = http_task.await;
    while tasks.join_next().await.is_some() {}
    pool.close().await;
    info!("control plane stopped");
    Ok(())
}

/// Accepted gRPC connections, each with `TCP_NODELAY`. Serving from our own listener skips
/// tonic's default for this: without it every small reply waits for the peer's delayed ACK
/// (~40 ms per unary call).
pub fn grpc_incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn http_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<Arc<AppState>>| async move { state.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(state): State<Arc<AppState>>| async move {
                // The last verdict of the readiness loop: never waits on the database.
                match state.readiness.state() {
                    (true, reason) => (StatusCode::OK, reason),
                    (false, reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
                }
            }),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    /// Every accepted gRPC connection has Nagle's algorithm off.
    #[tokio::test]
    async fn grpc_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut incoming = grpc_incoming(listener);
        let _client = tokio::net::TcpStream::connect(address).await.expect("connect");
        let accepted = incoming.next().await.expect("a connection").expect("accepted");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"));
    }
}
