//! `render.api_tokens`: bearer tokens, stored as BLAKE3 hashes.

use chrono::{DateTime, Utc};
use flatrender_proto::types::{NodeId, TenantId, TokenId, TokenKind};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DbError;

/// A token row as the authenticator needs it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: Uuid,
    pub kind: String,
    pub tenant_ids: Option<Vec<Uuid>>,
    pub node_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The channel a revocation is announced on (payload: the token id), so every replica drops
/// it from its cache at once.
pub const REVOKED_CHANNEL: &str = "flatrender_token_revoked";

/// What a new token is for.
pub(crate) struct NewToken<'a> {
    pub kind: TokenKind,
    pub hash: &'a [u8; 32],
    pub label: &'a str,
    pub tenant_ids: Option<&'a [TenantId]>,
    pub node_id: Option<NodeId>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a token hash and returns its id.
pub(crate) async fn insert(connection: &mut PgConnection, token: NewToken<'_>) -> Result<TokenId, DbError> {
    let tenant_ids: Option<Vec<Uuid>> = token.tenant_ids.map(|ids| ids.iter().map(TenantId::as_uuid).collect());
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO render.api_tokens (kind, token_hash, label, tenant_ids, node_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(token.kind.as_str())
    .bind(&token.hash[..])
    .bind(token.label)
    .bind(tenant_ids)
    .bind(token.node_id.map(|id| id.as_uuid()))
    .bind(token.expires_at)
    .fetch_one(connection)
    .await?;
    Ok(TokenId::from_uuid(id))
}

/// Looks up a live (unrevoked, unexpired) token by hash and records its use.
pub(crate) async fn find_live(connection: &mut PgConnection, hash: &[u8; 32]) -> Result<Option<TokenRow>, DbError> {
    let row = sqlx::query_as::<_, TokenRow>(
        "UPDATE render.api_tokens SET last_used_at = now()
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
         RETURNING id, kind, tenant_ids, node_id, expires_at",
    )
    .bind(&hash[..])
    .fetch_optional(connection)
    .await?;
    Ok(row)
}

/// Revokes a token and announces it; false when no live token has that id.
pub(crate) async fn revoke(connection: &mut PgConnection, id: TokenId) -> Result<bool, DbError> {
    let revoked: Vec<Uuid> = sqlx::query_scalar(
        "WITH revoked AS (
             UPDATE render.api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id
         )
         SELECT id FROM revoked, LATERAL (SELECT pg_notify($2, id::text)) AS announced",
    )
    .bind(id.as_uuid())
    .bind(REVOKED_CHANNEL)
    .fetch_all(connection)
    .await?;
    Ok(revoked.len() == 1)
}

/// Revokes every node token of `node_id` except `keep` (re-registration replaces the token).
pub(crate) async fn revoke_node_tokens_except(
    connection: &mut PgConnection,
    node_id: NodeId,
    keep: TokenId,
) -> Result<(), DbError> {
    sqlx::query(
        "WITH revoked AS (
             UPDATE render.api_tokens SET revoked_at = now()
             WHERE kind = 'node' AND node_id = $1 AND id <> $2 AND revoked_at IS NULL RETURNING id
         )
         SELECT id FROM revoked, LATERAL (SELECT pg_notify($3, id::text)) AS announced",
    )
    .bind(node_id.as_uuid())
    .bind(keep.as_uuid())
    .bind(REVOKED_CHANNEL)
    .execute(connection)
    .await?;
    Ok(())
}
