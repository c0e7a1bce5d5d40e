//! Validated ids and values shared by the control plane, the node agent and the tests.

use std::fmt;

use uuid::Uuid;

/// The tenant every FlatRender-owned row belongs to (seeded by `01_identity_tenants.sql`).
pub const DEFAULT_TENANT_ID: TenantId = TenantId(Uuid::from_u128(1));

/// A tenant (`identity.tenants.id`): the root of multi-tenancy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Wraps an already-validated UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default tenant constant is the UUID the seed names.
    #[test]
    fn default_tenant_matches_seed() {
        assert_eq!(DEFAULT_TENANT_ID.to_string(), "00000000-0000-0000-0000-000000000001");
    }
}
