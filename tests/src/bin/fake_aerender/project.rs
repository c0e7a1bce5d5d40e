//! The "project": any existing file; optionally a small text description of comps and queue.
//!
//! See the module doc of `fake_aerender` for the format. Lines that are not directives (including
//! the bytes of a real `.aep`) are ignored, so any file works as a project.

use std::path::Path;

/// Comp defaults when the project does not describe comps (the doc's default comp).
pub const DEFAULT_FPS: f64 = 25.0;
pub const DEFAULT_FRAMES: i64 = 125;

/// Render settings templates every install has.
pub const STOCK_RS_TEMPLATES: [&str; 5] = [
    "Best Settings",
    "Current Settings",
    "DV Settings",
    "Draft Settings",
    "Multi-Machine Settings",
];
/// Output module templates every install has.
pub const STOCK_OM_TEMPLATES: [&str; 9] = [
    "Lossless",
    "Lossless with Alpha",
    "High Quality",
    "High Quality with Alpha",
    "Multi-Machine Sequence",
    "Photoshop",
    "PNG Sequence",
    "TIFF Sequence with Alpha",
    "H.264 - Match Render Settings - 15 Mbps",
];

#[derive(Clone, Debug, PartialEq)]
pub struct Comp {
    pub name: String,
    pub fps: f64,
    pub frames: i64,
    /// Comp display start, in frames (`comp.displayStartTime` / frame duration).
    pub start: i64,
    pub width: u32,
    pub height: u32,
}

impl Comp {
    pub fn with_defaults(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            fps: DEFAULT_FPS,
            frames: DEFAULT_FRAMES,
            start: 0,
            width: 1920,
            height: 1080,
        }
    }
}

/// What kind of layer a `layer` line describes (`type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    Text,
    Solid,
    Footage,
    Precomp,
    Shape,
    Null,
    Adjustment,
    Camera,
    Light,
    /// A missing or misspelt `type=`: the layer exists but passes no type check.
    Unknown,
}

impl LayerType {
    fn parse(value: &str) -> Self {
        match value {
            "text" => Self::Text,
            "solid" => Self::Solid,
            "footage" => Self::Footage,
            "precomp" => Self::Precomp,
            "shape" => Self::Shape,
            "null" => Self::Null,
            "adjustment" => Self::Adjustment,
            "camera" => Self::Camera,
            "light" => Self::Light,
            _ => Self::Unknown,
        }
    }
}

/// One `layer "<Comp>" "<Layer>" type=… [props=…]` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub comp: String,
    pub name: String,
    pub kind: LayerType,
    /// Property paths that exist on the layer; `None` (no `props=`) means every path exists.
    pub props: Option<Vec<String>>,
}

impl Layer {
    /// Whether the layer has the property path `path` (`>`-separated, compared as a whole).
    pub fn has_property(&self, path: &str) -> bool {
        self.props
            .as_ref()
            .is_none_or(|props| props.iter().any(|known| known == path))
    }
}

