//! `AdminService`: what ops drive through `frctl` (admin tokens only). One file per area:
//! `nodes` (list, show, drain, disable, enable), `jobs` (jobs and their frame chunks),
//! `crashes` (crashes, farm stats, partitions), `tokens`. Each handler returns the crate's
//! result; `respond` turns it into a gRPC answer, once.

mod crashes;
mod jobs;
mod nodes;
mod tokens;

use std::sync::Arc;

use flatrender_proto::{
    pb::{self, admin_service_server::AdminService},
    types::TokenKind,
};
use tonic::{Request, Response, Status};

use super::{AppState, respond};

const ADMIN: &[TokenKind] = &[TokenKind::Admin];

/// The `AdminService` implementation.
pub struct AdminApi {
    state: Arc<AppState>,
}

impl AdminApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        respond(nodes::list_nodes(&self.state, request).await)
    }

    async fn get_node(&self, request: Request<pb::GetNodeRequest>) -> Result<Response<pb::GetNodeResponse>, Status> {
        respond(nodes::get_node(&self.state, request).await)
    }

    async fn drain_node(
        &self,
        request: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        respond(nodes::drain_node(&self.state, request).await)
    }

    async fn undrain_node(
        &self,
        request: Request<pb::UndrainNodeRequest>,
    ) -> Result<Response<pb::UndrainNodeResponse>, Status> {
        respond(nodes::undrain_node(&self.state, request).await)
    }

    async fn disable_node(
        &self,
        request: Request<pb::DisableNodeRequest>,
    ) -> Result<Response<pb::DisableNodeResponse>, Status> {
        respond(nodes::disable_node(&self.state, request).await)
    }

    async fn enable_node(
        &self,
        request: Request<pb::EnableNodeRequest>,
    ) -> Result<Response<pb::EnableNodeResponse>, Status> {
        respond(nodes::enable_node(&self.state, request).await)
    }

    async fn requeue_frames(
        &self,
        request: Request<pb::RequeueFramesRequest>,
    ) -> Result<Response<pb::RequeueFramesResponse>, Status> {
        respond(jobs::requeue_frames(&self.state, request).await)
    }

    async fn list_frame_jobs(
        &self,
        request: Request<pb::ListFrameJobsRequest>,
    ) -> Result<Response<pb::ListFrameJobsResponse>, Status> {
        respond(jobs::list_frame_jobs(&self.state, request).await)
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::CancelJobResponse>, Status> {
        respond(jobs::cancel_job(&self.state, request).await)
    }

    async fn retry_job(&self, request: Request<pb::RetryJobRequest>) -> Result<Response<pb::RetryJobResponse>, Status> {
        respond(jobs::retry_job(&self.state, request).await)
    }

    async fn list_crashes(
        &self,
        request: Request<pb::ListCrashesRequest>,
    ) -> Result<Response<pb::ListCrashesResponse>, Status> {
        respond(crashes::list_crashes(&self.state, request).await)
    }

    async fn ensure_partitions(
        &self,
        request: Request<pb::EnsurePartitionsRequest>,
    ) -> Result<Response<pb::EnsurePartitionsResponse>, Status> {
        respond(crashes::ensure_partitions(&self.state, request).await)
    }

    async fn list_partitions(
        &self,
        request: Request<pb::ListPartitionsRequest>,
    ) -> Result<Response<pb::ListPartitionsResponse>, Status> {
        respond(crashes::list_partitions(&self.state, request).await)
    }

    async fn get_farm_stats(
        &self,
        request: Request<pb::GetFarmStatsRequest>,
    ) -> Result<Response<pb::GetFarmStatsResponse>, Status> {
        respond(crashes::get_farm_stats(&self.state, request).await)
    }

    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        respond(tokens::create_token(&self.state, request).await)
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        respond(tokens::revoke_token(&self.state, request).await)
    }
}
