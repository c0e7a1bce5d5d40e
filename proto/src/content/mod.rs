//! A saved project's content as the control plane stores it and a node applies it: scenes' field
//! values, the assets they name, and the project's audio (`audio`). Validated from the wire once
//! (`*_from_wire`, errors naming the exact field, e.g. `scenes[1].fields["headline"].color`) and
//! converted back (`*_to_wire`). The limits are those of `docs/content.md`.

mod audio;
mod color;

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use audio::{MAX_SOUND_EFFECTS, Music, ProjectAudio, SoundEffect, Voiceover, VoiceoverSource};
pub use color::Color;

use crate::pb;
use crate::types::{ContentHash, FieldError, HttpUrl};

/// Fields a scene may carry.
pub const MAX_FIELDS_PER_SCENE: usize = 100;
/// Characters of a text value.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Characters of a layer name, a select option or a character reference.
pub const MAX_NAME_CHARS: usize = 255;
/// Characters of a property path.
pub const MAX_PROPERTY_CHARS: usize = 1024;
/// Bytes of one asset (16 GiB).
pub const MAX_ASSET_BYTES: u64 = 16 << 30;

/// A field's key (`content.scene_fields.key`): `[A-Za-z_][A-Za-z0-9_]{0,62}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldKey(String);

impl FieldKey {
    /// Validates `key`; `field` names it in errors.
    pub fn parse(key: &str, field: &str) -> Result<Self, FieldError> {
        let mut chars = key.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || key.len() > 63 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(FieldError::new(
                field,
                "must match [A-Za-z_][A-Za-z0-9_]{0,62} (a scene field's key)",
            ));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file the node downloads and checks by its BLAKE3 before anything uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    /// Where it is downloaded from.
    pub url: HttpUrl,
    /// BLAKE3 of the file: the node cache key.
    pub hash: ContentHash,
    /// Its size.
    pub size_bytes: u64,
    /// File name with extension (the importer is picked by it): the request's, or the URL's last
    /// path segment.
    pub file_name: String,
}

impl Asset {
    /// Validates a wire asset; `field` is its path (`scenes[0].fields["logo"].image`).
    pub fn from_wire(asset: &pb::Asset, field: &str) -> Result<Self, FieldError> {
        let url = HttpUrl::parse(&asset.url, &format!("{field}.url"))?;
        let hash = ContentHash::parse_hex(&asset.blake3_hex, &format!("{field}.blake3_hex"))?;
        let size_bytes = u64::try_from(asset.size_bytes)
            .ok()
            .filter(|size| (1..=MAX_ASSET_BYTES).contains(size))
            .ok_or_else(|| {
                FieldError::new(
                    format!("{field}.size_bytes"),
                    format!("must be between 1 and {MAX_ASSET_BYTES}"),
                )
            })?;
        let file_name = if asset.file_name.is_empty() {
            let name = url_file_name(url.as_str());
            check_file_name(name).map_err(|message| {
                FieldError::new(
                    format!("{field}.file_name"),
                    format!("is required when the URL's path does not end in a usable file name ({message})"),
                )
            })?;
            name.to_owned()
        } else {
            check_file_name(&asset.file_name)
                .map_err(|message| FieldError::new(format!("{field}.file_name"), message))?;
            asset.file_name.clone()
        };
        Ok(Self {
            url,
            hash,
            size_bytes,
            file_name,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> pb::Asset {
        pb::Asset {
            url: self.url.to_string(),
            blake3_hex: self.hash.to_hex(),
            size_bytes: i64::try_from(self.size_bytes).unwrap_or(i64::MAX),
            file_name: self.file_name.clone(),
        }
    }
}

/// The last segment of a URL's path (without query or fragment).
fn url_file_name(url: &str) -> &str {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = without_scheme.split(['?', '#']).next().unwrap_or_default();
    match path.split_once('/') {
        Some((_host, path)) => path.rsplit('/').next().unwrap_or_default(),
        None => "",
    }
}

fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 bytes");
    }
    if name.chars().any(|c| matches!(c, '/' | '\\' | ':') || c.is_control()) {
        return Err("must not contain path separators, ':' or control characters");
    }
    if name == "." || name == ".." {
        return Err("must not be a relative path component");
    }
    Ok(())
}

/// A typed field value: the kind is the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// Text for a text layer.
    Text(String),
    /// A finite number for a property.
    Number(f64),
    /// A switch.
    Boolean(bool),
    /// A colour.
    Color(Color),
    /// The chosen option.
    Select(String),
    /// An image file.
    Image(Asset),
    /// A video file.
    Video(Asset),
    /// An audio file.
    Audio(Asset),
    /// A composition of the template to show.
    Character(String),
}

impl FieldValue {
    /// The kind's name, as in `content.scene_fields.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Number(_) => "number",
            Self::Boolean(_) => "boolean",
            Self::Color(_) => "color",
            Self::Select(_) => "select",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Audio(_) => "audio",
            Self::Character(_) => "character",
        }
    }

    /// The file the value names, if it is an asset.
    pub fn asset(&self) -> Option<&Asset> {
        match self {
            Self::Image(asset) | Self::Video(asset) | Self::Audio(asset) => Some(asset),
            _ => None,
        }
    }
}

