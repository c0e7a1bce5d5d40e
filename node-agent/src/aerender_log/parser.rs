//! The streaming [`LogParser`]: feed it lines as aerender prints them, get [`LogEvent`]s back,
//! ask for a [`LogSummary`](super::LogSummary) at any time (`summary.rs` reads the parser's state;
//! this file does not depend on it).
//!
//! State follows the per-item structure of §3.2/§8: an item starts with `Starting composition`
//! (or, in excerpts and render-log files, with whatever of its block comes first), collects the
//! settings block and frame lines, and ends with `Finished composition`. Several items render when
//! aerender runs without `-comp`.

use std::collections::BTreeSet;

use serde::Serialize;

use super::class::{self, ErrorClass, Severity};
use super::collapsed;
use super::grammar::{self, Field, FrameLine, Prefix, SettingKey, TimeValue};

/// A classified problem line: the class and the line as printed (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub class: ErrorClass,
    pub line: String,
}

/// What the settings block of the current item says so far (§3.2 item 8). Times are kept as
/// printed and converted to frame numbers when the frame rate allows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RenderSettings {
    /// `Start:` as printed (`0:00:00:00`, `0;00;10;00`, `0`).
    pub start: Option<String>,
    /// `End:` as printed (inclusive).
    pub end: Option<String>,
    /// `Duration:` as printed.
    pub duration: Option<String>,
    /// `Frame Rate:` in frames per second (`29,97` reads as 29.97).
    pub frame_rate: Option<f64>,
    /// `Start` as a frame number from comp time zero, when it converts.
    pub start_frame: Option<i64>,
    /// `End` as a frame number from comp time zero, when it converts.
    pub end_frame: Option<i64>,
    /// Frames in the time span: `Duration`, else `End − Start + 1` (§3.3 "Progress denominator").
    pub expected_frames: Option<u64>,
}

impl RenderSettings {
    /// Re-derives the frame numbers from the printed values; called after each settings line
    /// because `Frame Rate` comes after `Start`/`End`/`Duration` in the block.
    fn recompute(&mut self) {
        let to_frames = |printed: &Option<String>| {
            printed
                .as_deref()
                .and_then(grammar::parse_time_value)
                .and_then(|time| time.to_frames(self.frame_rate))
        };
        self.start_frame = to_frames(&self.start);
        self.end_frame = to_frames(&self.end);
        let from_duration = to_frames(&self.duration).and_then(|count| u64::try_from(count).ok());
        let from_span = match (self.start_frame, self.end_frame) {
            (Some(first), Some(last)) => last.checked_sub(first).and_then(|span| u64::try_from(span + 1).ok()),
            _ => None,
        };
        self.expected_frames = from_duration.or(from_span).filter(|&count| count > 0);
    }
}

/// A frame reported done (first sighting of its index only; repeats are deduplicated, §3.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameDone {
    /// The `(n)` index: 1-based within this render, chunk-relative or absolute under MFR (§3.3).
    pub index: u32,
    /// Field-render suffix, if any.
    pub field: Option<Field>,
    /// The timecode (or frame number) as printed.
    pub timecode: String,
    /// The comp frame number from the timecode, when the frame rate is known (or frames display).
    pub comp_frame: Option<i64>,
    /// Whole seconds the frame took, as printed.
    pub seconds: Option<u64>,
}

/// Something the parser recognised in a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LogEvent {
    /// `aerender version <ver>` (anywhere: on macOS it often comes last, §3.4).
    Banner { version: String },
    /// AE's render-log file header (§3.4).
    RenderLogHeader {
        ae_version: Option<String>,
        project: Option<String>,
    },
    /// `PROGRESS: Launching After Effects...`
    Launching,
    /// `PROGRESS: ...After Effects successfully launched`
    Launched,
    /// `Starting composition <name>.`
    ItemStarted { comp: Option<String> },
    /// The settings block changed; the latest snapshot wins.
    Settings(RenderSettings),
    /// A frame index seen for the first time in the current item.
    FrameDone(FrameDone),
    /// `Finished composition <name>`.
    Finished { comp: Option<String> },
    /// `Total Time Elapsed: …`; `seconds` is `None` when the duration text did not parse.
    TotalTime { seconds: Option<u64> },
    /// A line that makes the render fail.
    Fatal(LogEntry),
    /// A line worth attention that does not by itself make the render fail.
    Warning(LogEntry),
}

