//! What this node can run, found once at start: aerender (required unless
//! `aerender.required = false`) and the encoder, `ffmpeg` and `ffprobe` (`[encode]`). A node
//! without aerender takes encode work only; a node with neither refuses to start. What was found
//! goes to the control plane as the node's capabilities, at registration and with the first
//! heartbeat of every agent run (a stored credential skips registration, and ffmpeg may have
//! been installed or removed since).

use anyhow::bail;
use flatrender_proto::pb;
use tracing::{info, warn};

use super::Agent;
use crate::{
    config::AgentConfig,
    encode,
    runner::Encoder,
    supervisor::{self, AerenderInstall},
};

/// aerender and the encoder, as found.
#[derive(Debug)]
pub(super) struct Programs {
    /// `None`: encode-only.
    pub install: Option<AerenderInstall>,
    /// `None`: no encode work.
    pub encoder: Option<Encoder>,
}

/// Finds aerender and the encoder. Errors when aerender is required and missing, or when the
/// node would have nothing to run.
pub(super) async fn find(config: &AgentConfig, tag_prefix: &str) -> anyhow::Result<Programs> {
    let configured = (!config.aerender.path.as_os_str().is_empty()).then_some(config.aerender.path.clone());
    let found = tokio::task::spawn_blocking(move || supervisor::find_aerender(configured.as_deref())).await?;
    let install = match found {
        Ok(install) => {
            info!(aerender = %install.path.display(), version = ?install.version, "found aerender");
            Some(install)
        }
        Err(error) if config.aerender.required => return Err(error.into()),
        Err(error) => {
            info!(%error, "no aerender (aerender.required = false): this node takes encode work only");
            None
        }
    };
    let encoder = if config.encode.enabled {
        let tools = config.encode.tools();
        match encode::detect(&tools, &format!("{tag_prefix}detect")).await {
            Ok(versions) => {
                info!(
                    ffmpeg = %versions.ffmpeg.version,
                    ffprobe = %versions.ffprobe.version,
                    "found the encoder; this node takes encode work"
                );
                Some(Encoder { tools, versions })
            }
            Err(error) => {
                warn!(%error, "no encoder: this node takes no encode work");
                None
            }
        }
    } else {
        info!("encoding is off (encode.enabled = false): this node takes no encode work");
        None
    };
    if install.is_none() && encoder.is_none() {
        bail!(
            "nothing to run: no aerender (aerender.required = false) and no encoder; install FFmpeg or \
             configure encode.ffmpeg and encode.ffprobe, or install After Effects"
        );
    }
    Ok(Programs { install, encoder })
}

/// The capabilities of a node with `programs`.
pub(super) fn capabilities(install: Option<&AerenderInstall>, encoder: Option<&Encoder>) -> pb::NodeCapabilities {
    pb::NodeCapabilities {
        encoder: encoder.map(|encoder| pb::Encoder {
            ffmpeg_version: encoder.versions.ffmpeg.version.clone(),
            ffprobe_version: encoder.versions.ffprobe.version.clone(),
        }),
        encode_only: install.is_none(),
    }
}

impl Agent {
    /// What this node reports it can do.
    pub(super) fn capabilities(&self) -> pb::NodeCapabilities {
        capabilities(self.chunk.install.as_ref(), self.chunk.encoder.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::encode::{FfmpegTools, FfmpegVersions, ToolVersion};

    fn encoder() -> Encoder {
        let version = |version: &str| ToolVersion {
            version: version.into(),
            release: Some((5, 1)),
        };
        Encoder {
            tools: FfmpegTools::default(),
            versions: FfmpegVersions {
                ffmpeg: version("5.1.6-0+deb12u1"),
                ffprobe: version("5.1.7"),
            },
        }
    }

    /// The encoder's versions go up as found; a node without aerender says it is encode-only.
    #[test]
    fn capabilities_say_what_was_found() {
        let install = AerenderInstall {
            path: PathBuf::from("/ae/aerender"),
            version: None,
        };
        let both = capabilities(Some(&install), Some(&encoder()));
        assert_eq!(
            both,
            pb::NodeCapabilities {
                encoder: Some(pb::Encoder {
                    ffmpeg_version: "5.1.6-0+deb12u1".into(),
                    ffprobe_version: "5.1.7".into(),
                }),
                encode_only: false,
            }
        );
        let render_only = capabilities(Some(&install), None);
        assert_eq!(render_only.encoder, None);
        assert!(!render_only.encode_only);
        let encode_only = capabilities(None, Some(&encoder()));
        assert!(encode_only.encode_only && encode_only.encoder.is_some());
    }

    /// Without aerender, a required aerender stops the start; an optional one needs an encoder.
    #[tokio::test]
    async fn missing_programs_refuse_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AgentConfig::default();
        config.aerender.path = dir.path().join("no-aerender");
        config.encode.ffmpeg = dir.path().join("no-ffmpeg");
        let error = find(&config, "programs-test/").await.unwrap_err();
        assert!(error.to_string().contains("no-aerender"), "{error}");
        config.aerender.required = false;
        let error = find(&config, "programs-test/").await.unwrap_err();
        assert!(error.to_string().contains("nothing to run"), "{error}");
        config.encode.enabled = false;
        let error = find(&config, "programs-test/").await.unwrap_err();
        assert!(error.to_string().contains("nothing to run"), "{error}");
    }
}
