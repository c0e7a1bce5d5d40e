//! FlatRender's startup hook as the double plays it (docs/content.md, "Applying the values"):
//! `-r <script>` exists only when `Scripts/Startup/flatrender_hook.jsx` is next to the
//! executable, the script runs right before the `-comp` lookup, its `var FLATRENDER_DATA = …;`
//! line is checked field by field against the project's `layer` lines, and the PNG frames show
//! what was applied (a colour fill, `iTXt` chunks with every value).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::png;
use super::project::{LayerLookup, LayerType, Project};

/// The hook's file name in After Effects' `Scripts/Startup` folder.
pub const HOOK_FILE: &str = "flatrender_hook.jsx";
/// How the agent's generated script starts its one data line.
const DATA_PREFIX: &str = "var FLATRENDER_DATA = ";
/// Enough leading bytes to recognise every format `sniff` knows.
const MAGIC_LEN: u64 = 16;

/// Where AE would load the hook from: `<folder of the executable>/Scripts/Startup/`.
fn hook_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("Scripts").join("Startup").join(HOOK_FILE))
}

/// Whether the startup hook is installed, i.e. whether the script understands `-r`.
pub fn hook_installed() -> bool {
    hook_path().is_some_and(|path| path.is_file())
}

/// What a script applied; every PNG frame of the render shows it.
#[derive(Debug, PartialEq)]
pub struct Applied {
    /// The first colour field, premultiplied over black (the frames are RGB).
    fill: Option<[u8; 3]>,
    /// `flatrender:scene` then one `field:<key>` per field, in the data's order.
    texts: Vec<(String, String)>,
}

/// Why the script stopped the render before any frame (the caller exits 9, 10 with `-log`).
#[derive(Debug, PartialEq)]
pub enum ScriptFailure {
    /// The file could not be read.
    CannotOpen,
    /// Running it threw; the text is the `Error: …` line without `Error: `.
    Threw(String),
}

impl ScriptFailure {
    /// The lines the hook writes for this failure of the script at `path`.
    pub fn lines(&self, path: &str) -> Vec<String> {
        match self {
            Self::CannotOpen => {
                vec![format!(
                    "aerender ERROR: Can not open script file. Make sure path is correct: {path}"
                )]
            }
            Self::Threw(message) => vec![
                format!("aerender ERROR: Error executing script: {path}"),
                format!("Error: {message}"),
            ],
        }
    }
}

/// Runs the script at `path` against `project`: `Ok(None)` when it has no data line (some other
/// script: nothing to apply), `Ok(Some(_))` when every field applies.
pub fn run_script(path: &str, project: &Project) -> Result<Option<Applied>, ScriptFailure> {
    let bytes = std::fs::read(path).map_err(|_| ScriptFailure::CannotOpen)?;
    let text = String::from_utf8_lossy(&bytes);
    let Some(line) = text.lines().find(|line| line.starts_with(DATA_PREFIX)) else {
        return Ok(None);
    };
    let json = line[DATA_PREFIX.len()..]
        .trim_end()
        .strip_suffix(';')
        .ok_or_else(|| bad_data("the data line does not end with ';'"))?;
    let data: Value = serde_json::from_str(json).map_err(|error| bad_data(&error.to_string()))?;
    apply(&data, project).map(Some)
}

/// The PNG for one frame: the usual test card without a script, else what the script applied.
pub fn frame_image(applied: Option<&Applied>, width: u32, height: u32, comp_name: &str, frame: i64) -> Vec<u8> {
    match applied {
        None => png::frame_image(width, height, comp_name, frame),
        Some(applied) => png::frame_card(width, height, comp_name, frame, applied.fill, &applied.texts),
    }
}

fn bad_data(message: &str) -> ScriptFailure {
    ScriptFailure::Threw(format!("flatrender: bad data line: {message}"))
}

fn string_in<'a>(object: &'a Map<String, Value>, name: &str, whose: &str) -> Result<&'a str, ScriptFailure> {
    object
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_data(&format!("{whose} has no string \"{name}\"")))
}

