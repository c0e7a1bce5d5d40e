//! The encode step end to end (docs/encode.md): real control plane, real agents with the aerender
//! double, real ffmpeg and ffprobe. A project's scenes render on the farm, one node encodes them
//! with the project's audio, verifies and stores the video, and the job completes with one export
//! whatever breaks on the way: an agent killed while uploading, a cancel during the encode.

use std::{path::Path, process::Command};

use flatrender_e2e::{Farm, WAIT_LIMIT, file_service::FileService, quickstart::export, wait_until};
use flatrender_proto::pb::{self, field_value::Value};

use crate::fake_aerender;

/// Two compositions with a solid layer each: the double fills frames with the solid's colour.
fn template() -> Vec<u8> {
    b"comp \"Intro\" fps=25 frames=100 start=0 width=32 height=18\n\
      comp \"Outro\" fps=25 frames=100 start=0 width=32 height=18\n\
      layer \"Intro\" \"Background\" type=solid\n\
      layer \"Outro\" \"Background\" type=solid\n"
        .to_vec()
}

fn scene(composition: &str, start: i32, end: i32, color: &str) -> pb::Scene {
    pb::Scene {
        scene_id: String::new(),
        composition: composition.into(),
        frame_range: Some(pb::FrameRange { start, end }),
        fields: vec![pb::FieldValue {
            key: "brand".into(),
            layer_name: "Background".into(),
            property: String::new(),
            value: Some(Value::Color(color.into())),
        }],
    }
}

