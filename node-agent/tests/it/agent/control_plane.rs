//! A control plane standing in for the real one over real gRPC: it registers the node, records
//! every request, hands out the assignments a test queues, sends the commands a test queues with
//! the next heartbeat, and answers completions with the outcome a test sets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flatrender_proto::pb;
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

/// Everything the agent sent, and what the fake answers next.
#[derive(Default)]
pub struct Recorded {
    pub registrations: Vec<pb::RegisterNodeRequest>,
    pub heartbeats: Vec<pb::HeartbeatRequest>,
    pub progress: Vec<pb::ReportProgressRequest>,
    pub completions: Vec<pb::CompletedChunk>,
    pub failures: Vec<pb::FailWorkRequest>,
    assignments: VecDeque<pb::WorkAssignment>,
    commands: Vec<pb::NodeCommand>,
    outcome: pb::CompletionOutcome,
}

/// The fake; share it with `Arc`.
#[derive(Default)]
pub struct FakeControlPlane {
    recorded: Mutex<Recorded>,
    /// Wakes a waiting `AcquireWork`.
    work_queued: Notify,
}

impl FakeControlPlane {
    /// Serves on a free loopback port; returns the endpoint URL.
    pub async fn start() -> (Arc<Self>, String) {
        let fake = Arc::new(Self::default());
        fake.recorded.lock().unwrap().outcome = pb::CompletionOutcome::Accepted;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let service = pb::node_service_server::NodeServiceServer::from_arc(Arc::clone(&fake));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        (fake, endpoint)
    }

    /// Reads what was recorded.
    pub fn recorded<T>(&self, read: impl FnOnce(&Recorded) -> T) -> T {
        read(&self.recorded.lock().unwrap())
    }

    /// The next `AcquireWork` hands out `assignment`.
    pub fn queue(&self, assignment: pb::WorkAssignment) {
        self.recorded.lock().unwrap().assignments.push_back(assignment);
        self.work_queued.notify_waiters();
    }

    /// The next heartbeat's answer carries `command`.
    pub fn command(&self, command: pb::node_command::Command) {
        self.recorded
            .lock()
            .unwrap()
            .commands
            .push(pb::NodeCommand { command: Some(command) });
    }

    /// Completions from now on are answered `outcome`.
    pub fn answer_completions(&self, outcome: pb::CompletionOutcome) {
        self.recorded.lock().unwrap().outcome = outcome;
    }

    fn take_assignment(&self) -> Option<pb::WorkAssignment> {
        self.recorded.lock().unwrap().assignments.pop_front()
    }
}

fn seconds(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

#[tonic::async_trait]
impl pb::node_service_server::NodeService for FakeControlPlane {
    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        self.recorded.lock().unwrap().registrations.push(request.into_inner());
        Ok(Response::new(pb::RegisterNodeResponse {
            node_id: uuid::Uuid::new_v4().to_string(),
            node_token: "fr_node_test".into(),
            heartbeat_interval: seconds(1),
            lease_ttl: seconds(60),
            state: pb::NodeState::Online as i32,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let mut recorded = self.recorded.lock().unwrap();
        recorded.heartbeats.push(request.into_inner());
        Ok(Response::new(pb::HeartbeatResponse {
            state: pb::NodeState::Online as i32,
            commands: std::mem::take(&mut recorded.commands),
            heartbeat_interval: seconds(1),
        }))
    }

    async fn acquire_work(
        &self,
        request: Request<pb::AcquireWorkRequest>,
    ) -> Result<Response<pb::AcquireWorkResponse>, Status> {
        let wait = request.into_inner().wait.map_or(Duration::ZERO, |wait| {
            Duration::from_secs(u64::try_from(wait.seconds).unwrap_or(0))
        });
        // A long poll, as the real one: no work means waiting for some, up to `wait`.
        let queued = self.work_queued.notified();
        let assignment = match self.take_assignment() {
            Some(assignment) => Some(assignment),
            None => {
                let _ = tokio::time::timeout(wait, queued).await;
                self.take_assignment()
            }
        };
        Ok(Response::new(pb::AcquireWorkResponse {
            assignments: assignment.into_iter().collect(),
        }))
    }

    async fn report_progress(
        &self,
        request: Request<pb::ReportProgressRequest>,
    ) -> Result<Response<pb::ReportProgressResponse>, Status> {
        self.recorded.lock().unwrap().progress.push(request.into_inner());
        Ok(Response::new(pb::ReportProgressResponse::default()))
    }

    async fn complete_work(
        &self,
        request: Request<pb::CompleteWorkRequest>,
    ) -> Result<Response<pb::CompleteWorkResponse>, Status> {
        let mut recorded = self.recorded.lock().unwrap();
        let outcome = recorded.outcome;
        let mut results = Vec::new();
        for chunk in request.into_inner().chunks {
            results.push(pb::CompletionResult {
                frame_job_id: chunk.frame_job_id.clone(),
                outcome: outcome as i32,
            });
            recorded.completions.push(chunk);
        }
        Ok(Response::new(pb::CompleteWorkResponse { results }))
    }

    async fn fail_work(&self, request: Request<pb::FailWorkRequest>) -> Result<Response<pb::FailWorkResponse>, Status> {
        self.recorded.lock().unwrap().failures.push(request.into_inner());
        Ok(Response::new(pb::FailWorkResponse { will_retry: true }))
    }
}
