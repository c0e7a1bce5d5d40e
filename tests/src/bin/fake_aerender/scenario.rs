//! The scenario: how this run should behave, from `set` lines in the project, the scenario file
//! (`FAKE_AERENDER_SCENARIO`) and `FAKE_AERENDER_<KEY>` variables, later sources winning.
//!
//! Keys and values are listed in the `fake_aerender` module doc. Unknown keys are an error, so
//! a typo in a test fails loudly instead of silently testing the success path.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::timefmt::{Locale, TimecodeStyle};

/// Environment variables that are not scenario keys.
pub const ENV_SCENARIO_FILE: &str = "FAKE_AERENDER_SCENARIO";
pub const ENV_STATE_DIR: &str = "FAKE_AERENDER_STATE_DIR";
/// Internal: set on the re-executed process and on the spawned "After Effects" child.
pub const ENV_INTERNAL_PREFIX: &str = "FAKE_AERENDER_INTERNAL_";
const ENV_PREFIX: &str = "FAKE_AERENDER_";

const KNOWN_KEYS: &[&str] = &[
    "mode",
    "error",
    "error_message",
    "script_path",
    "exit_code",
    "at_frame",
    "runs",
    "only_comp",
    "frame_ms",
    "slow_frames",
    "launch_ms",
    "start_delay_ms",
    "tail_ms",
    "exit_after_ms",
    "hang_after",
    "stall_cpu",
    "ignore_signals",
    "crash_exit",
    "crash_message",
    "license_at",
    "missing_fonts",
    "font_family",
    "font_style",
    "missing_footage",
    "missing_frames",
    "version",
    "profile",
    "banner_last",
    "reject_late_reuse",
    "lock",
    "child",
    "child_name",
    "child_survives",
    "child_linger_ms",
    "child_detach",
    "child_stdio",
    "timecode",
    "field",
    "duplicate_frames",
    "quotes",
    "finish_period",
    "locale",
    "noise",
    "noise_stream",
    "invalid_utf8",
    "frame_lines",
    "buffered",
    "mfr_order",
    "mfr_index",
    "mfr_chunk",
    "movie_bytes",
    "png_size",
    "render_log",
];

/// Values of the `error` key (see the module doc of `fake_aerender`).
pub const ERROR_KINDS: &[&str] = &[
    "no_project",
    "comp_not_found",
    "rqindex_not_found",
    "rs_template",
    "om_template",
    "needs_output",
    "compression",
    "script",
    "read_source",
    "runtime",
    "custom",
    "busy",
    "launch_1701",
    "socket",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Success,
    Error,
    SilentExit,
    NoRender,
    Damage,
    MissingFrames,
    HangAfterFinish,
    Stall,
    Crash,
    CrashDialog,
    LicensePopup,
    Busy,
    DiskFull,
}

