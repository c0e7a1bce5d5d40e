//! Unit tests of the canary's pure parts: which canary, the remembered success, the PNG check and
//! the probe back-off. The render itself is tested end to end (tests/tests/e2e/operations.rs).

use super::record::remember_success;
use super::*;
use crate::cache::CacheConfig;

fn config_in(state_dir: &Path) -> AgentConfig {
    let mut config = AgentConfig::default();
    config.node.state_dir = state_dir.to_path_buf();
    config
}

async fn empty_cache(dir: &Path) -> std::sync::Arc<TemplateCache> {
    TemplateCache::open(CacheConfig::new(dir.join("cache"), 1 << 20))
        .await
        .unwrap()
}

fn last_success(template_hash: &str) -> LastSuccess {
    LastSuccess {
        template_hash: template_hash.into(),
        project_path: PathBuf::from("/cache/abc/project.aep"),
        composition: "Main".into(),
        output_module_template: String::new(),
        render_settings_template: "Best Settings".into(),
        frame: 12,
        frame_size: Some((64, 36)),
    }
}

/// A PNG header of `width` x `height` (signature and IHDR; the rest does not matter here).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13];
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes
}

/// With nothing configured and nothing remembered there is no canary, and the reason says so.
#[tokio::test]
async fn no_canary_without_configuration_or_success() {
    let dir = tempfile::tempdir().unwrap();
    let cache = empty_cache(dir.path()).await;
    let why = plan(&config_in(dir.path()), &cache).unwrap_err();
    assert!(why.contains("recovery.canary_project is not set"), "{why}");
    assert!(why.contains("no successful render"), "{why}");
}

/// The configured project wins over a remembered success.
#[tokio::test]
async fn configured_canary_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let cache = empty_cache(dir.path()).await;
    let mut config = config_in(dir.path());
    remember_success(dir.path(), &last_success(&"ab".repeat(32))).await;
    config.recovery.canary_project = dir.path().join("canary.aep");
    config.recovery.canary_composition = "Canary".into();
    config.recovery.canary_frame = 3;
    assert_eq!(
        plan(&config, &cache).unwrap(),
        Canary::Configured {
            project: dir.path().join("canary.aep"),
            composition: "Canary".into(),
            frame: 3,
        }
    );
}

/// A remembered success round-trips through the state folder, but is only a canary while its
/// template is cached.
#[tokio::test]
async fn remembered_success_needs_its_template_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = empty_cache(dir.path()).await;
    let remembered = last_success(&"cd".repeat(32));
    remember_success(dir.path(), &remembered).await;
    assert_eq!(read_last_success(dir.path()), Some(remembered));
    let why = plan(&config_in(dir.path()), &cache).unwrap_err();
    assert!(why.contains("no longer cached"), "{why}");
    std::fs::write(dir.path().join(LAST_SUCCESS_FILE), b"{ not json").unwrap();
    assert!(plan(&config_in(dir.path()), &cache).is_err());
}

/// The PNG check reads the size from the header, rejects non-PNGs and a wrong size, and does not
/// judge other formats.
#[test]
fn frames_are_checked_by_their_png_header() {
    let dir = tempfile::tempdir().unwrap();
    let frame = dir.path().join("canary_00000.png");
    std::fs::write(&frame, png_header(64, 36)).unwrap();
    assert_eq!(png_size(&frame), Some((64, 36)));
    assert_eq!(verify_frame(&frame, Some((64, 36))), Ok(()));
    assert_eq!(verify_frame(&frame, None), Ok(()));
    let wrong = verify_frame(&frame, Some((1920, 1080))).unwrap_err();
    assert!(wrong.contains("is 64x36, expected 1920x1080"), "{wrong}");
    std::fs::write(&frame, b"GIF89a not a png at all, long enough").unwrap();
    assert_eq!(png_size(&frame), None);
    assert!(verify_frame(&frame, None).is_err());
    let movie = dir.path().join("canary_00000.tif");
    std::fs::write(&movie, b"II*\0").unwrap();
    assert_eq!(verify_frame(&movie, Some((64, 36))), Ok(()));
}

/// The delay doubles per failure up to the cap, and jitter keeps it within the upper half.
#[test]
fn probe_delay_backs_off_exponentially_with_jitter_and_a_cap() {
    let (base, cap) = (Duration::from_secs(10), Duration::from_secs(300));
    let full = |num_failed| probe_delay(base, cap, num_failed, 1.0);
    assert_eq!(
        [full(0), full(1), full(2), full(3)],
        [10, 20, 40, 80].map(Duration::from_secs)
    );
    assert_eq!(full(5), cap, "320 s is capped");
    assert_eq!(full(200), cap, "no overflow");
    assert_eq!(probe_delay(base, cap, 1, 0.0), Duration::from_secs(10));
    assert_eq!(probe_delay(base, cap, 1, 0.5), Duration::from_secs(15));
}
