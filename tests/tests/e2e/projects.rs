//! Saved projects end to end (docs/content.md): a backend submits scenes with the user's content,
//! agents render them in parallel through the startup hook's `-r` script, and the frames show
//! what was applied; a field that cannot be applied fails the job once, naming field and layer;
//! assets are fetched once per node and checked by their BLAKE3; working folders go away.

use std::path::{Path, PathBuf};

use flatrender_e2e::{Farm, WAIT_LIMIT, frames::read_frame, wait_until};
use flatrender_proto::pb::{self, field_value::Value};

use crate::fake_aerender;

/// The injection-shaped headline: it must render as this text and do nothing else.
const HEADLINE: &str = "\"); app.quit(); // Grüße\u{2028}✓";
const LOGO: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR logo bytes";
const CLIP: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2 clip";
const JINGLE: &[u8] = b"RIFF\x24\0\0\0WAVEfmt jingle";

/// A template the double understands: three comps and the layers the fields bind to.
fn template(with_title: bool) -> Vec<u8> {
    let mut text = String::from(
        "comp \"Intro\" fps=25 frames=50 start=0 width=32 height=18\n\
         comp \"Outro\" fps=25 frames=50 start=0 width=32 height=18\n\
         comp \"Char_Bob\" fps=25 frames=50 start=0 width=32 height=18\n\
         layer \"Intro\" \"Background\" type=solid\n\
         layer \"Intro\" \"Logo\" type=footage\n\
         layer \"Outro\" \"Price\" type=shape props=\"Effects>Price>Slider\"\n\
         layer \"Outro\" \"Badge\" type=null\n\
         layer \"Outro\" \"Plan\" type=text\n\
         layer \"Outro\" \"Hero\" type=precomp\n\
         layer \"Outro\" \"Clip\" type=footage\n\
         layer \"Outro\" \"Jingle\" type=footage\n",
    );
    if with_title {
        text.push_str("layer \"Intro\" \"Title\" type=text\n");
    }
    text.into_bytes()
}

fn asset(farm: &Farm, name: &str, bytes: &[u8]) -> pb::Asset {
    let (url, blake3_hex, size_bytes) = farm.templates.publish(name, bytes.to_vec());
    pb::Asset {
        url,
        blake3_hex,
        size_bytes,
        file_name: String::new(),
    }
}

fn field(key: &str, layer: &str, value: Value) -> pb::FieldValue {
    pb::FieldValue {
        key: key.into(),
        layer_name: layer.into(),
        property: String::new(),
        value: Some(value),
    }
}

fn scene(composition: &str, start: i32, end: i32, fields: Vec<pb::FieldValue>) -> pb::Scene {
    pb::Scene {
        scene_id: uuid::Uuid::new_v4().to_string(),
        composition: composition.into(),
        frame_range: Some(pb::FrameRange { start, end }),
        fields,
    }
}

fn png_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "png"))
        .collect();
    files.sort();
    files
}

/// No agent holds a working folder any more.
fn work_folders_empty(state_dirs: &[&Path]) -> bool {
    state_dirs
        .iter()
        .all(|state| std::fs::read_dir(state.join("work")).map_or(true, |entries| entries.count() == 0))
}