/// Checks and applies every field in order; the first that cannot be applied stops everything.
fn apply(data: &Value, project: &Project) -> Result<Applied, ScriptFailure> {
    let data = data.as_object().ok_or_else(|| bad_data("not a JSON object"))?;
    match data.get("version") {
        Some(version) if version.as_u64() == Some(1) => {}
        Some(version) => return Err(bad_data(&format!("unsupported version {version}"))),
        None => return Err(bad_data("no \"version\"")),
    }
    let composition = string_in(data, "composition", "the data")?;
    let scene_index = data
        .get("scene_index")
        .filter(|index| index.is_u64())
        .ok_or_else(|| bad_data("no \"scene_index\" (a non-negative integer)"))?;
    let fields = data
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_data("no \"fields\" array"))?;
    if project.describes_comps() && project.comp(composition).is_none() {
        return Err(ScriptFailure::Threw(format!(
            "flatrender: no composition \"{composition}\""
        )));
    }
    let mut applied = Applied {
        fill: None,
        texts: vec![("flatrender:scene".to_owned(), format!("{scene_index} {composition}"))],
    };
    for (position, field) in fields.iter().enumerate() {
        let whose = format!("field {position}");
        let field = field
            .as_object()
            .ok_or_else(|| bad_data(&format!("{whose} is not an object")))?;
        let key = string_in(field, "key", &whose)?;
        let layer = string_in(field, "layer", &whose)?;
        let shown = check_field(field, layer, composition, project).map_err(|reason| {
            ScriptFailure::Threw(format!("flatrender: field \"{key}\" (layer \"{layer}\"): {reason}"))
        })?;
        if applied.fill.is_none() {
            applied.fill = shown.fill;
        }
        applied.texts.push((format!("field:{key}"), shown.text));
    }
    Ok(applied)
}

/// One field's value, parsed by its kind.
enum FieldValue<'a> {
    Text(&'a str),
    Number(&'a serde_json::Number),
    Boolean(bool),
    Color([f64; 4]),
    Asset {
        kind: AssetKind,
        path: &'a str,
        blake3: &'a str,
    },
    Character(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AssetKind {
    Image,
    Video,
    Audio,
}

/// What a field contributes to the frames.
struct Shown {
    text: String,
    fill: Option<[u8; 3]>,
}

fn parse_value<'a>(field: &'a Map<String, Value>, kind: &str) -> Result<FieldValue<'a>, String> {
    let bad = || format!("bad {kind} value");
    let string = |name: &str| field.get(name).and_then(Value::as_str).ok_or_else(bad);
    let asset = |kind| -> Result<FieldValue<'a>, String> {
        Ok(FieldValue::Asset {
            kind,
            path: string("path")?,
            blake3: string("blake3")?,
        })
    };
    match kind {
        "text" | "select" => string(kind).map(FieldValue::Text),
        "number" => match field.get("number") {
            Some(Value::Number(number)) => Ok(FieldValue::Number(number)),
            _ => Err(bad()),
        },
        "boolean" => field
            .get("boolean")
            .and_then(Value::as_bool)
            .map(FieldValue::Boolean)
            .ok_or_else(bad),
        "color" => {
            let channels: Vec<f64> = field
                .get("color")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|channel| channel.as_f64().filter(|value| (0.0..=1.0).contains(value)))
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            <[f64; 4]>::try_from(channels).map(FieldValue::Color).map_err(|_| bad())
        }
        "image" => asset(AssetKind::Image),
        "video" => asset(AssetKind::Video),
        "audio" => asset(AssetKind::Audio),
        "character" => string("character").map(FieldValue::Character),
        other => Err(format!("unknown kind \"{other}\"")),
    }
}

/// The layer type a kind needs when the field names no property (docs/content.md's table);
/// `Err` for a kind that always needs a property.
fn default_target(value: &FieldValue<'_>) -> Result<Option<(LayerType, &'static str)>, String> {
    Ok(match value {
        FieldValue::Text(_) => Some((LayerType::Text, "not a text layer")),
        FieldValue::Number(_) => return Err("needs a property".to_owned()),
        FieldValue::Boolean(_) => None,
        FieldValue::Color(_) => Some((LayerType::Solid, "not a solid layer")),
        FieldValue::Asset { .. } => Some((LayerType::Footage, "not a footage layer")),
        FieldValue::Character(_) => Some((LayerType::Precomp, "not a precomp layer")),
    })
}