/// One render-queue item as seen in the log.
#[derive(Debug, Clone, Default)]
pub(super) struct ItemState {
    pub(super) comp: Option<String>,
    pub(super) settings: RenderSettings,
    pub(super) frame_indices: BTreeSet<u32>,
    pub(super) finished: bool,
    pub(super) total_time_seconds: Option<u64>,
}

impl ItemState {
    fn is_pristine(&self) -> bool {
        self.comp.is_none()
            && self.settings == RenderSettings::default()
            && self.frame_indices.is_empty()
            && !self.finished
    }
}

/// Streaming aerender log parser. Pure: no IO, no clock.
#[derive(Debug, Clone, Default)]
pub struct LogParser {
    pub(super) ae_version_from_banner: Option<String>,
    pub(super) ae_version_from_header: Option<String>,
    pub(super) project: Option<String>,
    pub(super) items: Vec<ItemState>,
    pub(super) errors: Vec<LogEntry>,
    pub(super) warnings: Vec<LogEntry>,
    /// Class of the fatal line just before, for `Error: …` continuation lines (§3.1 "Multi-line").
    last_fatal_class: Option<ErrorClass>,
}

impl LogParser {
    /// A parser that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one line (any trailing `\r`/`\n` is ignored; embedded line breaks split it further)
    /// and returns what it contained, in order.
    pub fn feed_line(&mut self, line: &str) -> Vec<LogEvent> {
        let mut events = Vec::new();
        for physical_line in grammar::split_lines(line) {
            let physical_line = physical_line.trim_start_matches('\u{feff}');
            // The field line carries template names (a layer called `x WARNING: y`): one entry.
            if class::is_field_not_applied(physical_line) {
                self.feed_segment(physical_line, &mut events);
                continue;
            }
            for segment in grammar::split_collapsed(physical_line) {
                self.feed_segment(segment, &mut events);
            }
        }
        events
    }

    /// Feeds a whole text (any line endings) and returns all events. A text that lost its line
    /// breaks (a log pasted from a ticket or chat) is re-split before each entry first.
    pub fn feed_text(&mut self, text: &str) -> Vec<LogEvent> {
        let text = collapsed::resplit_if_collapsed(text);
        grammar::split_lines(&text)
            .flat_map(|line| self.feed_line(line))
            .collect()
    }

    /// The distinct frame indices completed in the current (last) render item, as printed.
    /// aerender renders exactly one item when given `-comp`.
    pub fn completed_frame_indices(&self) -> &BTreeSet<u32> {
        static EMPTY: BTreeSet<u32> = BTreeSet::new();
        self.items.last().map_or(&EMPTY, |item| &item.frame_indices)
    }

    fn feed_segment(&mut self, segment: &str, events: &mut Vec<LogEvent>) {
        let trimmed = segment.trim();
        if trimmed.is_empty() {
            return;
        }
        let previous_fatal_class = self.last_fatal_class.take();

        // First: the rest of the line holds template names, which may contain a banner, a noise
        // marker or a prefix. Fatal wherever it comes, also when console noise got between it and
        // the script error line above it.
        if class::is_field_not_applied(trimmed) {
            self.record(ErrorClass::FieldNotApplied, Severity::Fatal, trimmed, events);
            return;
        }
        if let Some(version) = grammar::parse_banner(trimmed) {
            self.ae_version_from_banner.get_or_insert_with(|| version.clone());
            events.push(LogEvent::Banner { version });
            return;
        }
        if let Some(after_aerender) = trimmed.strip_prefix("aerender ") {
            if is_aerender_fatal(after_aerender) {
                let error_class = class::classify_aerender_fatal(after_aerender);
                self.record(error_class, Severity::Fatal, trimmed, events);
                return;
            }
        }

        let (prefix, body) = grammar::strip_prefix(trimmed);
        let body_trimmed = body.trim();
        match prefix {
            Some(Prefix::Warning) => {
                let (error_class, severity) =
                    class::classify_free_text(body_trimmed).unwrap_or((ErrorClass::AeWarning, Severity::Warning));
                self.record(error_class, severity, trimmed, events);
            }
            Some(Prefix::Error) => {
                let error_class = class::classify_free_text(body_trimmed)
                    .map_or(ErrorClass::UnknownError, |(error_class, _severity)| error_class);
                self.record(error_class, Severity::Fatal, trimmed, events);
            }
            Some(Prefix::Info | Prefix::Debug) => self.classify_and_record(body_trimmed, trimmed, events),
            Some(Prefix::Progress) => self.feed_progress_body(body_trimmed, trimmed, events),
            None => self.feed_unprefixed(trimmed, previous_fatal_class, events),
        }
    }

