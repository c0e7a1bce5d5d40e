//! Registration: a join token buys a node its id and node token.

use flatrender_proto::{
    pb,
    types::{FieldError, OperatingSystem, TokenKind},
};
use tonic::Request;
use tracing::instrument;

use crate::{
    api::{AppState, bounded_text, convert, validate_tags},
    error::ControlPlaneResult,
    nodes::{self, NodeRegistration},
    views::{EncoderVersions, NodeCapabilities},
};

fn validate_registration(request: &pb::RegisterNodeRequest) -> Result<NodeRegistration, FieldError> {
    let name = request.name.trim();
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(FieldError::new(
            "name",
            "must be 1..128 of letters, digits, '.', '_', '-', starting with a letter or digit",
        ));
    }
    let hostname = bounded_text(&request.hostname, "hostname", 255)?;
    if hostname.is_empty() {
        return Err(FieldError::new("hostname", "is required"));
    }
    let optional = |value: &str, field: &str, max: usize| -> Result<Option<String>, FieldError> {
        let text = bounded_text(value, field, max)?;
        Ok(if text.is_empty() { None } else { Some(text) })
    };
    let agent_version = bounded_text(&request.agent_version, "agent_version", 64)?;
    if agent_version.is_empty() {
        return Err(FieldError::new("agent_version", "is required"));
    }
    if request.cpu_cores <= 0 || request.cpu_cores > 4096 {
        return Err(FieldError::new("cpu_cores", "must be between 1 and 4096"));
    }
    if request.memory_bytes < 0 {
        return Err(FieldError::new("memory_bytes", "must be >= 0"));
    }
    validate_tags(&request.tags, "tags")?;
    let max_leases = match request.max_leases {
        0 => 1,
        value @ 1..=64 => value,
        _ => return Err(FieldError::new("max_leases", "must be between 1 and 64")),
    };
    Ok(NodeRegistration {
        name: name.to_owned(),
        hostname,
        os: OperatingSystem::from_wire(request.os, "os")?,
        os_version: optional(&request.os_version, "os_version", 128)?,
        ae_version: optional(&request.ae_version, "ae_version", 64)?,
        agent_version,
        cpu_cores: request.cpu_cores,
        memory_bytes: request.memory_bytes,
        tags: request.tags.clone(),
        max_leases,
        capabilities: capabilities(request.capabilities.as_ref(), "capabilities")?,
    })
}

/// What a node reports it can do besides rendering (unset: render only).
pub(super) fn capabilities(wire: Option<&pb::NodeCapabilities>, field: &str) -> Result<NodeCapabilities, FieldError> {
    let Some(wire) = wire else {
        return Ok(NodeCapabilities::default());
    };
    let encoder = match &wire.encoder {
        None => None,
        Some(encoder) => {
            let version = |value: &str, name: &str| -> Result<String, FieldError> {
                let name = format!("{field}.encoder.{name}");
                let text = bounded_text(value, &name, 128)?;
                if text.is_empty() {
                    return Err(FieldError::new(name, "is required when an encoder is reported"));
                }
                Ok(text)
            };
            Some(EncoderVersions {
                ffmpeg: version(&encoder.ffmpeg_version, "ffmpeg_version")?,
                ffprobe: version(&encoder.ffprobe_version, "ffprobe_version")?,
            })
        }
    };
    if wire.encode_only && encoder.is_none() {
        return Err(FieldError::new(
            format!("{field}.encode_only"),
            "a node without After Effects takes encode work only, so it must report an encoder",
        ));
    }
    Ok(NodeCapabilities {
        encoder,
        encode_only: wire.encode_only,
    })
}

#[instrument(skip_all, fields(name = %request.get_ref().name))]
pub(super) async fn register_node(
    state: &AppState,
    request: Request<pb::RegisterNodeRequest>,
) -> ControlPlaneResult<pb::RegisterNodeResponse> {
    state.authorize(&request, &[TokenKind::Join]).await?;
    let registration = validate_registration(request.get_ref())?;
    let nodes::Registered {
        node_id,
        state: node_state,
        token: node_token,
    } = nodes::register(&state.pool, &state.nodes, &registration).await?;
    let dispatch = &state.config.dispatch;
    Ok(pb::RegisterNodeResponse {
        node_id: node_id.to_string(),
        node_token,
        heartbeat_interval: Some(convert::duration(dispatch.heartbeat_interval())),
        lease_ttl: Some(convert::duration(dispatch.lease_ttl())),
        state: node_state.to_wire(),
    })
}
