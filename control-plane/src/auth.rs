//! Bearer-token authentication. Every RPC carries `authorization: Bearer <token>`; tokens are
//! stored as BLAKE3 hashes in `render.api_tokens`. Lookups are cached briefly per process so a
//! heartbeat does not cost a database round trip. A cached token still stops working the
//! moment it expires, and a revocation is announced (`NOTIFY flatrender_token_revoked`) so every
//! replica drops it at once; a replica that cannot hear notifications clears its whole cache
//! when it hears again, and until then the cache lifetime (`server.auth_cache_seconds`) bounds
//! how long a revoked token lives there.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use flatrender_proto::types::{NodeId, TenantId, TokenId, TokenKind};
use sqlx::{PgPool, postgres::PgListener};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::{
    db::tokens,
    error::{ControlPlaneError, ControlPlaneResult},
    shutdown::sleep_or_shutdown,
};

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
    let secret = format!("fr_{}_{}", kind.as_str(), random_hex_secret());
    let hash = hash_token(&secret);
    (secret, hash)
}

/// 256 bits from the operating system's CSPRNG, as 64 hex digits (token secrets, passwords).
pub fn random_hex_secret() -> String {
    let mut bytes = [0_u8; 32];
    // The OS generator failing means the machine cannot make secrets at all: nothing sane is
    // left to do but stop.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
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
    let mut connection = pool.acquire().await?;
    create_token_in(&mut connection, kind, label, tenant_ids, node_id, expires_at).await
}

/// [`create_token`] on a given connection (inside the caller's transaction).
pub async fn create_token_in(
    connection: &mut sqlx::PgConnection,
    kind: TokenKind,
    label: &str,
    tenant_ids: Option<&[TenantId]>,
    node_id: Option<NodeId>,
    expires_at: Option<DateTime<Utc>>,
) -> ControlPlaneResult<(TokenId, String)> {
    let (secret, hash) = generate_token(kind);
    let id = tokens::insert(
        connection,
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

/// A cached lookup: who, since when, and until when the token itself is valid.
struct Cached {
    principal: Principal,
    cached_at: Instant,
    expires_at: Option<DateTime<Utc>>,
}

/// Resolves bearer tokens to principals, with a short per-process cache.
pub struct Authenticator {
    pool: PgPool,
    cache_ttl: Duration,
    // Short critical sections without awaits: a std mutex is enough.
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Authenticator {
    /// An authenticator over `pool` caching lookups for `cache_ttl`.
    pub fn new(pool: PgPool, cache_ttl: Duration) -> Self {
        Self {
            pool,
            cache_ttl,
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
        self.lock_cache().insert(
            hash,
            Cached {
                principal: principal.clone(),
                cached_at: Instant::now(),
                expires_at: row.expires_at,
            },
        );
        Ok(principal)
    }

    /// Forgets cached lookups of `token_id` (it was revoked).
    pub fn forget(&self, token_id: TokenId) {
        self.lock_cache()
            .retain(|_, cached| cached.principal.token_id != token_id);
    }

    /// Listens for revocations announced by any replica until `shutdown`, forgetting them here.
    pub async fn follow_revocations(&self, shutdown: CancellationToken) {
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(tokens::REVOKED_CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            }
            .await;
            let mut listener = match listening {
                Ok(listener) => listener,
                Err(error) => {
                    warn!(%error, "cannot listen for token revocations; retrying");
                    if sleep_or_shutdown(Duration::from_secs(1), &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            // Revocations may have been missed while not listening.
            self.lock_cache().clear();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => match uuid::Uuid::parse_str(notification.payload()) {
                            Ok(id) => {
                                debug!(token_id = %id, "token revoked elsewhere; forgotten");
                                self.forget(TokenId::from_uuid(id));
                            }
                            Err(_) => self.lock_cache().clear(),
                        },
                        Err(error) => {
                            warn!(%error, "revocation listener lost its connection; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Principal> {
        let mut cache = self.lock_cache();
        let fresh = cache.get(hash).map(|cached| {
            cached.cached_at.elapsed() < self.cache_ttl && cached.expires_at.is_none_or(|at| at > Utc::now())
        })?;
        if fresh {
            return cache.get(hash).map(|cached| cached.principal.clone());
        }
        cache.remove(hash);
        None
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
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

    /// Secrets are 64 hex digits of fresh randomness.
    #[test]
    fn secrets_are_256_random_bits() {
        let first = random_hex_secret();
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(first, random_hex_secret());
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
