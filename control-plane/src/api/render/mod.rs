//! `RenderService`: backends submit, read, list, cancel and watch render jobs. Service tokens
//! see only their tenants; another tenant's job is `NOT_FOUND`, never data. `submit` validates a
//! submission (every field error names its field), `project` its saved-project parts (scenes,
//! field values, audio); `jobs` reads, lists, cancels and watches.

mod jobs;
mod project;
mod submit;

use std::sync::Arc;

use flatrender_proto::{
    pb::{self, render_service_server::RenderService},
    types::TokenKind,
};
use tonic::{Request, Response, Status};

use self::jobs::WatchStream;
use super::{AppState, respond};

const CALLERS: &[TokenKind] = &[TokenKind::Service, TokenKind::Admin];

/// The `RenderService` implementation.
pub struct RenderApi {
    state: Arc<AppState>,
}

impl RenderApi {
    /// Handlers over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl RenderService for RenderApi {
    type WatchRenderJobStream = WatchStream;

    async fn submit_render_job(
        &self,
        request: Request<pb::SubmitRenderJobRequest>,
    ) -> Result<Response<pb::SubmitRenderJobResponse>, Status> {
        respond(submit::submit_render_job(&self.state, request).await)
    }

    async fn get_render_job(
        &self,
        request: Request<pb::GetRenderJobRequest>,
    ) -> Result<Response<pb::GetRenderJobResponse>, Status> {
        respond(jobs::get_render_job(&self.state, request).await)
    }

    async fn list_render_jobs(
        &self,
        request: Request<pb::ListRenderJobsRequest>,
    ) -> Result<Response<pb::ListRenderJobsResponse>, Status> {
        respond(jobs::list_render_jobs(&self.state, request).await)
    }

    async fn cancel_render_job(
        &self,
        request: Request<pb::CancelRenderJobRequest>,
    ) -> Result<Response<pb::CancelRenderJobResponse>, Status> {
        respond(jobs::cancel_render_job(&self.state, request).await)
    }

    async fn watch_render_job(
        &self,
        request: Request<pb::WatchRenderJobRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        respond(jobs::watch_render_job(&self.state, request).await)
    }
}