/// The kind's name of a wire value, as in `content.scene_fields.kind` (clients that show a
/// field without validating it use this too).
pub fn wire_kind(value: &pb::field_value::Value) -> &'static str {
    use pb::field_value::Value;
    match value {
        Value::Text(_) => "text",
        Value::Number(_) => "number",
        Value::Boolean(_) => "boolean",
        Value::Color(_) => "color",
        Value::Select(_) => "select",
        Value::Image(_) => "image",
        Value::Video(_) => "video",
        Value::Audio(_) => "audio",
        Value::Character(_) => "character",
    }
}

/// One field of a scene: where the value goes and what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The field's key, unique in its scene.
    pub key: FieldKey,
    /// The layer of the scene's composition.
    pub layer: String,
    /// A `>`-separated property path on that layer, where the template needs one.
    pub property: Option<String>,
    /// The value.
    pub value: FieldValue,
}

impl Field {
    /// The wire form.
    pub fn to_wire(&self) -> pb::FieldValue {
        use pb::field_value::Value;
        let value = match &self.value {
            FieldValue::Text(text) => Value::Text(text.clone()),
            FieldValue::Number(number) => Value::Number(*number),
            FieldValue::Boolean(flag) => Value::Boolean(*flag),
            FieldValue::Color(color) => Value::Color(color.to_hex()),
            FieldValue::Select(option) => Value::Select(option.clone()),
            FieldValue::Image(asset) => Value::Image(asset.to_wire()),
            FieldValue::Video(asset) => Value::Video(asset.to_wire()),
            FieldValue::Audio(asset) => Value::Audio(asset.to_wire()),
            FieldValue::Character(name) => Value::Character(name.clone()),
        };
        pb::FieldValue {
            key: self.key.to_string(),
            layer_name: self.layer.clone(),
            property: self.property.clone().unwrap_or_default(),
            value: Some(value),
        }
    }
}

/// Validates a scene's fields; `scene_field` is the scene's path (`scenes[1]`), so errors read
/// `scenes[1].fields["headline"].color: …` (or `scenes[1].fields[3].key` when the key itself is
/// bad). Keys must be unique.
pub fn fields_from_wire(fields: &[pb::FieldValue], scene_field: &str) -> Result<Vec<Field>, FieldError> {
    if fields.len() > MAX_FIELDS_PER_SCENE {
        return Err(FieldError::new(
            format!("{scene_field}.fields"),
            format!("must have at most {MAX_FIELDS_PER_SCENE} fields"),
        ));
    }
    let mut seen = HashSet::new();
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let key = FieldKey::parse(&field.key, &format!("{scene_field}.fields[{index}].key"))?;
            let path = format!("{scene_field}.fields[\"{key}\"]");
            if !seen.insert(key.clone()) {
                return Err(FieldError::new(path, "duplicate key in this scene"));
            }
            field_from_wire(field, key, &path)
        })
        .collect()
}

fn field_from_wire(field: &pb::FieldValue, key: FieldKey, path: &str) -> Result<Field, FieldError> {
    use pb::field_value::Value;
    let layer = bounded(&field.layer_name, &format!("{path}.layer_name"), 1, MAX_NAME_CHARS)?;
    let property = property_path(&field.property, &format!("{path}.property"))?;
    let value = match field.value.as_ref() {
        None => {
            return Err(FieldError::new(
                format!("{path}.value"),
                "is required: one of text, number, boolean, color, select, image, video, audio, character \
                 (a kind this server does not know arrives as none)",
            ));
        }
        Some(Value::Text(text)) => FieldValue::Text(bounded(text, &format!("{path}.text"), 0, MAX_TEXT_CHARS)?),
        Some(Value::Number(number)) if number.is_finite() => FieldValue::Number(*number),
        Some(Value::Number(_)) => return Err(FieldError::new(format!("{path}.number"), "must be finite")),
        Some(Value::Boolean(flag)) => FieldValue::Boolean(*flag),
        Some(Value::Color(hex)) => FieldValue::Color(Color::parse(hex, &format!("{path}.color"))?),
        Some(Value::Select(option)) => {
            FieldValue::Select(bounded(option, &format!("{path}.select"), 0, MAX_NAME_CHARS)?)
        }
        Some(Value::Image(asset)) => FieldValue::Image(Asset::from_wire(asset, &format!("{path}.image"))?),
        Some(Value::Video(asset)) => FieldValue::Video(Asset::from_wire(asset, &format!("{path}.video"))?),
        Some(Value::Audio(asset)) => FieldValue::Audio(Asset::from_wire(asset, &format!("{path}.audio"))?),
        Some(Value::Character(name)) => {
            FieldValue::Character(bounded(name, &format!("{path}.character"), 1, MAX_NAME_CHARS)?)
        }
    };
    Ok(Field {
        key,
        layer,
        property,
        value,
    })
}

