//! The encode step through the API: a video job's last chunk queues its encode, only nodes that
//! report an encoder are given it (an encode-only node gets nothing else), the encode goes
//! RENDERED → ENCODING → COMPLETED under a fenced lease, and the export is recorded once and read
//! back by GetRenderJob; a PNG sequence completes with its frames as before.

use flatrender_proto::{pb, types::TenantId};

use crate::projects::project_request;
use crate::support::{
    Farm, HASH_B, TestNode, authed, completed_chunk, encoder_registration, eventually, export_of, job_request,
    prefetches, test_config,
};

/// Submits `request` as the backend.
async fn submit(farm: &Farm, request: pb::SubmitRenderJobRequest) -> pb::RenderJob {
    farm.render()
        .await
        .submit_render_job(authed(request, &farm.service_token))
        .await
        .expect("submit")
        .into_inner()
        .job
        .unwrap()
}

/// A single-composition job of ten frames delivered as `container`, without audio.
fn video_request(container: &str) -> pb::SubmitRenderJobRequest {
    let mut request = job_request(TenantId::new_random(), 0, 9);
    request.music = None;
    request.voiceover = None;
    request.has_voiceover = false;
    request.output.as_mut().unwrap().container = container.into();
    request
}

async fn node_view(farm: &Farm, node_id: &str) -> pb::Node {
    farm.admin()
        .await
        .get_node(authed(
            pb::GetNodeRequest {
                node_id: node_id.into(),
            },
            &farm.admin_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap()
}

/// Renders every chunk on `node` (a render node), a lease-full batch at a time.
async fn render_all(node: &mut TestNode, expected_chunks: usize) {
    let mut rendered = 0;
    loop {
        let assignments = node.acquire(16).await;
        if assignments.is_empty() {
            break;
        }
        for assignment in &assignments {
            assert_eq!(assignment.kind(), pb::WorkKind::Render);
            assert_eq!(node.complete(assignment).await, pb::CompletionOutcome::Accepted);
        }
        rendered += assignments.len();
    }
    assert_eq!(rendered, expected_chunks);
}

async fn complete_with(node: &mut TestNode, chunk: pb::CompletedChunk) -> Result<pb::CompletionOutcome, tonic::Status> {
    let token = node.token.clone();
    node.client
        .complete_work(authed(pb::CompleteWorkRequest { chunks: vec![chunk] }, &token))
        .await
        .map(|response| response.into_inner().results[0].outcome())
}

/// The whole path of a saved project's video: scenes rendered → RENDERED with one encode item;
/// a render-only node is not given it; an encode-only node is given it (scenes in play order with
/// their frames, the audio, no template), is given no chunks, and its export completes the job.
#[tokio::test]
async fn a_video_job_is_encoded_once_by_a_node_with_an_encoder() {
    let farm = Farm::start().await;
    let tenant = TenantId::new_random();
    let mut encoder = farm
        .register_as(farm.grpc, encoder_registration("encoder-1", true))
        .await;
    let job = submit(&farm, project_request(tenant)).await;
    // An encode-only node renders nothing.
    assert!(encoder.acquire(16).await.is_empty());
    let mut renderer = farm.register("render-1", &[]).await;
    render_all(&mut renderer, 8).await;
    let rendered = farm.job(&job.id).await;
    assert_eq!(rendered.status(), pb::JobStatus::Rendered);
    assert_eq!(rendered.progress.as_ref().unwrap().chunks_completed, 8);
    assert!(rendered.export.is_none());
    // A node without an encoder is never given the encode.
    assert!(renderer.acquire(16).await.is_empty());

    let encodes = encoder.acquire(16).await;
    assert_eq!(encodes.len(), 1);
    let encode = &encodes[0];
    assert_eq!(encode.kind(), pb::WorkKind::Encode);
    assert_eq!(encode.frame_range, Some(pb::FrameRange { start: 0, end: 66 }));
    assert!(encode.template.is_none() && encode.scene.is_none());
    let work = encode.encode.as_ref().expect("an encode carries its work");
    let scenes: Vec<(i32, i32, i32)> = work
        .scenes
        .iter()
        .map(|scene| {
            let range = scene.frame_range.unwrap();
            (scene.index, range.start, range.end)
        })
        .collect();
    assert_eq!(scenes, [(0, 0, 24), (1, 100, 111), (2, 0, 29)]);
    assert_eq!(work.audio, rendered.audio, "the audio as stored (file names filled in)");
    assert_eq!(encode.output.as_ref().unwrap().container, "mp4");
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Encoding);

    // An encode must bring its export, and a chunk must not: refused whole, nothing recorded.
    let mut without = completed_chunk(encode);
    without.export = None;
    let refused = complete_with(&mut encoder, without).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("chunks[0].export"), "{refused:?}");
    let mut bad = completed_chunk(encode);
    bad.export.as_mut().unwrap().blake3_hex = "nope".into();
    let refused = complete_with(&mut encoder, bad).await.unwrap_err();
    assert!(refused.message().contains("chunks[0].export.blake3_hex"), "{refused:?}");
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Encoding);

    assert_eq!(encoder.complete(encode).await, pb::CompletionOutcome::Accepted);
    // A redelivery of the same report changes nothing.
    assert_eq!(encoder.complete(encode).await, pb::CompletionOutcome::Duplicate);
    let done = farm.job(&job.id).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    let export = done.export.expect("a completed video job shows its export");
    let sent = export_of(encode);
    assert_eq!(
        (
            &export.location,
            &export.format,
            export.width,
            export.height,
            export.size_bytes
        ),
        (&sent.location, &sent.format, sent.width, sent.height, sent.size_bytes)
    );
    assert_eq!(
        export.duration,
        Some(prost_types::Duration {
            seconds: 2,
            nanos: 680_000_000
        })
    );
    assert_eq!(
        (export.blake3_hex.as_str(), export.video_codec.as_str()),
        (sent.blake3_hex.as_str(), "h264")
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM render.exports WHERE job_id = $1::uuid")
        .bind(&job.id)
        .fetch_one(farm.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// An encode lease lost mid-way (expired, reaped) goes to another encoder; the first node's late
/// report is stale and records nothing; the job ends with the successor's one export.
#[tokio::test]
async fn a_lost_encode_lease_ends_with_one_export_from_the_successor() {
    let mut config = test_config();
    config.dispatch.lease_ttl_seconds = 2;
    config.dispatch.heartbeat_interval_seconds = 1;
    config.dispatch.node_offline_after_seconds = 60;
    let farm = Farm::start_with(config).await;
    let job = submit(&farm, video_request("webm")).await;
    let mut renderer = farm.register("render-1", &[]).await;
    render_all(&mut renderer, 1).await;
    let mut first = farm
        .register_as(farm.grpc, encoder_registration("encoder-1", false))
        .await;
    let lost = first.acquire(4).await.remove(0);
    assert_eq!(lost.kind(), pb::WorkKind::Encode);
    // A single-composition job's encode names no scenes: its frames are the job's.
    assert!(lost.encode.as_ref().unwrap().scenes.is_empty());
    // encoder-1 goes quiet: its lease expires and the reaper puts the encode back.
    let requeued = eventually(|| async {
        farm.count("SELECT count(*) FROM render.frame_jobs WHERE kind = 'encode' AND state = 'pending'")
            .await
            == 1
    })
    .await;
    assert!(requeued, "the reaper requeues the expired encode lease");
    let mut second = farm
        .register_as(farm.grpc, encoder_registration("encoder-2", false))
        .await;
    let retry = second.acquire(4).await.remove(0);
    assert_eq!(retry.frame_job_id, lost.frame_job_id);
    assert!(retry.lease_token > lost.lease_token);
    assert_eq!(first.complete(&lost).await, pb::CompletionOutcome::StaleLease);
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Encoding);
    assert_eq!(second.complete(&retry).await, pb::CompletionOutcome::Accepted);
    let done = farm.job(&job.id).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    assert!(done.export.is_some());
}

/// A failing encode is retried, then fails the job with a reason that names the encode; retrying
/// the job puts only the encode back (its frames are in).
#[tokio::test]
async fn a_failing_encode_fails_the_job_and_a_retry_encodes_again() {
    let farm = Farm::start().await;
    let job = submit(&farm, video_request("mp4")).await;
    let mut renderer = farm.register("render-1", &[]).await;
    render_all(&mut renderer, 1).await;
    let mut encoder = farm
        .register_as(farm.grpc, encoder_registration("encoder-1", true))
        .await;
    let encode = encoder.acquire(1).await.remove(0);
    let will_retry = encoder
        .fail(&encode, pb::CrashClass::Unknown, pb::RecoveryAction::FailJob)
        .await
        .unwrap();
    assert!(!will_retry);
    let failed = farm.job(&job.id).await;
    assert_eq!(failed.status(), pb::JobStatus::Failed);
    assert!(
        failed.failure_reason.starts_with("the encode "),
        "{}",
        failed.failure_reason
    );

    farm.admin()
        .await
        .retry_job(authed(
            pb::RetryJobRequest { job_id: job.id.clone() },
            &farm.admin_token,
        ))
        .await
        .unwrap();
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Rendered);
    assert!(renderer.acquire(16).await.is_empty());
    let again = encoder.acquire(1).await.remove(0);
    assert_eq!(again.kind(), pb::WorkKind::Encode);
    assert_eq!(encoder.complete(&again).await, pb::CompletionOutcome::Accepted);
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Completed);
}