impl Mode {
    /// Modes in which the real product is stuck and ignores polite termination requests.
    pub fn is_stuck(self) -> bool {
        matches!(
            self,
            Self::HangAfterFinish | Self::Stall | Self::CrashDialog | Self::LicensePopup
        )
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub mode: Mode,
    pub error: String,
    pub error_message: Option<String>,
    pub script_path: String,
    pub exit_code: Option<i32>,
    pub at_frame: Option<i64>,
    pub runs: Option<Vec<(u64, u64)>>,
    pub only_comp: Option<String>,
    pub frame_ms: u64,
    pub slow_frames: BTreeMap<i64, u64>,
    pub launch_ms: u64,
    pub start_delay_ms: u64,
    pub tail_ms: u64,
    pub exit_after_ms: u64,
    pub hang_after_total: bool,
    pub stall_cpu: bool,
    pub ignore_signals: Option<bool>,
    pub crash_exit: Option<i32>,
    pub crash_message: bool,
    pub license_before: bool,
    pub missing_fonts: Option<String>,
    pub font_family: String,
    pub font_style: String,
    pub missing_footage: String,
    pub missing_frames: Vec<i64>,
    pub version: String,
    pub windows_profile: bool,
    pub banner_last: Option<bool>,
    pub reject_late_reuse: bool,
    pub lock: bool,
    pub child: bool,
    pub child_name: Option<String>,
    pub child_survives: bool,
    pub child_linger_ms: Option<u64>,
    pub child_detach: bool,
    pub child_inherits_stdio: bool,
    pub timecode: TimecodeStyle,
    pub field: Option<char>,
    pub duplicate_frames: bool,
    pub quotes: String,
    pub finish_period: bool,
    pub locale: Locale,
    pub noise: bool,
    pub noise_to_stderr: bool,
    pub invalid_utf8: bool,
    pub frame_lines: bool,
    pub buffered: bool,
    pub mfr_shuffled: bool,
    pub mfr_chunk_index: bool,
    pub mfr_chunk: usize,
    pub movie_bytes: u64,
    pub png_size: (u32, u32),
    pub render_log: Option<PathBuf>,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            mode: Mode::Success,
            error: "read_source".to_owned(),
            error_message: None,
            script_path: "/tmp/nexrender/job/nexrender-script.jsx".to_owned(),
            exit_code: None,
            at_frame: None,
            runs: None,
            only_comp: None,
            frame_ms: 10,
            slow_frames: BTreeMap::new(),
            launch_ms: 0,
            start_delay_ms: 0,
            tail_ms: 0,
            exit_after_ms: 6000,
            hang_after_total: false,
            stall_cpu: false,
            ignore_signals: None,
            crash_exit: None,
            crash_message: false,
            license_before: false,
            missing_fonts: None,
            font_family: "Roboto".to_owned(),
            font_style: "Black".to_owned(),
            missing_footage: "/Volumes/Footage/missing_plate.mov".to_owned(),
            missing_frames: Vec::new(),
            version: "24.2.1x2".to_owned(),
            windows_profile: cfg!(windows),
            banner_last: Some(false),
            reject_late_reuse: false,
            lock: false,
            child: true,
            child_name: None,
            child_survives: false,
            child_linger_ms: None,
            child_detach: false,
            child_inherits_stdio: true,
            timecode: TimecodeStyle::NonDrop,
            field: None,
            duplicate_frames: false,
            quotes: "straight".to_owned(),
            finish_period: true,
            locale: Locale::English,
            noise: false,
            noise_to_stderr: false,
            invalid_utf8: false,
            frame_lines: true,
            buffered: false,
            mfr_shuffled: false,
            mfr_chunk_index: false,
            mfr_chunk: 4,
            movie_bytes: 65_536,
            png_size: (64, 36),
            render_log: None,
        }
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{key}: expected true or false, got {value:?}")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: expected a number, got {value:?}"))
}

fn parse_list(key: &str, value: &str) -> Result<Vec<i64>, String> {
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| parse_num(key, item))
        .collect()
}

/// `1`, `1,3`, `2-4`: 1-based run numbers as inclusive ranges.
fn parse_runs(value: &str) -> Result<Vec<(u64, u64)>, String> {
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| match item.split_once('-') {
            Some((low, high)) => Ok((parse_num("runs", low)?, parse_num("runs", high)?)),
            None => parse_num("runs", item).map(|run| (run, run)),
        })
        .collect()
}

impl Scenario {
    /// Builds the scenario from the project's `set` lines, the scenario file and the environment.
    pub fn load(project_lines: &[(String, String)]) -> Result<Self, String> {
        let mut pairs: Vec<(String, String)> = project_lines.to_vec();
        if let Ok(path) = std::env::var(ENV_SCENARIO_FILE) {
            let text = std::fs::read_to_string(&path).map_err(|error| format!("scenario file {path}: {error}"))?;
            pairs.extend(parse_lines(&text));
        }
        for (name, value) in std::env::vars() {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if name == ENV_SCENARIO_FILE || name == ENV_STATE_DIR || name.starts_with(ENV_INTERNAL_PREFIX) {
                continue;
            }
            pairs.push((key.to_ascii_lowercase(), value));
        }
        let mut scenario = Self::default();
        for (key, value) in &pairs {
            scenario.apply(key, value)?;
        }
        Ok(scenario)
    }

