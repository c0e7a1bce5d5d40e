//! `node-agent doctor`: checks what the agent needs (aerender, its startup hook, the encoder,
//! disk, cache and state folders, the control plane) and says what to fix. Returns the checks;
//! the binary prints them.

use std::{path::Path, time::Duration};

use crate::{
    config::AgentConfig,
    content::hook::{self, HookStatus},
    encode,
    supervisor::{self, AerenderInstall},
};

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what to do.
    pub detail: String,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Free space below which a volume is reported as a problem.
const MIN_FREE_BYTES: u64 = 5 << 30;

/// Runs every check.
pub async fn run_checks(config: &AgentConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let configured = (!config.aerender.path.as_os_str().is_empty()).then_some(config.aerender.path.as_path());
    let found = supervisor::find_aerender(configured);
    match &found {
        Ok(install) => {
            checks.push(Check::pass("aerender", install.path.display().to_string()));
            match &install.version {
                Some(version) => checks.push(Check::pass("after effects version", version.clone())),
                None => checks.push(Check::fail(
                    "after effects version",
                    "unknown: the install folder does not say; -mfr stays off. Check that aerender runs by hand",
                )),
            }
            let answers = crate::probe::probe(&install.path, "flatrender-doctor-probe", Duration::from_secs(10)).await;
            checks.push(if answers {
                Check::pass("aerender starts", "`aerender -version` answered")
            } else {
                Check::fail(
                    "aerender starts",
                    "`aerender -version` did not answer: repair After Effects or its licence",
                )
            });
        }
        Err(error) if config.aerender.required => checks.push(Check::fail("aerender", error.to_string())),
        Err(error) => checks.push(Check::pass(
            "aerender",
            format!("not found ({error}): this node takes encode work only (aerender.required = false)"),
        )),
    }
    // An encode-only node runs no After Effects: it has no hook to check.
    if found.is_ok() || config.aerender.required {
        checks.push(startup_hook(config, found.as_ref().ok()));
    }
    checks.push(encoder(config, found.is_ok()).await);
    let asset_dir = config.cache.asset_dir();
    for (name, dir) in [
        ("template cache folder", config.cache.dir.as_path()),
        ("asset cache folder", asset_dir.as_path()),
        ("output folder", config.aerender.output_root.as_path()),
        ("state folder", config.node.state_dir.as_path()),
    ] {
        checks.push(writable(name, dir));
    }
    checks.push(disk_space(&config.aerender.output_root));
    checks.push(match config.join_token() {
        Ok(_) => Check::pass("join token", "configured"),
        Err(_) if config.node.state_dir.join("credential.json").exists() => {
            Check::pass("join token", "not needed: node already registered")
        }
        Err(error) => Check::fail("join token", error.to_string()),
    });
    for endpoint in &config.control_plane.endpoints {
        checks.push(reachable(endpoint, &config.control_plane.ca_cert).await);
    }
    checks
}

/// ffmpeg and ffprobe for encode work. Missing is a problem only where the node has nothing
/// else to do; a render node without them just takes no encode work.
async fn encoder(config: &AgentConfig, has_aerender: bool) -> Check {
    const NAME: &str = "encoder";
    if !config.encode.enabled {
        return Check::pass(NAME, "off (encode.enabled = false): this node takes no encode work");
    }
    match encode::detect(&config.encode.tools(), "flatrender-doctor-encoder").await {
        Ok(versions) => Check::pass(
            NAME,
            format!(
                "ffmpeg {}, ffprobe {}: this node takes encode work",
                versions.ffmpeg.version, versions.ffprobe.version
            ),
        ),
        Err(error) if has_aerender => Check::pass(NAME, format!("none, so this node takes no encode work: {error}")),
        Err(error) => Check::fail(NAME, format!("{error}; without aerender this node has nothing to run")),
    }
}

/// The After Effects startup hook that applies saved projects' values (docs/content.md §3).
fn startup_hook(config: &AgentConfig, install: Option<&AerenderInstall>) -> Check {
    const NAME: &str = "aerender startup hook";
    let configured = &config.aerender.startup_scripts_dir;
    let dir = match install {
        Some(install) => hook::startup_scripts_dir(configured, &install.path),
        None if !configured.as_os_str().is_empty() => configured.clone(),
        None => {
            return Check::fail(
                NAME,
                format!(
                    "no folder to check: aerender was not found; fix that, or set {}",
                    hook::CONFIG_KEY
                ),
            );
        }
    };
    let path = dir.join(hook::HOOK_FILE_NAME);
    let fix = format!(
        "start the agent (it installs the hook, and needs write access to {}), or set {}",
        dir.display(),
        hook::CONFIG_KEY
    );
    match hook::status(&dir) {
        Ok(HookStatus::Current) => Check::pass(NAME, format!("{} (version {})", path.display(), hook::HOOK_VERSION)),
        Ok(HookStatus::Missing) => Check::fail(NAME, format!("missing: {}; {fix}", path.display())),
        Ok(HookStatus::Outdated { version }) => {
            let found = version.map_or_else(|| "not this agent's".to_owned(), |version| format!("version {version}"));
            Check::fail(
                NAME,
                format!(
                    "outdated: {} is {found}, this agent installs version {}; {fix}",
                    path.display(),
                    hook::HOOK_VERSION
                ),
            )
        }
        Err(error) => Check::fail(NAME, error.to_string()),
    }
}