/// A PNG sequence is delivered as its frames: it completes with its last chunk, no encode, no
/// export.
#[tokio::test]
async fn a_png_sequence_completes_without_an_encode() {
    let farm = Farm::start().await;
    let job = submit(&farm, job_request(TenantId::new_random(), 0, 9)).await;
    let mut renderer = farm.register("render-1", &[]).await;
    render_all(&mut renderer, 1).await;
    let done = farm.job(&job.id).await;
    assert_eq!(done.status(), pb::JobStatus::Completed);
    assert!(done.export.is_none());
    let encodes: i64 = sqlx::query_scalar("SELECT count(*) FROM render.frame_jobs WHERE kind = 'encode'")
        .fetch_one(farm.db.pool())
        .await
        .unwrap();
    assert_eq!(encodes, 0);
}

/// Capabilities are checked at registration, shown to ops, and updated by a heartbeat (an agent
/// restarted after ffmpeg was installed).
#[tokio::test]
async fn capabilities_are_validated_shown_and_updated() {
    let farm = Farm::start().await;
    let mut bad = encoder_registration("encoder-x", true);
    bad.capabilities.as_mut().unwrap().encoder = None;
    let mut client = pb::node_service_client::NodeServiceClient::new(Farm::channel_to(farm.grpc).await);
    let refused = client.register_node(authed(bad, &farm.join_token)).await.unwrap_err();
    assert!(refused.message().contains("capabilities.encode_only"), "{refused:?}");

    let mut node = farm.register("render-1", &[]).await;
    let shown = node_view(&farm, &node.id).await;
    assert_eq!(shown.capabilities.as_ref().unwrap().encoder, None);
    node.heartbeat(pb::HeartbeatRequest {
        capabilities: encoder_registration("render-1", false).capabilities,
        ..Default::default()
    })
    .await;
    let shown = node_view(&farm, &node.id).await;
    let encoder = shown
        .capabilities
        .unwrap()
        .encoder
        .expect("the heartbeat recorded the encoder");
    assert_eq!(encoder.ffmpeg_version, "5.1.6-0+deb12u1");
    // And dispatch sees it at once: the node is now given encodes.
    submit(&farm, video_request("gif")).await;
    let render = node.acquire(1).await.remove(0);
    assert_eq!(node.complete(&render).await, pb::CompletionOutcome::Accepted);
    assert_eq!(node.acquire(1).await.remove(0).kind(), pb::WorkKind::Encode);
}

