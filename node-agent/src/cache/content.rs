//! What a cache holds ([`CacheContent`]: templates or assets) and what one download is asked
//! for ([`EntryRequest`]), so that one machinery serves the template and the asset cache.

use std::fmt;

use flatrender_proto::types::{ContentHash, HttpUrl, TemplateId};

use super::TemplateSpec;
use super::manifest;

/// What a cache folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheContent {
    /// Projects and zip bundles (extracted), reported in the inventory.
    Templates,
    /// Single files the fields of saved projects name, never extracted, never reported.
    Assets,
}

impl CacheContent {
    /// Whether an installed entry of `kind` belongs in this cache.
    pub(crate) fn holds(self, kind: manifest::EntryKind) -> bool {
        match self {
            Self::Templates => matches!(kind, manifest::EntryKind::Project | manifest::EntryKind::Bundle),
            Self::Assets => kind == manifest::EntryKind::Asset,
        }
    }
}

impl fmt::Display for CacheContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Templates => "template",
            Self::Assets => "asset",
        })
    }
}

/// One entry to fetch, whatever the cache holds: a template's or an asset's description.
#[derive(Clone, Debug)]
pub(crate) struct EntryRequest {
    pub(crate) url: HttpUrl,
    pub(crate) hash: ContentHash,
    pub(crate) size_bytes: u64,
    pub(crate) template_id: Option<TemplateId>,
    pub(crate) template_version: i32,
    /// An asset's file name as the request gave it (its extension is kept); `None` for templates.
    pub(crate) file_name: Option<String>,
}

impl From<&TemplateSpec> for EntryRequest {
    fn from(template: &TemplateSpec) -> Self {
        Self {
            url: template.url.clone(),
            hash: template.hash,
            size_bytes: template.size_bytes,
            template_id: template.template_id,
            template_version: template.version,
            file_name: None,
        }
    }
}