    /// A `PROGRESS:` line, or an unprefixed render-log line: the render's own structure.
    fn feed_progress_body(&mut self, body: &str, line: &str, events: &mut Vec<LogEvent>) {
        if body.contains("Launching After Effects") {
            events.push(LogEvent::Launching);
        } else if body.contains("After Effects successfully launched") {
            events.push(LogEvent::Launched);
        } else if let Some(comp) = grammar::parse_starting_line(body) {
            self.start_item(comp.clone());
            events.push(LogEvent::ItemStarted { comp });
        } else if let Some(comp) = grammar::parse_finished_line(body) {
            self.finish_item(comp.clone());
            events.push(LogEvent::Finished { comp });
        } else if let Some(seconds) = grammar::parse_total_time(body) {
            let item = self.current_item_for_tail();
            if let Some(elapsed) = seconds {
                item.total_time_seconds = Some(item.total_time_seconds.unwrap_or(0).saturating_add(elapsed));
            }
            events.push(LogEvent::TotalTime { seconds });
        } else if let Some((key, value)) = grammar::parse_setting(body) {
            self.apply_setting(key, value, events);
        } else {
            let frame_lines = grammar::scan_frame_lines(body);
            if frame_lines.is_empty() && !grammar::is_informational(body) {
                self.classify_and_record(body, line, events);
            }
            for frame_line in frame_lines {
                self.record_frame(frame_line, events);
            }
        }
    }

    /// A line without severity prefix: render-log format, AE console noise, or a continuation.
    fn feed_unprefixed(&mut self, line: &str, previous_fatal_class: Option<ErrorClass>, events: &mut Vec<LogEvent>) {
        if class::is_benign_noise(line) {
            return;
        }
        if let Some((ae_version, project)) = grammar::parse_render_log_header(line) {
            if self.ae_version_from_header.is_none() {
                self.ae_version_from_header.clone_from(&ae_version);
            }
            if self.project.is_none() {
                self.project.clone_from(&project);
            }
            events.push(LogEvent::RenderLogHeader { ae_version, project });
            return;
        }
        // Help text (exit 2) starts with a bare `USAGE:` line after the banner (§2 "Help text layout").
        if line.starts_with("USAGE:") {
            self.record(ErrorClass::SyntaxError, Severity::Fatal, line, events);
            return;
        }
        // The second line of a multi-line fatal message (`Error: After Effects error: …` after
        // `aerender ERROR: Error executing script: …`, §3.1) is fatal too; it keeps the first
        // line's class unless it names a cause of its own.
        if let Some(fatal_class) = previous_fatal_class {
            if grammar::starts_with_ignore_case(line, "error:") {
                let error_class = class::classify_free_text(line).map_or(fatal_class, |(error_class, _)| error_class);
                self.record(error_class, Severity::Fatal, line, events);
                return;
            }
        }
        self.feed_progress_body(line, line, events);
    }

    fn classify_and_record(&mut self, body: &str, line: &str, events: &mut Vec<LogEvent>) {
        if let Some((error_class, severity)) = class::classify_free_text(body) {
            self.record(error_class, severity, line, events);
        }
    }