/// What the project says about a layer name in a comp.
#[derive(Debug, PartialEq)]
pub enum LayerLookup<'a> {
    /// The comp has no `layer` lines: any layer exists, of any kind, with any property.
    Undescribed,
    Found(&'a Layer),
    Missing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RqStatus {
    Queued,
    NeedsOutput,
    WillContinue,
    Done,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RqItem {
    pub comp: String,
    pub output: Option<String>,
    pub status: RqStatus,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Project {
    /// Comps described by the file; empty means "any comp name exists, with defaults".
    pub comps: Vec<Comp>,
    pub render_queue: Vec<RqItem>,
    /// Project Settings > Start numbering frames at (0 or 1).
    pub display_start_frame: i64,
    pub extra_rs_templates: Vec<String>,
    pub extra_om_templates: Vec<String>,
    /// `layer` lines; a comp without any accepts every layer name.
    pub layers: Vec<Layer>,
    /// `set key=value` lines: scenario defaults carried by the project itself.
    pub scenario_lines: Vec<(String, String)>,
}

impl Project {
    /// Reads the project at `path`; `None` if it does not exist or is not a readable file.
    pub fn open(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        Some(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

    pub fn parse(text: &str) -> Self {
        let mut project = Self::default();
        for line in text.lines() {
            let tokens = tokenize(line.trim());
            let Some((directive, rest)) = tokens.split_first() else {
                continue;
            };
            match directive.as_str() {
                "comp" => {
                    if let Some(comp) = parse_comp(rest) {
                        project.comps.push(comp);
                    }
                }
                "rq" => {
                    if let Some(item) = parse_rq(rest) {
                        project.render_queue.push(item);
                    }
                }
                "layer" => project.layers.extend(parse_layer(rest)),
                "rs_template" => project.extra_rs_templates.extend(rest.first().cloned()),
                "om_template" => project.extra_om_templates.extend(rest.first().cloned()),
                "set" => project
                    .scenario_lines
                    .extend(rest.iter().filter_map(|pair| split_pair(pair))),
                other => {
                    if let Some(("display_start_frame", value)) = other.split_once('=') {
                        project.display_start_frame = value.parse().unwrap_or(0);
                    }
                }
            }
        }
        project
    }

    /// The comp called `name`, if the project has it (any name does when no comps are described).
    pub fn comp(&self, name: &str) -> Option<Comp> {
        if self.comps.is_empty() {
            return Some(Comp::with_defaults(name));
        }
        self.comps.iter().find(|comp| comp.name == name).cloned()
    }

    /// Whether the project describes its comps (then only those exist).
    pub fn describes_comps(&self) -> bool {
        !self.comps.is_empty()
    }

    /// The layer `name` of comp `comp`, as far as the project describes it.
    pub fn layer(&self, comp: &str, name: &str) -> LayerLookup<'_> {
        let mut in_comp = self.layers.iter().filter(|layer| layer.comp == comp).peekable();
        if in_comp.peek().is_none() {
            return LayerLookup::Undescribed;
        }
        in_comp
            .find(|layer| layer.name == name)
            .map_or(LayerLookup::Missing, LayerLookup::Found)
    }

    pub fn has_rs_template(&self, name: &str) -> bool {
        STOCK_RS_TEMPLATES.contains(&name) || self.extra_rs_templates.iter().any(|known| known == name)
    }

    pub fn has_om_template(&self, name: &str) -> bool {
        STOCK_OM_TEMPLATES.contains(&name) || self.extra_om_templates.iter().any(|known| known == name)
    }
}

fn split_pair(token: &str) -> Option<(String, String)> {
    let (key, value) = token.split_once('=')?;
    Some((key.trim().to_owned(), value.trim().to_owned()))
}

fn parse_comp(tokens: &[String]) -> Option<Comp> {
    let (name, attributes) = tokens.split_first()?;
    let mut comp = Comp::with_defaults(name);
    for (key, value) in attributes.iter().filter_map(|token| split_pair(token)) {
        match key.as_str() {
            "fps" => comp.fps = value.parse().ok().filter(|fps: &f64| *fps > 0.0)?,
            "frames" | "duration_frames" => comp.frames = value.parse().ok().filter(|frames| *frames > 0)?,
            "start" | "start_frame" => comp.start = value.parse().ok()?,
            "width" => comp.width = value.parse().ok()?,
            "height" => comp.height = value.parse().ok()?,
            _ => {}
        }
    }
    Some(comp)
}

fn parse_rq(tokens: &[String]) -> Option<RqItem> {
    let (comp, attributes) = tokens.split_first()?;
    let mut item = RqItem {
        comp: comp.clone(),
        output: None,
        status: RqStatus::Queued,
    };
    let mut explicit_status = None;
    for (key, value) in attributes.iter().filter_map(|token| split_pair(token)) {
        match (key.as_str(), value.as_str()) {
            ("output", _) => item.output = Some(value.clone()),
            ("status", "queued") => explicit_status = Some(RqStatus::Queued),
            ("status", "needs_output") => explicit_status = Some(RqStatus::NeedsOutput),
            ("status", "will_continue") => explicit_status = Some(RqStatus::WillContinue),
            ("status", "done") => explicit_status = Some(RqStatus::Done),
            _ => {}
        }
    }
    item.status = explicit_status.unwrap_or(if item.output.is_some() {
        RqStatus::Queued
    } else {
        RqStatus::NeedsOutput
    });
    Some(item)
}

fn parse_layer(tokens: &[String]) -> Option<Layer> {
    let [comp, name, attributes @ ..] = tokens else {
        return None;
    };
    let mut layer = Layer {
        comp: comp.clone(),
        name: name.clone(),
        kind: LayerType::Unknown,
        props: None,
    };
    for (key, value) in attributes.iter().filter_map(|token| split_pair(token)) {
        match key.as_str() {
            "type" => layer.kind = LayerType::parse(&value),
            "props" => {
                let paths = value.split(';').map(str::trim).filter(|path| !path.is_empty());
                layer.props = Some(paths.map(str::to_owned).collect());
            }
            _ => {}
        }
    }
    Some(layer)
}

/// Splits on whitespace, keeping `"quoted strings"` (also inside `key="a b"`) as one token.
fn tokenize(line: &str) -> Vec<String> {
    if line.starts_with('#') {
        return Vec::new();
    }
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut has_token = false;
    for character in line.chars() {
        match character {
            '"' => {
                in_quotes = !in_quotes;
                has_token = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has_token {
                    tokens.push(std::mem::take(&mut current));
                    has_token = false;
                }
            }
            c => {
                current.push(c);
                has_token = true;
            }
        }
    }
    if has_token {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A description with comps, queue items, templates and scenario lines is read back.
    #[test]
    fn parses_a_described_project() {
        let project = Project::parse(
            "# fixture\ndisplay_start_frame=1\ncomp \"Main Comp\" fps=29.97 frames=300 start=10 width=640 height=360\n\
             rq \"Main Comp\" output=\"/out/a b_[####].png\"\nrq Other\nom_template \"My PNG\"\nset mode=crash at_frame=12\n",
        );
        assert_eq!(project.display_start_frame, 1);
        let comp = project.comp("Main Comp").unwrap();
        assert_eq!((comp.fps, comp.frames, comp.start, comp.width), (29.97, 300, 10, 640));
        assert!(project.comp("Other").is_none());
        assert_eq!(project.render_queue[0].output.as_deref(), Some("/out/a b_[####].png"));
        assert_eq!(project.render_queue[1].status, RqStatus::NeedsOutput);
        assert!(project.has_om_template("My PNG") && project.has_om_template("Lossless"));
        assert!(!project.has_rs_template("Nope"));
        assert_eq!(project.scenario_lines.len(), 2);
    }

    /// `layer` lines give a comp exactly those layers, with their types and (optional) properties.
    #[test]
    fn parses_layers() {
        let project = Project::parse(
            "layer \"Intro\" \"Price Tag\" type=text props=\"Effects>Price>Slider; Transform>Opacity\"\n\
             layer Intro Logo type=footage\nlayer Intro Odd type=sprite\nlayer Empty Bare type=null props=\"\"\n",
        );
        let LayerLookup::Found(price) = project.layer("Intro", "Price Tag") else {
            panic!("Price Tag expected")
        };
        assert_eq!(price.kind, LayerType::Text);
        assert!(price.has_property("Transform>Opacity") && !price.has_property("Transform"));
        let LayerLookup::Found(logo) = project.layer("Intro", "Logo") else {
            panic!("Logo expected")
        };
        assert!(logo.kind == LayerType::Footage && logo.has_property("Anything>At>All"));
        assert!(matches!(project.layer("Intro", "Odd"), LayerLookup::Found(layer) if layer.kind == LayerType::Unknown));
        assert_eq!(project.layer("Intro", "price tag"), LayerLookup::Missing);
        assert_eq!(project.layer("Outro", "Whatever"), LayerLookup::Undescribed);
        let LayerLookup::Found(bare) = project.layer("Empty", "Bare") else {
            panic!("Bare expected")
        };
        assert!(!bare.has_property("Transform>Opacity"));
    }

    /// Arbitrary bytes (a real .aep) make a project in which any comp exists with defaults.
    #[test]
    fn opaque_file_accepts_any_comp() {
        let project = Project::parse("RIFX\u{0}\u{1}binary junk");
        assert_eq!(project.comp("whatever"), Some(Comp::with_defaults("whatever")));
        assert!(project.render_queue.is_empty());
    }
}
