//! Unit tests of the configuration: layers, validation naming the key, the redacted dump.

use super::*;

/// Defaults load; the node name falls back to the host name.
#[test]
fn defaults_are_valid() {
    let config = AgentConfig::load(None, vec![], &[]).unwrap();
    assert!(!config.node.name.is_empty());
    assert_eq!(
        config.control_plane.endpoints,
        vec!["http://127.0.0.1:50051".to_string()]
    );
}

/// Environment lists split on commas; bad values name the key.
#[test]
fn layers_and_errors() {
    let vars = vec![(
        "FLATRENDER_AGENT_CONTROL_PLANE__ENDPOINTS".to_string(),
        "http://a:1, http://b:2".to_string(),
    )];
    let config = AgentConfig::load(None, vars, &["node.name=render-07".into()]).unwrap();
    assert_eq!(config.control_plane.endpoints.len(), 2);
    assert_eq!(config.node.name, "render-07");
    let error = AgentConfig::load(None, vec![], &["node.max_leases=0".into()]).unwrap_err();
    assert!(error.to_string().contains("node.max_leases"), "{error}");
    let error = AgentConfig::load(None, vec![], &["control_plane.endpoints=ftp://x".into()]).unwrap_err();
    assert!(error.to_string().contains("control_plane.endpoints"), "{error}");
}

/// The asset cache has its own folder (inside the template cache's unless set) and budget, and
/// the startup folder defaults to empty (beside aerender); all show in the dump.
#[test]
fn asset_cache_and_startup_folder_settings() {
    let config = AgentConfig::load(None, vec![], &[]).unwrap();
    assert_eq!(config.cache.asset_dir, PathBuf::new());
    assert_eq!(config.cache.asset_dir(), PathBuf::from("template-cache").join("assets"));
    assert_eq!(config.cache.asset_budget_bytes, 20 << 30);
    assert_eq!(config.aerender.startup_scripts_dir, PathBuf::new());
    let dumped = config.to_redacted_toml().unwrap();
    for key in ["asset_dir", "asset_budget_bytes", "startup_scripts_dir"] {
        assert!(dumped.contains(key), "{key} in {dumped}");
    }
    let elsewhere = ["cache.asset_dir=/srv/assets".to_string()];
    let config = AgentConfig::load(None, vec![], &elsewhere).unwrap();
    assert_eq!(config.cache.asset_dir(), PathBuf::from("/srv/assets"));
    let same_folder = ["cache.asset_dir=template-cache".to_string()];
    let error = AgentConfig::load(None, vec![], &same_folder).unwrap_err();
    assert!(error.to_string().contains("cache.asset_dir"), "{error}");
    let tiny = ["cache.asset_budget_bytes=10".to_string()];
    let error = AgentConfig::load(None, vec![], &tiny).unwrap_err();
    assert!(error.to_string().contains("cache.asset_budget_bytes"), "{error}");
}

/// The dump hides the join token, shows everything else, and reads back as the same
/// configuration (apart from the hidden token).
#[test]
fn redacted_toml_hides_the_join_token_and_reads_back() {
    let overrides = [
        "control_plane.join_token=s3cret-join".to_string(),
        "node.max_leases=3".to_string(),
    ];
    let config = AgentConfig::load(None, vec![], &overrides).unwrap();
    let dumped = config.to_redacted_toml().unwrap();
    assert!(!dumped.contains("s3cret-join"), "{dumped}");
    assert!(dumped.contains(r#"join_token = "***""#), "{dumped}");
    let mut read_back: AgentConfig = toml::from_str(&dumped).unwrap();
    assert_eq!(read_back.control_plane.join_token, "***");
    read_back.control_plane.join_token = config.control_plane.join_token.clone();
    assert_eq!(read_back, config);
    let without_token = AgentConfig::load(None, vec![], &[]).unwrap();
    assert!(without_token.to_redacted_toml().unwrap().contains(r#"join_token = """#));
}

/// A missing join token says how to get one.
#[test]
fn missing_join_token_explains() {
    let config = AgentConfig::load(None, vec![], &[]).unwrap();
    assert!(
        config
            .join_token()
            .unwrap_err()
            .to_string()
            .contains("token create --kind join")
    );
}

/// The canary settings are checked: a project needs its composition, the back-off cap its base.
#[test]
fn canary_settings_are_validated() {
    let project_only = ["recovery.canary_project=/srv/canary.aep".to_string()];
    let error = AgentConfig::load(None, vec![], &project_only).unwrap_err();
    assert!(error.to_string().contains("recovery.canary_composition"), "{error}");
    let cap_below_base = ["recovery.probe_interval_max_seconds=10".to_string()];
    let error = AgentConfig::load(None, vec![], &cap_below_base).unwrap_err();
    assert!(
        error.to_string().contains("recovery.probe_interval_max_seconds"),
        "{error}"
    );
}

/// An https:// endpoint needs the CA to trust; the error names the key.
#[test]
fn https_endpoints_need_a_ca() {
    let https = ["control_plane.endpoints=https://cp.internal:50051".to_string()];
    let error = AgentConfig::load(None, vec![], &https).unwrap_err();
    assert!(error.to_string().contains("control_plane.ca_cert"), "{error}");
    let with_ca = [
        https[0].clone(),
        "control_plane.ca_cert=/etc/flatrender/ca.pem".to_string(),
    ];
    let config = AgentConfig::load(None, vec![], &with_ca).unwrap();
    assert_eq!(config.control_plane.ca_cert, PathBuf::from("/etc/flatrender/ca.pem"));
}

/// Exports go to `<output_root>/exports` unless set, following `aerender.output_root`; the HTTP
/// store needs its URL, and a bad one names `export.url`.
#[test]
fn export_settings_default_and_validate() {
    let config = AgentConfig::load(None, vec![], &[]).unwrap();
    assert_eq!(config.export.store, ExportStoreKind::Folder);
    assert_eq!(config.export.folder, PathBuf::from("renders").join("exports"));
    let moved = ["aerender.output_root=/srv/renders".to_string()];
    let config = AgentConfig::load(None, vec![], &moved).unwrap();
    assert_eq!(config.export.folder, PathBuf::from("/srv/renders/exports"));
    assert!(config.to_redacted_toml().unwrap().contains("[export]"));
    let vars = vec![("FLATRENDER_AGENT_EXPORT__STORE".to_string(), "http".to_string())];
    let error = AgentConfig::load(None, vars.clone(), &[]).unwrap_err();
    assert!(error.to_string().contains("export.url"), "{error}");
    let bad_url = ["export.url=ftp://files.internal/exports".to_string()];
    let error = AgentConfig::load(None, vars.clone(), &bad_url).unwrap_err();
    assert!(error.to_string().contains("export.url"), "{error}");
    let good_url = ["export.url=https://files.internal/exports".to_string()];
    let config = AgentConfig::load(None, vars, &good_url).unwrap();
    assert_eq!(config.export.store, ExportStoreKind::Http);
    assert_eq!(config.export.max_attempts, 5);
    let error = AgentConfig::load(None, vec![], &["export.store=s3".to_string()]).unwrap_err();
    assert!(error.to_string().contains("store"), "{error}");
}