/// A WAV file of a sine tone made by ffmpeg.
fn tone(frequency: u32, seconds: f64) -> Vec<u8> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={frequency}:duration={seconds}"))
        .args(["-ac", "1", "-ar", "48000", "-f", "wav", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn asset(farm: &Farm, name: &str, bytes: Vec<u8>) -> pb::Asset {
    let (url, blake3_hex, size_bytes) = farm.templates.publish(name, bytes);
    pb::Asset {
        url,
        blake3_hex,
        size_bytes,
        file_name: name.into(),
    }
}

/// A two-scene project (red 12 frames, then blue 13 frames) at 480p in `container`, with music, a
/// sound effect and a voiceover unless `container` is gif.
fn project(farm: &Farm, name: &str, container: &str) -> pb::SubmitRenderJobRequest {
    let mut request = farm.project_request(
        name,
        template(),
        vec![scene("Intro", 0, 11, "#FF0000"), scene("Outro", 20, 32, "#0000FF")],
    );
    let output = request.output.as_mut().expect("output");
    output.container = container.into();
    output.resolution = pb::Resolution::Resolution480p as i32;
    if container != "gif" {
        request.audio = Some(pb::ProjectAudio {
            music: Some(pb::Music {
                file: Some(asset(farm, &format!("{name}-music.wav"), tone(220, 3.0))),
                fade_in_ms: 100,
                fade_out_ms: 100,
                volume: Some(0.5),
                ..Default::default()
            }),
            sfx: vec![pb::SoundEffect {
                file: Some(asset(farm, &format!("{name}-whoosh.wav"), tone(880, 0.2))),
                start_ms: 300,
                ..Default::default()
            }],
            sfx_volume: Some(0.8),
            voiceover: Some(pb::Voiceover {
                file: Some(asset(farm, &format!("{name}-vo.wav"), tone(440, 0.5))),
                source: pb::VoiceoverSource::Tts as i32,
                start_ms: 100,
                ..Default::default()
            }),
        });
        request.has_voiceover = true;
    }
    request
}

/// The average colour of the decoded frame at `seconds`.
fn colour_at(path: &Path, seconds: f64) -> [u8; 3] {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{seconds}"), "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert_eq!(output.stdout.len(), 3, "{}", String::from_utf8_lossy(&output.stderr));
    [output.stdout[0], output.stdout[1], output.stdout[2]]
}

fn mostly(colour: [u8; 3], channel: usize) -> bool {
    colour[channel] > 150
        && (0..3)
            .filter(|other| *other != channel)
            .all(|other| colour[other] < 100)
}

/// An agent's settings to store exports on `files` (quick retries).
fn http_store(files: &FileService) -> [(&'static str, &str); 3] {
    [
        ("FLATRENDER_AGENT_EXPORT__STORE", "http"),
        ("FLATRENDER_AGENT_EXPORT__URL", files.base_url.as_str()),
        ("FLATRENDER_AGENT_EXPORT__RETRY_BASE_MS", "50"),
    ]
}

async fn wait_online(farm: &Farm, nodes: i64) {
    let online = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await
            == nodes
    })
    .await;
    assert!(online, "{nodes} agents registered\n{}", farm.logs());
}

async fn exports_of(farm: &Farm, job_id: &str) -> i64 {
    farm.count(&format!(
        "SELECT count(*) FROM render.exports WHERE job_id = '{job_id}'"
    ))
    .await
}

/// Two render agents that do not encode and one encode-only agent: the scenes render on the
/// first two, the encode runs on the third, and the job ends with one verified MP4 in the shared
/// export folder whose scenes play in order and whose checksum and streams match the export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_becomes_one_verified_mp4_encoded_by_an_encode_only_node() {
    let farm = Farm::start(&[]).await;
    let no_encoder = [("FLATRENDER_AGENT_ENCODE__ENABLED", "false")];
    let _render_a = farm.agent("render-a", &fake_aerender(), &no_encoder);
    let _render_b = farm.agent("render-b", &fake_aerender(), &no_encoder);
    let encoder = farm.agent(
        "encoder",
        &fake_aerender(),
        &[
            ("FLATRENDER_AGENT_AERENDER__REQUIRED", "false"),
            ("FLATRENDER_AGENT_AERENDER__PATH", "/nonexistent/aerender"),
        ],
    );
    wait_online(&farm, 3).await;
    let job = farm.submit_with(project(&farm, "promo", "mp4")).await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 2).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{}\n{}",
        done.failure_reason,
        farm.logs()
    );
    let export = done.export.expect("the job shows its export");
    let encoder_id = farm.node_id("encoder").await;
    let encoded_by: String = sqlx::query_scalar(
        "SELECT lease_node_id::text FROM render.frame_jobs WHERE job_id = $1::uuid AND kind = 'encode'",
    )
    .bind(&job.id)
    .fetch_one(farm.db.pool())
    .await
    .expect("encode item");
    assert_eq!(encoded_by, encoder_id);
    let rendered_by_encoder = farm
        .count(&format!(
            "SELECT count(*) FROM render.frame_jobs WHERE kind = 'render' AND lease_node_id = '{encoder_id}'"
        ))
        .await;
    assert_eq!(rendered_by_encoder, 0, "an encode-only node renders nothing");

    let file = Path::new(&export.location);
    // The file is the export's: size and BLAKE3 (the quickstart's own check).
    export::check_file(&export).unwrap_or_else(|error| panic!("{error:#}\n{}", encoder.log_text()));
    assert_eq!((export.format.as_str(), export.width, export.height), ("mp4", 854, 480));
    assert_eq!(
        (export.video_codec.as_str(), export.audio_codec.as_str()),
        ("h264", "aac")
    );
    let probed = export::probe(&export::Location::of(&export)).await.expect("ffprobe");
    assert_eq!(probed.streams.len(), 2, "{:?}", probed.streams);
    assert!(probed.streams[0].starts_with("#0 video: h264"), "{:?}", probed.streams);
    assert!(probed.streams[1].starts_with("#1 audio: aac"), "{:?}", probed.streams);
    // 25 frames at 25 fps, within a frame.
    export::check_duration(&probed, 1.0, 25.0).expect("duration");
    // Scenes in play order: red (frames 0-11), then blue (12-24).
    assert!(mostly(colour_at(file, 0.2), 0), "{:?}", colour_at(file, 0.2));
    assert!(mostly(colour_at(file, 0.8), 2), "{:?}", colour_at(file, 0.8));
    assert_eq!(exports_of(&farm, &job.id).await, 1);
}