    #[allow(clippy::too_many_lines)] // one arm per key is the clearest table
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        if !KNOWN_KEYS.contains(&key) {
            return Err(format!("unknown scenario key {key:?}"));
        }
        match key {
            "mode" => {
                self.mode = match value {
                    "success" | "slow" => Mode::Success,
                    "error" => Mode::Error,
                    "silent_exit" => Mode::SilentExit,
                    "no_render" => Mode::NoRender,
                    "damage" => Mode::Damage,
                    "missing_frames" => Mode::MissingFrames,
                    "hang_after_finish" => Mode::HangAfterFinish,
                    "stall" => Mode::Stall,
                    "crash" => Mode::Crash,
                    "crash_dialog" => Mode::CrashDialog,
                    "license_popup" => Mode::LicensePopup,
                    "busy" => Mode::Busy,
                    "disk_full" => Mode::DiskFull,
                    other => return Err(format!("mode: unknown mode {other:?}")),
                }
            }
            "error" => {
                if !ERROR_KINDS.contains(&value) {
                    return Err(format!("error: unknown error kind {value:?}"));
                }
                self.error = value.to_owned();
            }
            "error_message" => self.error_message = Some(value.to_owned()),
            "script_path" => self.script_path = value.to_owned(),
            "exit_code" => self.exit_code = Some(parse_num(key, value)?),
            "at_frame" => self.at_frame = Some(parse_num(key, value)?),
            "runs" => self.runs = Some(parse_runs(value)?),
            "only_comp" => self.only_comp = Some(value.to_owned()),
            "frame_ms" => self.frame_ms = parse_num(key, value)?,
            "slow_frames" => {
                for item in value.split(',').filter(|item| !item.trim().is_empty()) {
                    let (frame, millis) = item
                        .split_once(':')
                        .ok_or(format!("slow_frames: {item:?} is not frame:ms"))?;
                    self.slow_frames.insert(parse_num(key, frame)?, parse_num(key, millis)?);
                }
            }
            "launch_ms" => self.launch_ms = parse_num(key, value)?,
            "start_delay_ms" => self.start_delay_ms = parse_num(key, value)?,
            "tail_ms" => self.tail_ms = parse_num(key, value)?,
            "exit_after_ms" => self.exit_after_ms = parse_num(key, value)?,
            "hang_after" => self.hang_after_total = value == "total",
            "stall_cpu" => self.stall_cpu = parse_bool(key, value)?,
            "ignore_signals" => self.ignore_signals = Some(parse_bool(key, value)?),
            "crash_exit" => self.crash_exit = Some(parse_num::<i64>(key, value)? as i32),
            "crash_message" => self.crash_message = value == "aborted",
            "license_at" => self.license_before = value == "before",
            "missing_fonts" => self.missing_fonts = Some(value.to_owned()).filter(|kind| kind != "none"),
            "font_family" => self.font_family = value.to_owned(),
            "font_style" => self.font_style = value.to_owned(),
            "missing_footage" => self.missing_footage = value.to_owned(),
            "missing_frames" => self.missing_frames = parse_list(key, value)?,
            "version" => self.version = value.to_owned(),
            "profile" => self.windows_profile = value == "windows",
            "banner_last" => {
                self.banner_last = if value == "auto" {
                    None
                } else {
                    Some(parse_bool(key, value)?)
                }
            }
            "reject_late_reuse" => self.reject_late_reuse = parse_bool(key, value)?,
            "lock" => self.lock = parse_bool(key, value)?,
            "child" => self.child = parse_bool(key, value)?,
            "child_name" => self.child_name = Some(value.to_owned()),
            "child_survives" => self.child_survives = parse_bool(key, value)?,
            "child_linger_ms" => self.child_linger_ms = Some(parse_num(key, value)?),
            "child_detach" => self.child_detach = parse_bool(key, value)?,
            "child_stdio" => self.child_inherits_stdio = value != "null",
            "timecode" => {
                self.timecode = match value {
                    "ndf" => TimecodeStyle::NonDrop,
                    "df" => TimecodeStyle::DropFrame,
                    "frames" => TimecodeStyle::Frames,
                    other => return Err(format!("timecode: unknown style {other:?}")),
                }
            }
            "field" => self.field = value.chars().next().filter(|field| matches!(field, 'U' | 'L')),
            "duplicate_frames" => self.duplicate_frames = parse_bool(key, value)?,
            "quotes" => self.quotes = value.to_owned(),
            "finish_period" => self.finish_period = parse_bool(key, value)?,
            "locale" => self.locale = if value == "de" { Locale::German } else { Locale::English },
            "noise" => self.noise = parse_bool(key, value)?,
            "noise_stream" => self.noise_to_stderr = value == "stderr",
            "invalid_utf8" => self.invalid_utf8 = parse_bool(key, value)?,
            "frame_lines" => self.frame_lines = parse_bool(key, value)?,
            "buffered" => self.buffered = parse_bool(key, value)?,
            "mfr_order" => self.mfr_shuffled = value == "shuffled",
            "mfr_index" => self.mfr_chunk_index = value == "chunk",
            "mfr_chunk" => self.mfr_chunk = parse_num::<usize>(key, value)?.max(1),
            "movie_bytes" => self.movie_bytes = parse_num(key, value)?,
            "png_size" => {
                let (width, height) = value.split_once('x').ok_or(format!("png_size: {value:?} is not WxH"))?;
                self.png_size = (
                    parse_num::<u32>(key, width)?.max(1),
                    parse_num::<u32>(key, height)?.max(1),
                );
            }
            "render_log" => self.render_log = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown scenario key {key:?}")),
        }
        Ok(())
    }

    /// Major version from the banner version (`24.2.1x2` → 24).
    pub fn major_version(&self) -> u32 {
        self.version
            .split(['.', 'x'])
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or(24)
    }

    /// Whether the scenario's misbehaviour applies to run number `run` (1-based).
    pub fn applies_to_run(&self, run: u64) -> bool {
        self.runs
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|(low, high)| (*low..=*high).contains(&run)))
    }

    /// Turns a run the scenario does not target into a clean one (timings and looks are kept).
    pub fn neutralize(&mut self) {
        self.mode = Mode::Success;
        self.exit_code = None;
        self.missing_fonts = None;
        self.missing_frames.clear();
        self.child_survives = false;
    }

    /// Signals are ignored in stuck modes unless `ignore_signals` says otherwise.
    pub fn ignores_signals(&self) -> bool {
        self.ignore_signals.unwrap_or(self.mode.is_stuck())
    }
}