/// Text of `min..=max` characters without control characters other than newline and tab.
fn bounded(text: &str, field: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let count = text.chars().count();
    if count < min {
        return Err(FieldError::new(field, "is required"));
    }
    if count > max {
        return Err(FieldError::new(field, format!("must be at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

fn property_path(path: &str, field: &str) -> Result<Option<String>, FieldError> {
    if path.is_empty() {
        return Ok(None);
    }
    let path = bounded(path, field, 1, MAX_PROPERTY_CHARS)?;
    if path.contains(['\n', '\r', '\t']) {
        return Err(FieldError::new(field, "must not contain line breaks or tabs"));
    }
    if path.split('>').any(|step| step.trim().is_empty()) {
        return Err(FieldError::new(field, "must be '>'-separated names with no empty step"));
    }
    Ok(Some(path))
}

/// A scene as a node renders it: its place in play order and the user's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneContent {
    /// Play order, from 0.
    pub index: u32,
    /// `content.scenes.id`, when the scene has one.
    pub scene_id: Option<Uuid>,
    /// The values to apply.
    pub fields: Vec<Field>,
}

impl SceneContent {
    /// Validates an assignment's scene (a node checks what it is sent too).
    pub fn from_wire(scene: &pb::AssignedScene, field: &str) -> Result<Self, FieldError> {
        let index =
            u32::try_from(scene.index).map_err(|_| FieldError::new(format!("{field}.index"), "must be >= 0"))?;
        let scene_id = optional_uuid(&scene.scene_id, &format!("{field}.scene_id"))?;
        let fields = fields_from_wire(&scene.fields, field)?;
        Ok(Self {
            index,
            scene_id,
            fields,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> pb::AssignedScene {
        pb::AssignedScene {
            index: i32::try_from(self.index).unwrap_or(i32::MAX),
            scene_id: self.scene_id.map(|id| id.to_string()).unwrap_or_default(),
            fields: self.fields.iter().map(Field::to_wire).collect(),
        }
    }

    /// The distinct assets the fields name, in field order.
    pub fn assets(&self) -> Vec<&Asset> {
        let mut seen = HashSet::new();
        self.fields
            .iter()
            .filter_map(|field| field.value.asset())
            .filter(|asset| seen.insert(asset.hash))
            .collect()
    }
}

/// Size of a delivered video: a height, with the width at 16:9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resolution {
    /// 854×480.
    #[serde(rename = "480p")]
    P480,
    /// 1280×720.
    #[serde(rename = "720p")]
    P720,
    /// 1920×1080.
    #[serde(rename = "1080p")]
    P1080,
    /// 3840×2160.
    #[serde(rename = "4k")]
    K4,
}

impl Resolution {
    /// From the wire; `UNSPECIFIED` is `None`, unknown numbers name `field`.
    pub fn from_wire_optional(value: i32, field: &str) -> Result<Option<Self>, FieldError> {
        match pb::Resolution::try_from(value) {
            Ok(pb::Resolution::Unspecified) => Ok(None),
            Ok(pb::Resolution::Resolution480p) => Ok(Some(Self::P480)),
            Ok(pb::Resolution::Resolution720p) => Ok(Some(Self::P720)),
            Ok(pb::Resolution::Resolution1080p) => Ok(Some(Self::P1080)),
            Ok(pb::Resolution::Resolution4k) => Ok(Some(Self::K4)),
            Err(_) => Err(FieldError::new(field, "must be a known Resolution")),
        }
    }

    /// The wire number.
    pub fn to_wire(self) -> i32 {
        (match self {
            Self::P480 => pb::Resolution::Resolution480p,
            Self::P720 => pb::Resolution::Resolution720p,
            Self::P1080 => pb::Resolution::Resolution1080p,
            Self::K4 => pb::Resolution::Resolution4k,
        }) as i32
    }

    /// Width and height in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Self::P480 => (854, 480),
            Self::P720 => (1280, 720),
            Self::P1080 => (1920, 1080),
            Self::K4 => (3840, 2160),
        }
    }

    /// `480p`, `720p`, `1080p` or `4k`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P480 => "480p",
            Self::P720 => "720p",
            Self::P1080 => "1080p",
            Self::K4 => "4k",
        }
    }
}

/// An optional UUID (empty: none).
pub fn optional_uuid(text: &str, field: &str) -> Result<Option<Uuid>, FieldError> {
    if text.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(text)
        .map(Some)
        .map_err(|_| FieldError::new(field, "must be a UUID"))
}

#[cfg(test)]
mod tests;