    fn record(&mut self, error_class: ErrorClass, severity: Severity, line: &str, events: &mut Vec<LogEvent>) {
        let entry = LogEntry {
            class: error_class,
            line: line.trim().to_owned(),
        };
        match severity {
            Severity::Fatal => {
                self.last_fatal_class = Some(error_class);
                self.errors.push(entry.clone());
                events.push(LogEvent::Fatal(entry));
            }
            Severity::Warning => {
                self.warnings.push(entry.clone());
                events.push(LogEvent::Warning(entry));
            }
        }
    }

    fn start_item(&mut self, comp: Option<String>) {
        match self.items.last_mut() {
            Some(item) if item.is_pristine() => item.comp = comp,
            _ => self.items.push(ItemState {
                comp,
                ..ItemState::default()
            }),
        }
    }

    fn finish_item(&mut self, comp: Option<String>) {
        let needs_new_item = self.items.last().is_none_or(|item| item.finished);
        if needs_new_item {
            self.items.push(ItemState::default());
        }
        if let Some(item) = self.items.last_mut() {
            item.finished = true;
            if comp.is_some() {
                item.comp = comp;
            }
        }
    }

    /// The item a tail line (total time) belongs to: the last one, created if none.
    fn current_item_for_tail(&mut self) -> &mut ItemState {
        if self.items.is_empty() {
            self.items.push(ItemState::default());
        }
        let last_index = self.items.len() - 1;
        &mut self.items[last_index]
    }

    /// The item new settings or frame lines belong to. A finished item never takes more; a
    /// settings key already set means a new block, i.e. a new item without a `Starting` line.
    fn current_item_for_render(&mut self, setting_key: Option<SettingKey>) -> &mut ItemState {
        let needs_new_item = match self.items.last() {
            None => true,
            Some(item) if item.finished => true,
            Some(item) => setting_key
                .is_some_and(|key| !item.frame_indices.is_empty() || setting_value(&item.settings, key).is_some()),
        };
        if needs_new_item {
            self.items.push(ItemState::default());
        }
        let last_index = self.items.len() - 1;
        &mut self.items[last_index]
    }

    fn apply_setting(&mut self, key: SettingKey, value: &str, events: &mut Vec<LogEvent>) {
        let item = self.current_item_for_render(Some(key));
        let settings = &mut item.settings;
        match key {
            SettingKey::Start => settings.start = Some(value.to_owned()),
            SettingKey::End => settings.end = Some(value.to_owned()),
            SettingKey::Duration => settings.duration = Some(value.to_owned()),
            SettingKey::FrameRate => settings.frame_rate = grammar::parse_frame_rate(value),
        }
        settings.recompute();
        events.push(LogEvent::Settings(settings.clone()));
    }

    fn record_frame(&mut self, frame_line: FrameLine, events: &mut Vec<LogEvent>) {
        let item = self.current_item_for_render(None);
        if !item.frame_indices.insert(frame_line.index) {
            return;
        }
        let comp_frame = match frame_line.time {
            TimeValue::Frames(number) => Some(number),
            timecode => timecode.to_frames(item.settings.frame_rate),
        };
        events.push(LogEvent::FrameDone(FrameDone {
            index: frame_line.index,
            field: frame_line.field,
            timecode: frame_line.timecode,
            comp_frame,
            seconds: frame_line.seconds,
        }));
    }
}

/// The printed value of a settings key, to detect a second settings block.
fn setting_value(settings: &RenderSettings, key: SettingKey) -> Option<&String> {
    match key {
        SettingKey::Start => settings.start.as_ref(),
        SettingKey::End => settings.end.as_ref(),
        SettingKey::Duration => settings.duration.as_ref(),
        SettingKey::FrameRate => None,
    }
}

/// `aerender ERROR…`, `aerender Error:`, `aerender SYNTAX ERROR:`, `aerender USAGE:`, German
/// `aerender Fehler` (§3.1 "Fatal lines", §3.4 "Localisation").
fn is_aerender_fatal(after_aerender: &str) -> bool {
    ["error", "syntax error", "usage", "fehler"]
        .iter()
        .any(|word| grammar::starts_with_ignore_case(after_aerender, word))
}