/// Three scenes (the same composition twice, with different values) with every kind of field
/// render in parallel on two agents; each scene's frames land in its own folder in play order
/// and show exactly that scene's values; the injection-shaped headline is just text; the
/// working folders are gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_scenes_render_with_their_content_on_two_agents() {
    let farm = Farm::start(&[]).await;
    let first = farm.agent("node-a", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "40")]);
    let second = farm.agent("node-b", &fake_aerender(), &[("FAKE_AERENDER_FRAME_MS", "40")]);
    let online = wait_until(WAIT_LIMIT, || async {
        farm.count("SELECT count(*) FROM render.nodes WHERE state = 'online'")
            .await
            == 2
    })
    .await;
    assert!(online, "both agents registered\n{}", farm.logs());
    let logo = asset(&farm, "logo.png", LOGO);
    let scenes = vec![
        scene(
            "Intro",
            0,
            11,
            vec![
                field("headline", "Title", Value::Text(HEADLINE.into())),
                field("brand", "Background", Value::Color("#FF8000".into())),
                field("logo", "Logo", Value::Image(logo.clone())),
            ],
        ),
        scene(
            "Outro",
            5,
            16,
            vec![
                pb::FieldValue {
                    property: "Effects>Price>Slider".into(),
                    ..field("price", "Price", Value::Number(9.5))
                },
                field("badge", "Badge", Value::Boolean(false)),
                field("plan", "Plan", Value::Select("Pro".into())),
                field("hero", "Hero", Value::Character("Char_Bob".into())),
                field("clip", "Clip", Value::Video(asset(&farm, "clip.mp4", CLIP))),
                field("jingle", "Jingle", Value::Audio(asset(&farm, "jingle.wav", JINGLE))),
            ],
        ),
        scene(
            "Intro",
            0,
            7,
            vec![
                field("headline", "Title", Value::Text("The end".into())),
                field("brand", "Background", Value::Color("#0000FF".into())),
                field("logo", "Logo", Value::Image(logo)),
            ],
        ),
    ];
    let job = farm
        .submit_with(farm.project_request("promo", template(true), scenes))
        .await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Completed, "{done:?}\n{}", farm.logs());
    assert_eq!(done.progress.unwrap().frames_done, 12 + 12 + 8);
    let nodes = farm
        .count("SELECT count(DISTINCT lease_node_id) FROM render.frame_jobs WHERE state = 'completed'")
        .await;
    assert_eq!(nodes, 2, "both agents rendered chunks of the project");

    let job_dir = farm.dir.path().join("renders").join(&job.id);
    let expected: [(&str, std::ops::RangeInclusive<i32>); 3] = [("Intro", 0..=11), ("Outro", 5..=16), ("Intro", 0..=7)];
    for (index, (composition, frames)) in expected.iter().enumerate() {
        let files = png_files(&job_dir.join(format!("scene-{index:03}")));
        let names: Vec<String> = files
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let wanted: Vec<String> = frames.clone().map(|frame| format!("promo_{frame:05}.png")).collect();
        assert_eq!(names, wanted, "scene {index}");
        for path in &files {
            let frame = read_frame(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert_eq!(
                frame.text("flatrender:scene"),
                Some(format!("{index} {composition}").as_str())
            );
            match index {
                0 => {
                    assert_eq!(frame.text("field:headline"), Some(HEADLINE));
                    assert_eq!(frame.text("field:brand"), Some("#FF8000FF"));
                    assert!(
                        frame.pixels.iter().all(|pixel| *pixel == [255, 128, 0]),
                        "filled with the brand colour"
                    );
                    assert_eq!(frame.text("field:logo"), Some(blake3::hash(LOGO).to_hex().as_str()));
                }
                1 => {
                    assert_eq!(frame.text("field:price"), Some("9.5"));
                    assert_eq!(frame.text("field:badge"), Some("false"));
                    assert_eq!(frame.text("field:plan"), Some("Pro"));
                    assert_eq!(frame.text("field:hero"), Some("Char_Bob"));
                    assert_eq!(frame.text("field:clip"), Some(blake3::hash(CLIP).to_hex().as_str()));
                    assert_eq!(frame.text("field:jingle"), Some(blake3::hash(JINGLE).to_hex().as_str()));
                    assert_eq!(frame.text("field:headline"), None, "another scene's values stay there");
                }
                _ => {
                    assert_eq!(frame.text("field:headline"), Some("The end"));
                    assert!(frame.pixels.iter().all(|pixel| *pixel == [0, 0, 255]));
                }
            }
        }
    }
    let cleaned = wait_until(WAIT_LIMIT, || async {
        work_folders_empty(&[&first.state_dir, &second.state_dir])
    })
    .await;
    assert!(cleaned, "every working folder is removed once its chunk is done");
}