/// The agent encoding a job is killed while it uploads to the file service: the encode is redone
/// by another agent and the job ends with one export row and one stored object, the one the row
/// names, with its checksum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_while_uploading_still_ends_with_one_export() {
    let farm = Farm::start(&[]).await;
    let files = FileService::start().await;
    let store = http_store(&files);
    let mut first = farm.agent("node-a", &fake_aerender(), &store);
    wait_online(&farm, 1).await;
    files.hold_uploads();
    let job = farm.submit_with(project(&farm, "killed", "webm")).await;
    assert!(
        files.wait_uploads_started(1, WAIT_LIMIT).await,
        "the upload starts\n{}",
        first.log_text()
    );
    first.kill();
    let _second = farm.agent("node-b", &fake_aerender(), &store);
    assert!(
        files.wait_uploads_started(2, WAIT_LIMIT).await,
        "the encode is redone\n{}",
        farm.logs()
    );
    files.release_uploads();
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 2).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{}\n{}",
        done.failure_reason,
        farm.logs()
    );
    let export = done.export.expect("export");
    assert_eq!(exports_of(&farm, &job.id).await, 1);
    let objects = files.objects();
    assert_eq!(objects.len(), 1, "{:?}", objects.keys().collect::<Vec<_>>());
    let (path, object) = objects.into_iter().next().expect("one object");
    assert_eq!(export.location, format!("{}/{path}", files.base_url));
    assert_eq!(blake3::hash(&object.bytes).to_hex().as_str(), export.blake3_hex);
    assert_eq!(object.bytes.len() as i64, export.size_bytes);
    assert_eq!(export.format, "webm");
    assert_eq!(
        (export.video_codec.as_str(), export.audio_codec.as_str()),
        ("vp9", "opus")
    );
}

/// A job cancelled while its encode is storing: the upload still reaches the file service (a
/// cut-off upload may have arrived whole, so the agent finishes it and reports), the control plane
/// answers that the job ended, the agent removes the upload, and the job stays cancelled with no
/// export row and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_the_encode_stores_nothing() {
    let farm = Farm::start(&[]).await;
    let files = FileService::start().await;
    let agent = farm.agent("node-a", &fake_aerender(), &http_store(&files));
    wait_online(&farm, 1).await;
    files.hold_uploads();
    let job = farm.submit_with(project(&farm, "cancelled", "mp4")).await;
    assert!(files.wait_uploads_started(1, WAIT_LIMIT).await, "{}", agent.log_text());
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Encoding);
    farm.render()
        .await
        .cancel_render_job(flatrender_proto::testing::authed(
            pb::CancelRenderJobRequest {
                job_id: job.id.clone(),
                reason: "changed my mind".into(),
            },
            &farm.service_token,
        ))
        .await
        .expect("cancel");
    // The agent hears of it with its next heartbeat (the control plane tells it the lease is gone).
    let told = wait_until(WAIT_LIMIT, || async {
        agent.log_text().contains("control plane cancelled a lease")
    })
    .await;
    assert!(told, "{}", agent.log_text());
    files.release_uploads();
    let discarded = wait_until(WAIT_LIMIT, || async {
        files.completed_uploads() == 1
            && files.objects().is_empty()
            && agent.log_text().contains("stored export discarded")
    })
    .await;
    assert!(
        discarded,
        "{:?}\n{}",
        files.objects().keys().collect::<Vec<_>>(),
        agent.log_text()
    );
    assert_eq!(farm.job(&job.id).await.status(), pb::JobStatus::Cancelled);
    assert_eq!(exports_of(&farm, &job.id).await, 0);
}