/// Checks one field against the project; `Err` is the reason printed after the field's name.
fn check_field(field: &Map<String, Value>, layer_name: &str, comp: &str, project: &Project) -> Result<Shown, String> {
    let layer = match project.layer(comp, layer_name) {
        LayerLookup::Missing => return Err(format!("no layer of that name in composition \"{comp}\"")),
        LayerLookup::Found(layer) => Some(layer),
        LayerLookup::Undescribed => None,
    };
    let kind = field.get("kind").and_then(Value::as_str).unwrap_or_default();
    let value = parse_value(field, kind)?;
    let property = field.get("property").and_then(Value::as_str).unwrap_or_default();
    if property.is_empty() {
        if let (Some((needed, reason)), Some(layer)) = (default_target(&value)?, layer) {
            if layer.kind != needed {
                return Err(reason.to_owned());
            }
        }
    } else if layer.is_some_and(|layer| !layer.has_property(property)) {
        return Err(format!("no property \"{property}\""));
    }
    let (text, fill) = match value {
        FieldValue::Text(text) => (text.to_owned(), None),
        FieldValue::Number(number) => (number.to_string(), None),
        FieldValue::Boolean(flag) => (flag.to_string(), None),
        FieldValue::Color(rgba) => {
            let byte = |channel: f64| (channel * 255.0).round() as u8;
            let hex: String = rgba.iter().map(|channel| format!("{:02X}", byte(*channel))).collect();
            let over_black = [0, 1, 2].map(|index| byte(rgba[index] * rgba[3]));
            (format!("#{hex}"), Some(over_black))
        }
        FieldValue::Asset { kind, path, blake3 } => {
            import(kind, Path::new(path))?;
            (blake3.to_owned(), None)
        }
        FieldValue::Character(name) => {
            if project.describes_comps() && project.comp(name).is_none() {
                return Err(format!("no composition \"{name}\""));
            }
            (name.to_owned(), None)
        }
    };
    Ok(Shown { text, fill })
}

/// AE's import of an asset, as far as the double can judge it: the file exists and its first
/// bytes are a format of the field's kind.
fn import(kind: AssetKind, path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map_or_else(|| path.to_string_lossy(), |name| name.to_string_lossy());
    let fail = |message: &str| Err(format!("cannot import \"{name}\": {message}"));
    if !path.exists() {
        return fail("file not found");
    }
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|file| file.take(MAGIC_LEN).read_to_end(&mut head));
    if read.is_err() {
        return fail("the file cannot be read");
    }
    if sniff(kind, &head) {
        return Ok(());
    }
    match kind {
        AssetKind::Image => fail("the file is damaged or not a supported image format"),
        AssetKind::Video => fail("the file is damaged or not a supported video format"),
        AssetKind::Audio => fail("the file is damaged or not a supported audio format"),
    }
}

