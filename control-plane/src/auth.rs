//! Bearer-token authentication. Every RPC carries `authorization: Bearer <token>`; tokens are
//! stored as BLAKE3 hashes in `render.api_tokens`. Lookups are cached briefly per process so a
//! heartbeat does not cost a database round trip; a revocation reaches other control-plane
//! instances within the cache lifetime.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use flatrender_proto::types::{NodeId, TenantId, TokenId, TokenKind};
use sqlx::PgPool;
use tokio::time::Instant;

use crate::{
    db::tokens,
    error::{ControlPlaneError, ControlPlaneResult},
};

const CACHE_TTL: Duration = Duration::from_secs(10);

/// Which tenants a caller may act for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantScope {
    /// Every tenant (admin tokens, unscoped service tokens).
    All,
    /// Only these.
    Only(Vec<TenantId>),
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token used.
    pub token_id: TokenId,
    /// Its kind.
    pub kind: TokenKind,
    /// Tenants it may act for.
    pub scope: TenantScope,
    /// The node, for node tokens.
    pub node_id: Option<NodeId>,
}

impl Principal {
    /// Refuses callers whose token kind is not in `allowed`.
    pub fn require(&self, allowed: &[TokenKind]) -> ControlPlaneResult<()> {
        if allowed.contains(&self.kind) {
            return Ok(());
        }
        Err(ControlPlaneError::PermissionDenied(format!(
            "a {} token cannot call this method",
            self.kind
        )))
    }

    /// The node of a node token.
    pub fn node(&self) -> ControlPlaneResult<NodeId> {
        self.node_id
            .ok_or_else(|| ControlPlaneError::PermissionDenied("a node token is required".into()))
    }

    /// Whether the caller may see and change `tenant`'s jobs.
    pub fn can_access(&self, tenant: TenantId) -> bool {
        match &self.scope {
            TenantScope::All => true,
            TenantScope::Only(tenants) => tenants.contains(&tenant),
        }
    }
}

/// A new secret token: `fr_<kind>_<64 hex>` and its hash.
pub fn generate_token(kind: TokenKind) -> (String, [u8; 32]) {
    let secret = format!("fr_{}_{}", kind.as_str(), crate::embedded_pg::random_hex_secret());
    let hash = hash_token(&secret);
    (secret, hash)
}

/// BLAKE3 of a token's text.
pub fn hash_token(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Creates a token in the database and returns its id and secret (shown once).
pub async fn create_token(
    pool: &PgPool,
    kind: TokenKind,
    label: &str,
    tenant_ids: Option<&[TenantId]>,
    node_id: Option<NodeId>,
    expires_at: Option<DateTime<Utc>>,
) -> ControlPlaneResult<(TokenId, String)> {
    let (secret, hash) = generate_token(kind);
    let mut connection = pool.acquire().await?;
    let id = tokens::insert(
        &mut connection,
        tokens::NewToken {
            kind,
            hash: &hash,
            label,
            tenant_ids,
            node_id,
            expires_at,
        },
    )
    .await?;
    Ok((id, secret))
}

/// Resolves bearer tokens to principals, with a short per-process cache.
pub struct Authenticator {
    pool: PgPool,
    // Short critical sections without awaits: a std mutex is enough.
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Authenticator {
    /// An authenticator over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the request's `authorization` header.
    pub async fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> ControlPlaneResult<Principal> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| ControlPlaneError::Unauthenticated("missing authorization: Bearer <token> header".into()))?;
        let value = header
            .to_str()
            .map_err(|_| ControlPlaneError::Unauthenticated("authorization header is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ControlPlaneError::Unauthenticated("authorization must be 'Bearer <token>'".into()))?;
        let hash = hash_token(token);
        if let Some(principal) = self.cached(&hash) {
            return Ok(principal);
        }
        let mut connection = self.pool.acquire().await?;
        let row = tokens::find_live(&mut connection, &hash)
            .await?
            .ok_or_else(|| ControlPlaneError::Unauthenticated("unknown, revoked or expired token".into()))?;
        let kind = TokenKind::parse(&row.kind)
            .ok_or_else(|| ControlPlaneError::Internal(format!("token {} has unknown kind {}", row.id, row.kind)))?;
        let scope = match row.tenant_ids {
            Some(ids) if kind == TokenKind::Service => {
                TenantScope::Only(ids.into_iter().map(TenantId::from_uuid).collect())
            }
            _ => TenantScope::All,
        };
        let principal = Principal {
            token_id: TokenId::from_uuid(row.id),
            kind,
            scope,
            node_id: row.node_id.map(NodeId::from_uuid),
        };
        self.lock_cache().insert(hash, (principal.clone(), Instant::now()));
        Ok(principal)
    }

    /// Forgets cached lookups of `token_id` (after a revocation on this instance).
    pub fn forget(&self, token_id: TokenId) {
        self.lock_cache()
            .retain(|_, (principal, _)| principal.token_id != token_id);
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.lock_cache();
        match cache.get(hash) {
            Some((principal, cached_at)) if cached_at.elapsed() < CACHE_TTL => Some(principal.clone()),
            Some(_) => {
                cache.remove(hash);
                None
            }
            None => None,
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Principal, Instant)>> {
        // A poisoned cache only means a panic elsewhere; its contents are still valid.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens carry their kind in the prefix and hash deterministically.
    #[test]
    fn generated_tokens_are_prefixed_and_hashed() {
        let (secret, hash) = generate_token(TokenKind::Admin);
        assert!(secret.starts_with("fr_admin_") && secret.len() == "fr_admin_".len() + 64);
        assert_eq!(hash_token(&secret), hash);
        assert_ne!(generate_token(TokenKind::Admin).0, secret);
    }

    /// Scoped principals see only their tenants; kinds are enforced.
    #[test]
    fn scopes_and_kinds() {
        let tenant = TenantId::new_random();
        let principal = Principal {
            token_id: TokenId::new_random(),
            kind: TokenKind::Service,
            scope: TenantScope::Only(vec![tenant]),
            node_id: None,
        };
        assert!(principal.can_access(tenant));
        assert!(!principal.can_access(TenantId::new_random()));
        assert!(principal.require(&[TokenKind::Service, TokenKind::Admin]).is_ok());
        assert!(principal.require(&[TokenKind::Node]).is_err());
        assert!(principal.node().is_err());
    }
}