/// Bad audio fails the job naming the track, never a silent export: a file that does not decode,
/// and a URL nobody answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_audio_fails_the_job_naming_the_track() {
    // A download failure is retried elsewhere, which puts the one node on the job's bad-node
    // list: it takes the encode again once the item has waited this long with no other taker.
    let farm = Farm::start(&[("FLATRENDER_DISPATCH__BAD_NODE_GRACE_SECONDS", "1")]).await;
    let _agent = farm.agent("node-a", &fake_aerender(), &[]);
    wait_online(&farm, 1).await;

    let mut garbled = project(&farm, "garbled", "mp4");
    let music = asset(&farm, "garbled-music.wav", b"RIFF this is not audio at all".to_vec());
    garbled
        .audio
        .as_mut()
        .expect("audio")
        .music
        .as_mut()
        .expect("music")
        .file = Some(music);
    let job = farm.submit_with(garbled).await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 2).await;
    assert_eq!(done.status(), pb::JobStatus::Failed, "{}", farm.logs());
    assert!(done.failure_reason.contains("audio.music"), "{}", done.failure_reason);
    assert_eq!(exports_of(&farm, &job.id).await, 0);

    let mut unreachable = project(&farm, "unreachable", "mp4");
    let voice = unreachable
        .audio
        .as_mut()
        .expect("audio")
        .voiceover
        .as_mut()
        .expect("voiceover");
    // Bytes of its own: the agent's asset cache is keyed by BLAKE3, and the garbled job's
    // voiceover (the same tone) is already in it, whatever URL names it.
    let mut file = asset(&farm, "unreachable-vo.wav", tone(450, 0.5));
    file.url = "http://127.0.0.1:9/vo.wav".into();
    voice.file = Some(file);
    let job = farm.submit_with(unreachable).await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 3).await;
    assert_eq!(done.status(), pb::JobStatus::Failed, "{}", farm.logs());
    assert!(
        done.failure_reason.contains("audio.voiceover"),
        "{}",
        done.failure_reason
    );
    assert_eq!(exports_of(&farm, &job.id).await, 0);
}

/// A finished job's frames go after the retention time: the control plane tells the node that
/// rendered them, the node removes the job's folder and confirms, and the confirmation is
/// recorded; the exported video stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_a_finished_job_are_removed_and_the_export_stays() {
    let farm = Farm::start(&[("FLATRENDER_DISPATCH__FRAMES_RETENTION_SECONDS", "0")]).await;
    let agent = farm.agent("node-a", &fake_aerender(), &[]);
    wait_online(&farm, 1).await;
    let job = farm.submit_with(project(&farm, "kept", "gif")).await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 2).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{}\n{}",
        done.failure_reason,
        farm.logs()
    );
    let export = done.export.expect("export");
    assert_eq!((export.format.as_str(), export.audio_codec.as_str()), ("gif", ""));
    let frames = farm.dir.path().join("renders").join(&job.id);
    let removed = wait_until(WAIT_LIMIT, || async {
        !frames.exists()
            && farm
                .count(&format!(
                    "SELECT count(*) FROM render.frame_jobs WHERE job_id = '{}' AND kind = 'render' \
                     AND frames_removed_at IS NULL",
                    job.id
                ))
                .await
                == 0
    })
    .await;
    assert!(removed, "{}\n{}", frames.display(), agent.log_text());
    assert!(Path::new(&export.location).is_file(), "the export stays");
}

/// The control plane goes down while a node is storing the export and comes back: the lease
/// survives in PostgreSQL, the report goes through, and the job completes with one export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_during_the_encode_loses_nothing() {
    let mut farm = Farm::start(&[]).await;
    let files = FileService::start().await;
    let agent = farm.agent("node-a", &fake_aerender(), &http_store(&files));
    wait_online(&farm, 1).await;
    files.hold_uploads();
    let job = farm.submit_with(project(&farm, "restart", "mp4")).await;
    assert!(files.wait_uploads_started(1, WAIT_LIMIT).await, "{}", agent.log_text());
    farm.kill_control_plane();
    files.release_uploads();
    // Stored while the control plane is away: the report waits in the agent's outbox.
    let stored = wait_until(WAIT_LIMIT, || async { files.objects().len() == 1 }).await;
    assert!(stored, "{}", agent.log_text());
    farm.start_control_plane().await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT * 2).await;
    assert_eq!(
        done.status(),
        pb::JobStatus::Completed,
        "{}\n{}",
        done.failure_reason,
        farm.logs()
    );
    assert_eq!(exports_of(&farm, &job.id).await, 1);
    assert_eq!(files.objects().len(), 1);
    assert_eq!(files.completed_uploads(), 1, "the encode was not redone");
}