/// Whether `head` (a file's first bytes) starts a format AE imports as `kind`.
fn sniff(kind: AssetKind, head: &[u8]) -> bool {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let riff = |form: &[u8]| at(0, b"RIFF") && at(8, form);
    let gif = at(0, b"GIF87a") || at(0, b"GIF89a");
    let iso_bmff = at(4, b"ftyp");
    match kind {
        AssetKind::Image => {
            at(0, b"\x89PNG\r\n\x1a\n")
                || at(0, b"\xFF\xD8\xFF")
                || gif
                || riff(b"WEBP")
                || at(0, b"II*\0")
                || at(0, b"MM\0*")
                || at(0, b"BM")
                || at(0, b"8BPS")
        }
        AssetKind::Video => iso_bmff || at(0, b"\x1A\x45\xDF\xA3") || gif || riff(b"AVI "),
        AssetKind::Audio => {
            let mpeg_frame_sync = head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0;
            at(0, b"ID3")
                || mpeg_frame_sync
                || riff(b"WAVE")
                || iso_bmff
                || at(0, b"OggS")
                || at(0, b"fLaC")
                || (at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind recognises its own formats by their first bytes and refuses the others'.
    #[test]
    fn sniffing_knows_each_kinds_formats() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let mp4 = b"\0\0\0\x18ftypisom\0\0\0\0";
        let wav = b"RIFF\x24\0\0\0WAVEfmt ";
        let mp3 = b"\xFF\xFB\x90\x64\0\0\0\0";
        assert!(sniff(AssetKind::Image, png) && !sniff(AssetKind::Video, png) && !sniff(AssetKind::Audio, png));
        assert!(sniff(AssetKind::Video, mp4) && sniff(AssetKind::Audio, mp4) && !sniff(AssetKind::Image, mp4));
        assert!(sniff(AssetKind::Audio, wav) && !sniff(AssetKind::Image, wav) && !sniff(AssetKind::Video, wav));
        assert!(sniff(AssetKind::Audio, mp3) && !sniff(AssetKind::Image, mp3));
        assert!(sniff(AssetKind::Image, b"\xFF\xD8\xFF\xE0") && !sniff(AssetKind::Audio, b"\xFF\xD8\xFF\xE0"));
        assert!(sniff(AssetKind::Video, b"GIF89a") && sniff(AssetKind::Image, b"GIF89a"));
        assert!(sniff(AssetKind::Video, b"\x1A\x45\xDF\xA3\x9f"));
        assert!(!sniff(AssetKind::Image, b"") && !sniff(AssetKind::Audio, b"\xFF"));
        assert!(!sniff(AssetKind::Image, b"<svg xmlns=") && !sniff(AssetKind::Video, b"not a movie"));
    }

    fn applied(data: &Value, project: &str) -> Result<Applied, ScriptFailure> {
        apply(data, &Project::parse(project))
    }

    /// Colours print as `#RRGGBBAA` and fill premultiplied over black; numbers as JSON prints them.
    #[test]
    fn values_become_frame_texts() {
        let data = serde_json::json!({"version": 1, "composition": "Intro", "scene_index": 2, "fields": [
            {"key": "tint", "layer": "Bg", "property": "", "kind": "color", "color": [1, 0.5, 0, 0.5], "hex": "#FF8000"},
            {"key": "price", "layer": "Price", "property": "Effects>P>Slider", "kind": "number", "number": 9.5},
            {"key": "shown", "layer": "Badge", "kind": "boolean", "boolean": false},
            {"key": "second", "layer": "Bg", "kind": "color", "color": [0, 0, 1, 1], "hex": "#0000FF"}
        ]});
        let applied = applied(&data, "").unwrap();
        assert_eq!(applied.fill, Some([128, 64, 0]));
        let texts: Vec<(&str, &str)> = applied.texts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            texts,
            [
                ("flatrender:scene", "2 Intro"),
                ("field:tint", "#FF800080"),
                ("field:price", "9.5"),
                ("field:shown", "false"),
                ("field:second", "#0000FFFF"),
            ]
        );
    }

    /// A property is checked against `props=`; without a property the kind decides the layer type.
    #[test]
    fn property_and_layer_type_checks() {
        let project = "layer Intro Price type=text props=\"Effects>P>Slider\"\nlayer Intro Bg type=solid\n";
        let field = |field: Value| serde_json::json!({"version": 1, "composition": "Intro", "scene_index": 0, "fields": [field]});
        let threw = |data: &Value| match applied(data, project) {
            Err(ScriptFailure::Threw(message)) => message,
            other => panic!("expected a thrown error, got {other:?}"),
        };
        let number = field(
            serde_json::json!({"key": "p", "layer": "Price", "property": "Transform>Opacity", "kind": "number", "number": 1}),
        );
        assert_eq!(
            threw(&number),
            "flatrender: field \"p\" (layer \"Price\"): no property \"Transform>Opacity\""
        );
        let number = field(serde_json::json!({"key": "p", "layer": "Price", "kind": "number", "number": 1}));
        assert_eq!(
            threw(&number),
            "flatrender: field \"p\" (layer \"Price\"): needs a property"
        );
        let text = field(serde_json::json!({"key": "t", "layer": "Bg", "kind": "text", "text": "x"}));
        assert_eq!(threw(&text), "flatrender: field \"t\" (layer \"Bg\"): not a text layer");
        let odd = field(serde_json::json!({"key": "t", "layer": "Bg", "kind": "gradient"}));
        assert_eq!(
            threw(&odd),
            "flatrender: field \"t\" (layer \"Bg\"): unknown kind \"gradient\""
        );
        let on_property = field(
            serde_json::json!({"key": "c", "layer": "Price", "property": "Effects>P>Slider", "kind": "color", "color": [0, 0, 0, 1]}),
        );
        assert!(applied(&on_property, project).is_ok());
        let version = serde_json::json!({"version": 2, "composition": "Intro", "scene_index": 0, "fields": []});
        assert_eq!(threw(&version), "flatrender: bad data line: unsupported version 2");
    }
}
