//! Tokens: create (join, service, admin; node tokens come from RegisterNode) and revoke.

use flatrender_proto::{
    pb,
    types::{FieldError, TenantId, TokenId, TokenKind},
};
use tonic::Request;
use tracing::{info, instrument};

use super::ADMIN;
use crate::{
    api::{AppState, bounded_text, convert},
    auth, db,
    error::{ControlPlaneError, ControlPlaneResult},
};

#[instrument(skip_all)]
pub(super) async fn create_token(
    state: &AppState,
    request: Request<pb::CreateTokenRequest>,
) -> ControlPlaneResult<pb::CreateTokenResponse> {
    state.authorize(&request, ADMIN).await?;
    let message = request.get_ref();
    let kind = TokenKind::from_wire(message.kind, "kind")?;
    if kind == TokenKind::Node {
        return Err(FieldError::new("kind", "node tokens are issued by RegisterNode; create a join token").into());
    }
    let label = bounded_text(&message.label, "label", 200)?;
    let tenant_ids = message
        .tenant_ids
        .iter()
        .enumerate()
        .map(|(index, id)| TenantId::parse_field(id, &format!("tenant_ids[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if !tenant_ids.is_empty() && kind != TokenKind::Service {
        return Err(FieldError::new("tenant_ids", "only service tokens are scoped to tenants").into());
    }
    let expires_at = match message.ttl.as_ref() {
        None => None,
        Some(ttl) => {
            let ttl = convert::from_duration(Some(ttl))
                .filter(|ttl| !ttl.is_zero())
                .ok_or_else(|| FieldError::new("ttl", "must be positive"))?;
            Some(convert::from_now(ttl).ok_or_else(|| FieldError::new("ttl", "is too far in the future"))?)
        }
    };
    let scope = (!tenant_ids.is_empty()).then_some(tenant_ids.as_slice());
    let (token_id, token) = auth::create_token(&state.pool, kind, &label, scope, None, expires_at).await?;
    info!(%token_id, %kind, label = %label, "token created");
    Ok(pb::CreateTokenResponse {
        token_id: token_id.to_string(),
        token,
    })
}

#[instrument(skip_all, fields(token_id = %request.get_ref().token_id))]
pub(super) async fn revoke_token(
    state: &AppState,
    request: Request<pb::RevokeTokenRequest>,
) -> ControlPlaneResult<pb::RevokeTokenResponse> {
    state.authorize(&request, ADMIN).await?;
    let token_id = TokenId::parse_field(&request.get_ref().token_id, "token_id")?;
    let mut connection = state.pool.acquire().await?;
    if !db::tokens::revoke(&mut connection, token_id).await? {
        return Err(ControlPlaneError::NotFound(format!("live token {token_id}")));
    }
    state.auth.forget(token_id);
    info!(%token_id, "token revoked");
    Ok(pb::RevokeTokenResponse {})
}
