//! UUID-backed identifiers, one type per entity so they cannot be mixed up.

use std::{fmt, str::FromStr};

use uuid::Uuid;

use super::FieldError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID (from the database or a fresh one).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A new random id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses a wire value; `field` names it in the error. Empty and nil are refused.
            pub fn parse_field(value: &str, field: &str) -> Result<Self, FieldError> {
                if value.is_empty() {
                    return Err(FieldError::new(field, "is required"));
                }
                let uuid = Uuid::parse_str(value).map_err(|_| FieldError::new(field, "must be a UUID"))?;
                if uuid.is_nil() {
                    return Err(FieldError::new(field, "must not be the nil UUID"));
                }
                Ok(Self(uuid))
            }

            /// Like [`Self::parse_field`], but an empty value is `None`.
            pub fn parse_optional_field(value: &str, field: &str) -> Result<Option<Self>, FieldError> {
                if value.is_empty() { Ok(None) } else { Self::parse_field(value, field).map(Some) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse_field(value, stringify!($name))
            }
        }
    };
}

uuid_id!(
    /// A tenant (`identity.tenants.id`): the root of multi-tenancy.
    TenantId
);
uuid_id!(
    /// A user (`identity.users.id`).
    UserId
);
uuid_id!(
    /// A render job (`render.render_jobs.id`).
    JobId
);
uuid_id!(
    /// A frame chunk of a job (`render.frame_jobs.id`).
    FrameJobId
);
uuid_id!(
    /// A render node (`render.nodes.id`).
    NodeId
);
uuid_id!(
    /// A template (`content.templates.id`).
    TemplateId
);
uuid_id!(
    /// An API token (`render.api_tokens.id`).
    TokenId
);

/// The tenant every FlatRender-owned row belongs to (seeded by `01_identity_tenants.sql`).
pub const DEFAULT_TENANT_ID: TenantId = TenantId::from_uuid(Uuid::from_u128(1));

#[cfg(test)]
mod tests {
    use super::*;

    /// The default tenant constant is the UUID the seed names.
    #[test]
    fn default_tenant_matches_seed() {
        assert_eq!(DEFAULT_TENANT_ID.to_string(), "00000000-0000-0000-0000-000000000001");
    }

    /// Empty, malformed and nil ids are refused with the field's name.
    #[test]
    fn parsing_names_the_field() {
        assert_eq!(
            JobId::parse_field("", "job_id").unwrap_err().to_string(),
            "job_id: is required"
        );
        assert_eq!(
            JobId::parse_field("x", "job_id").unwrap_err().to_string(),
            "job_id: must be a UUID"
        );
        let nil = Uuid::nil().to_string();
        assert!(JobId::parse_field(&nil, "job_id").unwrap_err().message.contains("nil"));
        let id = JobId::new_random();
        assert_eq!(JobId::parse_field(&id.to_string(), "job_id").unwrap(), id);
        assert_eq!(JobId::parse_optional_field("", "job_id").unwrap(), None);
    }
}
