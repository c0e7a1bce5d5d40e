//! The control-plane client: bearer authentication, per-call timeouts, and fail-over between
//! the configured endpoints (an unreachable endpoint is skipped; the next call starts from the
//! one that last answered).

use std::{
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use flatrender_proto::{
    client::EndpointError,
    pb::{self, node_service_client::NodeServiceClient},
};
use thiserror::Error;
use tonic::{
    Code, Request, Status,
    transport::{Channel, Endpoint},
};
use tracing::{debug, warn};

/// Why a call did not succeed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The control plane answered with an error.
    #[error("control plane refused: {0}")]
    Refused(Status),
    /// No endpoint could be reached.
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
}

impl ClientError {
    /// The gRPC code, when the control plane answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Refused(status) => Some(status.code()),
            ClientError::Unreachable(_) => None,
        }
    }

    /// True when the error says our lease is gone (stale token, cancelled, requeued).
    pub fn is_lost_lease(&self) -> bool {
        self.code() == Some(Code::FailedPrecondition)
    }
}

/// A gRPC endpoint for `url`: TLS trusting only `ca_pem` for `https://`, plaintext for `http://`
/// (the shared set-up of `flatrender_proto::client`, with the agent's own advice on errors).
pub fn endpoint(url: &str, ca_pem: Option<&[u8]>) -> Result<Endpoint, String> {
    flatrender_proto::client::endpoint(url, ca_pem, Duration::from_secs(5)).map_err(|error| match error {
        EndpointError::MissingCa { .. } => format!("{url} uses TLS: set control_plane.ca_cert"),
        EndpointError::InvalidUrl { source, .. } => format!("bad endpoint {url}: {source}"),
        EndpointError::Tls { source, .. } => format!("TLS for {url}: {source}"),
    })
}

/// Client for `NodeService` over several endpoints.
pub struct ControlPlaneClient {
    endpoints: Vec<String>,
    ca_pem: Option<Vec<u8>>,
    channels: Mutex<Vec<Option<Channel>>>,
    preferred: AtomicUsize,
    token: Mutex<String>,
    timeout: Duration,
}

impl ControlPlaneClient {
    /// A client over `endpoints` (tried in order) with `timeout` per ordinary call; `ca_pem`
    /// is the CA trusted for `https://` endpoints.
    pub fn new(endpoints: Vec<String>, timeout: Duration, ca_pem: Option<Vec<u8>>) -> Self {
        let channels = Mutex::new(vec![None; endpoints.len()]);
        Self {
            endpoints,
            ca_pem,
            channels,
            preferred: AtomicUsize::new(0),
            token: Mutex::new(String::new()),
            timeout,
        }
    }

    /// Sets the bearer token for later calls.
    pub fn set_token(&self, token: &str) {
        *lock(&self.token) = token.to_owned();
    }

    fn channel(&self, index: usize) -> Result<Channel, ClientError> {
        if let Some(channel) = lock(&self.channels)[index].clone() {
            return Ok(channel);
        }
        let endpoint = endpoint(&self.endpoints[index], self.ca_pem.as_deref()).map_err(ClientError::Unreachable)?;
        // Lazy: connects on first use and reconnects by itself after a failure.
        let channel = endpoint.connect_lazy();
        lock(&self.channels)[index] = Some(channel.clone());
        Ok(channel)
    }

    /// Runs `call` against the preferred endpoint, failing over to the others when one is
    /// unreachable. `timeout` overrides the per-call timeout (long polls).
    async fn call<T, M, F, Fut>(&self, message: M, timeout: Option<Duration>, call: F) -> Result<T, ClientError>
    where
        M: Clone,
        F: Fn(NodeServiceClient<Channel>, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let token = lock(&self.token).clone();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last_error = String::from("no endpoint configured");
        for offset in 0..self.endpoints.len() {
            let index = (start + offset) % self.endpoints.len();
            let client = NodeServiceClient::new(self.channel(index)?).max_decoding_message_size(16 << 20);
            let mut request = Request::new(message.clone());
            request.set_timeout(timeout.unwrap_or(self.timeout));
            if !token.is_empty() {
                let value = format!("Bearer {token}")
                    .parse()
                    .map_err(|_| ClientError::Unreachable("node token is not valid header text".into()))?;
                request.metadata_mut().insert("authorization", value);
            }
            match call(client, request).await {
                Ok(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(response.into_inner());
                }
                Err(status) if is_unreachable(&status) => {
                    debug!(endpoint = %self.endpoints[index], error = %status.message(), "endpoint unreachable; trying the next");
                    last_error = format!("{}: {}", self.endpoints[index], status.message());
                }
                Err(status) => return Err(ClientError::Refused(status)),
            }
        }
        warn!(error = %last_error, "no control-plane endpoint answered");
        Err(ClientError::Unreachable(last_error))
    }

    /// `RegisterNode` (the bearer must be the join token).
    pub async fn register(&self, request: pb::RegisterNodeRequest) -> Result<pb::RegisterNodeResponse, ClientError> {
        self.call(request, None, |mut client, request| async move {
            client.register_node(request).await
        })
        .await
    }

    /// `Heartbeat`.
    pub async fn heartbeat(&self, request: pb::HeartbeatRequest) -> Result<pb::HeartbeatResponse, ClientError> {
        self.call(request, None, |mut client, request| async move {
            client.heartbeat(request).await
        })
        .await
    }

    /// `AcquireWork`, long-polling up to `wait`.
    pub async fn acquire(&self, max_chunks: i32, wait: Duration) -> Result<Vec<pb::WorkAssignment>, ClientError> {
        let request = pb::AcquireWorkRequest {
            max_chunks,
            wait: Some(prost_types::Duration {
                seconds: i64::try_from(wait.as_secs()).unwrap_or(60),
                nanos: 0,
            }),
        };
        let response = self
            .call(request, Some(wait + self.timeout), |mut client, request| async move {
                client.acquire_work(request).await
            })
            .await?;
        Ok(response.assignments)
    }

    /// `ReportProgress`; returns when the lease now expires.
    pub async fn report_progress(
        &self,
        request: pb::ReportProgressRequest,
    ) -> Result<pb::ReportProgressResponse, ClientError> {
        self.call(request, None, |mut client, request| async move {
            client.report_progress(request).await
        })
        .await
    }

    /// `CompleteWork`.
    pub async fn complete(&self, request: pb::CompleteWorkRequest) -> Result<pb::CompleteWorkResponse, ClientError> {
        self.call(request, None, |mut client, request| async move {
            client.complete_work(request).await
        })
        .await
    }

    /// `FailWork`.
    pub async fn fail(&self, request: pb::FailWorkRequest) -> Result<pb::FailWorkResponse, ClientError> {
        self.call(request, None, |mut client, request| async move {
            client.fail_work(request).await
        })
        .await
    }
}

/// Transport failures and overload answers are worth trying elsewhere; anything else is an
/// answer from a working control plane.
fn is_unreachable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    ) || (status.code() == Code::Unknown && status.message().contains("transport"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the data (channels, token) is still usable.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