/// `key=value` lines; `#` starts a comment line; several pairs may share a line.
pub fn parse_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scenario files are key=value lines with comments.
    #[test]
    fn scenario_lines_parse() {
        let pairs = parse_lines("# crash on first try\nmode = crash\n\nat_frame=12\n");
        assert_eq!(
            pairs,
            [
                ("mode".to_owned(), "crash".to_owned()),
                ("at_frame".to_owned(), "12".to_owned())
            ]
        );
    }

    /// Keys set typed fields; unknown keys and bad values are rejected.
    #[test]
    fn apply_validates_keys_and_values() {
        let mut scenario = Scenario::default();
        scenario.apply("mode", "stall").unwrap();
        scenario.apply("slow_frames", "3:70000,4:5").unwrap();
        scenario.apply("png_size", "8x4").unwrap();
        assert_eq!(scenario.mode, Mode::Stall);
        assert_eq!(scenario.slow_frames.get(&3), Some(&70_000));
        assert_eq!(scenario.png_size, (8, 4));
        assert!(scenario.ignores_signals());
        assert!(scenario.apply("mdoe", "x").is_err());
        assert!(scenario.apply("frame_ms", "fast").is_err());
        assert!(scenario.apply("mode", "explode").is_err());
    }

    /// `runs` selects run numbers by list and range; without it every run is affected.
    #[test]
    fn runs_filter_selects_attempts() {
        let mut scenario = Scenario::default();
        assert!(scenario.applies_to_run(7));
        scenario.apply("runs", "1,3-4").unwrap();
        assert!(scenario.applies_to_run(1) && scenario.applies_to_run(4));
        assert!(!scenario.applies_to_run(2) && !scenario.applies_to_run(5));
    }

    /// The major version comes from the banner version string.
    #[test]
    fn major_version_from_banner() {
        let mut scenario = Scenario::default();
        assert_eq!(scenario.major_version(), 24);
        scenario.apply("version", "13.5x347").unwrap();
        assert_eq!(scenario.major_version(), 13);
    }
}
