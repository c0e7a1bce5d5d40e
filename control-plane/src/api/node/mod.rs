//! `NodeService`: agents register with a join token, then use their node token to heartbeat,
//! take work, and report progress, results and failures. Every call that touches a lease
//! presents its fencing token; a stale one changes nothing. One file per concern: `register`,
//! `heartbeat` (liveness, renewals, health, cache inventory, commands back), `work` (acquire,
//! progress, complete, fail).

mod heartbeat;
mod register;
mod work;

use std::sync::Arc;

use flatrender_proto::{
    pb::{self, node_service_server::NodeService},
    types::{NodeId, TokenKind},
};
use tonic::{Request, Response, Status};

use super::{AppState, respond};
use crate::error::ControlPlaneResult;

/// The `NodeService` implementation.
pub struct NodeApi {
    state: Arc<AppState>,
}

impl NodeApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// The node a node token speaks for.
async fn node_of<T>(state: &AppState, request: &Request<T>) -> ControlPlaneResult<NodeId> {
    state.authorize(request, &[TokenKind::Node]).await?.node()
}

#[tonic::async_trait]
impl NodeService for NodeApi {
    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        respond(register::register_node(&self.state, request).await)
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        respond(heartbeat::heartbeat(&self.state, request).await)
    }

    async fn acquire_work(
        &self,
        request: Request<pb::AcquireWorkRequest>,
    ) -> Result<Response<pb::AcquireWorkResponse>, Status> {
        respond(work::acquire_work(&self.state, request).await)
    }

    async fn report_progress(
        &self,
        request: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::ReportProgressResponse>, Status> {
        respond(work::report_progress(&self.state, request).await)
    }

    async fn complete_work(
        &self,
        request: Request<pb::CompleteWorkRequest>,
    ) -> Result<Response<pb::CompleteWorkResponse>, Status> {
        respond(work::complete_work(&self.state, request).await)
    }

    async fn fail_work(&self, request: Request<pb::FailWorkRequest>) -> Result<Response<pb::FailWorkResponse>, Status> {
        respond(work::fail_work(&self.state, request).await)
    }
}