fn writable(name: &str, dir: &Path) -> Check {
    if let Err(error) = std::fs::create_dir_all(dir) {
        return Check::fail(
            name,
            format!(
                "cannot create {}: {error}; fix the path or its permissions",
                dir.display()
            ),
        );
    }
    let probe = dir.join(".doctor-write-test");
    match std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        Ok(()) => Check::pass(name, format!("{} is writable", dir.display())),
        Err(error) => Check::fail(name, format!("{} is not writable: {error}", dir.display())),
    }
}

fn disk_space(dir: &Path) -> Check {
    let disks = sysinfo::Disks::new_with_refreshed_list();
    let absolute = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let best = disks
        .list()
        .iter()
        .filter(|disk| absolute.starts_with(disk.mount_point()))
        .max_by_key(|disk| disk.mount_point().as_os_str().len());
    match best {
        Some(disk) if disk.available_space() >= MIN_FREE_BYTES => Check::pass(
            "disk space",
            format!("{} GiB free for outputs", disk.available_space() >> 30),
        ),
        Some(disk) => Check::fail(
            "disk space",
            format!(
                "only {} MiB free on {}: free space or move output_root",
                disk.available_space() >> 20,
                disk.mount_point().display()
            ),
        ),
        None => Check::fail("disk space", format!("no volume found for {}", absolute.display())),
    }
}

async fn reachable(endpoint: &str, ca_cert: &Path) -> Check {
    let name = format!("control plane {endpoint}");
    let ca_pem = if ca_cert.as_os_str().is_empty() {
        None
    } else {
        match std::fs::read(ca_cert) {
            Ok(pem) => Some(pem),
            Err(error) => {
                return Check::fail(&name, format!("control_plane.ca_cert {}: {error}", ca_cert.display()));
            }
        }
    };
    let channel = match crate::client::endpoint(endpoint, ca_pem.as_deref()) {
        Ok(channel) => channel,
        Err(error) => return Check::fail(&name, error),
    };
    match tokio::time::timeout(Duration::from_secs(6), channel.connect()).await {
        Ok(Ok(_)) => Check::pass(&name, "reachable"),
        Ok(Err(error)) => Check::fail(
            &name,
            format!("unreachable ({error}): is the control plane running, and is the address right?"),
        ),
        Err(_) => Check::fail(&name, "no answer within 6 s: check firewalls and the address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_startup_dir(dir: &Path) -> AgentConfig {
        let mut config = AgentConfig::default();
        config.aerender.startup_scripts_dir = dir.to_path_buf();
        config
    }

    /// Without ffmpeg, a render node passes (it takes no encode work) and an encode-only node
    /// fails; encoding switched off passes and says so.
    #[tokio::test]
    async fn encoder_check_depends_on_what_else_the_node_has() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::default();
        config.encode.ffmpeg = dir.path().join("no-ffmpeg");
        let render_node = encoder(&config, true).await;
        assert!(
            render_node.ok && render_node.detail.contains("no-ffmpeg"),
            "{render_node:?}"
        );
        let encode_only = encoder(&config, false).await;
        assert!(
            !encode_only.ok && encode_only.detail.contains("nothing to run"),
            "{encode_only:?}"
        );
        config.encode.enabled = false;
        let off = encoder(&config, false).await;
        assert!(off.ok && off.detail.contains("encode.enabled = false"), "{off:?}");
    }

    /// The hook check says missing, outdated (with the version found) or current, and names the
    /// fix; without aerender or a configured folder it says what to set.
    #[test]
    fn startup_hook_check_reports_each_state() {
        let dir = tempfile::tempdir().unwrap();
        let startup = dir.path().join("Scripts").join("Startup");
        let config = config_with_startup_dir(&startup);
        let missing = startup_hook(&config, None);
        assert!(!missing.ok && missing.detail.starts_with("missing"), "{missing:?}");
        assert!(missing.detail.contains(hook::CONFIG_KEY), "{missing:?}");
        std::fs::create_dir_all(&startup).unwrap();
        std::fs::write(
            startup.join(hook::HOOK_FILE_NAME),
            "// flatrender_hook.jsx version 0 (old)\n",
        )
        .unwrap();
        let outdated = startup_hook(&config, None);
        assert!(!outdated.ok && outdated.detail.contains("is version 0"), "{outdated:?}");
        hook::install(&startup).unwrap();
        let current = startup_hook(&config, None);
        assert!(current.ok, "{current:?}");
        // Found beside aerender when no folder is configured.
        let install = AerenderInstall {
            path: dir.path().join("aerender"),
            version: None,
        };
        assert!(startup_hook(&AgentConfig::default(), Some(&install)).ok);
        let nowhere = startup_hook(&AgentConfig::default(), None);
        assert!(!nowhere.ok && nowhere.detail.contains(hook::CONFIG_KEY), "{nowhere:?}");
    }
}