/// A waiting encode does not make its template "hot": idle render nodes are told to prefetch the
/// templates chunks need, not the template of a job whose frames are all in.
#[tokio::test]
async fn a_pending_encode_does_not_make_its_template_hot() {
    let farm = Farm::start().await;
    let encoded = submit(&farm, video_request("mp4")).await;
    let mut renderer = farm.register("render-1", &[]).await;
    render_all(&mut renderer, 1).await;
    assert_eq!(farm.job(&encoded.id).await.status(), pb::JobStatus::Rendered);
    // Submitted after the encode was queued: any view of the queue that has it has the encode too.
    let mut request = job_request(TenantId::new_random(), 0, 9);
    request.template.as_mut().unwrap().blake3_hex = HASH_B.into();
    submit(&farm, request).await;
    // Suggestions come from a view of the queue refreshed every few seconds, and a view taken
    // while the first job's chunk was pending rightly names its template. Heartbeat a probe node
    // until a view with the png job's template is in place: every view from then on was taken
    // with the encode waiting (and the png chunk too: nobody takes it).
    let mut probe = farm.register("node-probe", &[]).await;
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        let told = prefetches(&probe.heartbeat(pb::HeartbeatRequest::default()).await);
        if told.contains(&HASH_B.to_string()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the png job's template is never suggested"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A fresh node gets one suggestion per heartbeat, in template order (HASH_B first): had the
    // encode's template been hot, the second heartbeat would name it.
    let mut idle = farm.register("node-idle", &[]).await;
    let mut told = prefetches(&idle.heartbeat(pb::HeartbeatRequest::default()).await);
    told.extend(prefetches(&idle.heartbeat(pb::HeartbeatRequest::default()).await));
    assert_eq!(told, vec![HASH_B.to_string()]);
}