/// A field whose layer does not exist fails the job at once with the field and the layer in
/// its reason; no other node retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_layer_fails_the_job_once_naming_field_and_layer() {
    let farm = Farm::start(&[]).await;
    let first = farm.agent("node-a", &fake_aerender(), &[]);
    let second = farm.agent("node-b", &fake_aerender(), &[]);
    // One frame: one chunk, so one render attempt in all unless someone retries it.
    let scenes = vec![scene(
        "Intro",
        0,
        0,
        vec![field("headline", "Title", Value::Text("Hello".into()))],
    )];
    let job = farm
        .submit_with(farm.project_request("nolayer", template(false), scenes))
        .await;
    let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
    assert_eq!(done.status(), pb::JobStatus::Failed, "{done:?}");
    assert!(
        done.failure_reason.contains("field \"headline\"") && done.failure_reason.contains("layer \"Title\""),
        "{}",
        done.failure_reason
    );
    assert_eq!(
        first.fake_runs() + second.fake_runs(),
        1,
        "failed once, not retried on every node"
    );
    let crash = farm
        .count("SELECT count(*) FROM render.node_crashes WHERE crash_class = 'template_error'")
        .await;
    assert_eq!(crash, 1);
    let cleaned = wait_until(WAIT_LIMIT, || async {
        work_folders_empty(&[&first.state_dir, &second.state_dir])
    })
    .await;
    assert!(cleaned, "the failed chunk's working folder is removed too");
}

/// An asset used by several jobs is downloaded once by the node; an asset whose bytes do not
/// match its BLAKE3 is refused before any render uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_fetched_once_per_node_and_checked() {
    let farm = Farm::start(&[]).await;
    let agent = farm.agent("node-a", &fake_aerender(), &[]);
    let logo = asset(&farm, "shared-logo.png", LOGO);
    let mut jobs = Vec::new();
    for name in ["one", "two", "three"] {
        let scenes = vec![scene(
            "Intro",
            0,
            2,
            vec![
                field("headline", "Title", Value::Text(name.into())),
                field("logo", "Logo", Value::Image(logo.clone())),
            ],
        )];
        jobs.push(
            farm.submit_with(farm.project_request(name, template(true), scenes))
                .await,
        );
    }
    for job in &jobs {
        let done = farm.wait_terminal(&job.id, WAIT_LIMIT).await;
        assert_eq!(done.status(), pb::JobStatus::Completed, "{done:?}\n{}", farm.logs());
    }
    assert_eq!(farm.templates.hits("shared-logo.png"), 1, "one download for three jobs");

    // The file server hands out other bytes (of the same length) than the ones the hash names.
    let corrupt = asset(&farm, "corrupt.png", b"\x89PNG\r\n\x1a\n the real one");
    farm.templates
        .publish("corrupt.png", b"\x89PNG\r\n\x1a\n tampered!!!!".to_vec());
    let runs_before = agent.fake_runs();
    let scenes = vec![scene("Intro", 0, 2, vec![field("logo", "Logo", Value::Image(corrupt))])];
    let job = farm
        .submit_with(farm.project_request("corrupt", template(true), scenes))
        .await;
    let refused = wait_until(WAIT_LIMIT, || async {
        farm.count(&format!(
            "SELECT count(*) FROM render.node_crashes WHERE job_id = '{}' AND crash_class = 'cache_error'",
            job.id
        ))
        .await
            >= 1
    })
    .await;
    assert!(
        refused,
        "the corrupt asset is refused as a cache error\n{}",
        farm.logs()
    );
    assert_eq!(
        agent.fake_runs(),
        runs_before,
        "nothing rendered with the corrupt asset"
    );
    let job_dir = farm.dir.path().join("renders").join(&job.id);
    assert!(!job_dir.join("scene-000").exists() || png_files(&job_dir.join("scene-000")).is_empty());
}
