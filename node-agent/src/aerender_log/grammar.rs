//! The line grammar of aerender output (`docs/aerender.md` §3): line splitting, severity
//! prefixes, collapsed lines, frame lines, timecodes, the settings block, start/finish/total-time
//! lines and the two headers (the `aerender version` banner and the render-log file header).
//!
//! Everything here is a pure function of one string; state lives in [`super::parser`].

/// Splits text on `\r\n`, `\n` and lone `\r` (§8: "split on `\r\n|\n|\r`").
pub(super) fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\r', '\n']) {
            None => {
                let last = rest;
                rest = "";
                Some(last)
            }
            Some(break_at) => {
                let line = &rest[..break_at];
                let break_len = if rest[break_at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[break_at + break_len..];
                Some(line)
            }
        }
    })
}

/// The severity prefix the script writes before AE messages (§1 `my_onError`, §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prefix {
    Progress,
    Info,
    Warning,
    Debug,
    /// Not written by the script (PROBLEM/FATAL are thrown, §1) but by AE's severity names and
    /// the script's exit-message prefix `ERROR: `; if one ever shows up bare, it is fatal.
    Error,
}

const PREFIXES: &[(&str, Prefix)] = &[
    ("PROGRESS:", Prefix::Progress),
    ("INFO:", Prefix::Info),
    ("WARNING:", Prefix::Warning),
    ("DEBUG:", Prefix::Debug),
    ("PROBLEM:", Prefix::Error),
    ("FATAL:", Prefix::Error),
    ("ERROR:", Prefix::Error),
];

/// Where a new logical line may start inside a physical one. Case-sensitive on purpose:
/// messages contain `warning:`/`Info:` in other cases (`After Effects warning:`, `Output Info:`).
/// `aerender ` alone is not a marker: the busy message says "Try running aerender without …".
const LINE_START_MARKERS: &[&str] = &[
    "PROGRESS:",
    "INFO:",
    "WARNING:",
    "DEBUG:",
    "aerender version ",
    "aerender ERROR",
    "aerender Error",
    "aerender SYNTAX ERROR",
    "aerender USAGE",
];

/// Splits a physical line into logical lines when several were collapsed onto one (buffered
/// output of two writers interleaving without a newline, §3.3/§3.4).
pub(super) fn split_collapsed(line: &str) -> Vec<&str> {
    let mut cut_points: Vec<usize> = LINE_START_MARKERS
        .iter()
        .flat_map(|marker| line.match_indices(marker).map(|(position, _)| position))
        .filter(|&position| position > 0)
        .collect();
    cut_points.sort_unstable();
    cut_points.dedup();
    let mut segments = Vec::with_capacity(cut_points.len() + 1);
    let mut segment_start = 0;
    for cut_point in cut_points {
        segments.push(&line[segment_start..cut_point]);
        segment_start = cut_point;
    }
    segments.push(&line[segment_start..]);
    segments
}

/// Splits off a severity prefix: `PROGRESS:  Start: 0:00:00:00` → `(Some(Progress), "  Start: 0:00:00:00")`.
pub(super) fn strip_prefix(segment: &str) -> (Option<Prefix>, &str) {
    for (text, prefix) in PREFIXES {
        if let Some(body) = segment.strip_prefix(text) {
            return (Some(*prefix), body);
        }
    }
    (None, segment)
}

/// ASCII case-insensitive `starts_with` that never slices inside a UTF-8 character.
pub(super) fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// `aerender version 24.2.1x2` → `24.2.1x2`, wherever it sits in the segment.
pub(super) fn parse_banner(segment: &str) -> Option<String> {
    let (_, after) = segment.split_once("aerender version ")?;
    let version = after.split_whitespace().next()?;
    Some(version.to_owned())
}

/// AE's render-log file header (§3.4):
/// `Adobe After Effects v22.0 Windows 64 render log for project “vfx-3.aep”` → (`22.0`, `vfx-3.aep`).
pub(super) fn parse_render_log_header(text: &str) -> Option<(Option<String>, Option<String>)> {
    let after_product = text.trim().strip_prefix("Adobe After Effects")?;
    let (description, project_part) = after_product.split_once("render log for project")?;
    let version = description
        .split_whitespace()
        .find_map(|word| word.strip_prefix('v'))
        .filter(|version| version.starts_with(|first: char| first.is_ascii_digit()))
        .map(str::to_owned);
    Some((version, unquote_name(project_part)))
}

/// Strips one pair of straight, curly or guillemet quotes and a trailing period (§3.4 "Quotes
/// around comp names": `main.`, `"Composition"`, `“render”.`). Empty names are `None`.
pub(super) fn unquote_name(raw: &str) -> Option<String> {
    const OPENING: &[char] = &['"', '“', '”', '„', '«', '\''];
    const CLOSING: &[char] = &['"', '”', '“', '»', '\''];
    let trimmed = raw.trim();
    let name = match trimmed.strip_prefix(OPENING) {
        // rfind: a quoted name may itself contain quote characters.
        Some(after_open) => match after_open.rfind(CLOSING) {
            Some(close_at) => &after_open[..close_at],
            None => after_open.trim_end_matches('.'),
        },
        // Unquoted names (macOS 2019, `main.`) end with the sentence's period; drop exactly one.
        None => trimmed.strip_suffix('.').unwrap_or(trimmed),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `4/30/2019 1:59:13 AM: Starting composition main.` → `Some(Some("main"))`.
pub(super) fn parse_starting_line(body: &str) -> Option<Option<String>> {
    let (_, rest) = body.split_once("Starting composition")?;
    Some(unquote_name(rest))
}

/// A finish line in English, French or German (§3.2 item 11, §3.4 "Localisation") → the comp name
/// if the line gives one.
pub(super) fn parse_finished_line(body: &str) -> Option<Option<String>> {
    if let Some((_, rest)) = body.split_once("Finished composition") {
        return Some(unquote_name(rest));
    }
    if let Some((_, rest)) = body.split_once("fin de la composition") {
        return Some(unquote_name(rest));
    }
    let (_, after_keyword) = body.split_once("Komposition")?;
    let (name, _) = after_keyword.rsplit_once("beendet")?;
    Some(unquote_name(name))
}

/// `Total Time Elapsed: 1 Min, 28 Sec` → `Some(Some(88))`; the outer `None` means "not a
/// total-time line", the inner one "a total-time line whose duration did not parse". Uses
/// `contains` so residue before the key (log 18's markdown `**`) does not hide the line.
pub(super) fn parse_total_time(body: &str) -> Option<Option<u64>> {
    let (_, duration_text) = body.split_once("Total Time Elapsed:")?;
    Some(parse_elapsed(duration_text))
}

/// `1 Min, 28 Sec`, `0 Seconds`, `26 Hr, 15 Min` (§10.2) → seconds.
fn parse_elapsed(text: &str) -> Option<u64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut total_seconds: u64 = 0;
    let mut num_parts = 0;
    for pair in words.windows(2) {
        let Ok(amount) = pair[0].parse::<u64>() else { continue };
        let unit = pair[1].to_ascii_lowercase();
        let unit_seconds = if unit.starts_with("hr") || unit.starts_with("hour") {
            3600
        } else if unit.starts_with("min") {
            60
        } else if unit.starts_with("sec") {
            1
        } else {
            continue;
        };
        total_seconds = total_seconds.checked_add(amount.checked_mul(unit_seconds)?)?;
        num_parts += 1;
    }
    (num_parts > 0).then_some(total_seconds)
}

/// The settings-block keys that matter for progress (§3.2 item 8), English and German (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SettingKey {
    Start,
    End,
    Duration,
    FrameRate,
}

/// `Start: 0:00:00:00` → `(Start, "0:00:00:00")`. `Start Frame:` (output module) is not `Start`.
pub(super) fn parse_setting(body: &str) -> Option<(SettingKey, &str)> {
    let (key, value) = body.trim().split_once(':')?;
    let setting_key = match key.trim() {
        "Start" | "Anfang" => SettingKey::Start,
        "End" | "Ende" => SettingKey::End,
        "Duration" | "Dauer" => SettingKey::Duration,
        "Frame Rate" => SettingKey::FrameRate,
        _ => return None,
    };
    Some((setting_key, value.trim()))
}

/// Keys of the render-settings and output-module blocks (§3.2 items 8–9) and the script's own
/// informational line (§3.2 item 5) that say nothing about progress.
pub(super) const BLOCK_KEYS: &[&str] = &[
    "Render Settings",
    "Quality",
    "Resolution",
    "Size",
    "Proxy Use",
    "Effects",
    "Disk Cache",
    "Color Depth",
    "Frame Blending",
    "Field Render",
    "Pulldown",
    "Motion Blur",
    "Solos",
    "Time Span",
    "Guide Layers",
    "Skip Existing Files",
    "Output Module",
    "Output To",
    "Format",
    "Output Info",
    "Start Frame",
    "Include",
    "Output Audio",
    "Channels",
    "Depth",
    "Color",
    "Resize",
    "Crop",
    "Final Size",
    "Profile",
    "Post-Render Action",
    "Running Script",
];

/// The settings keys [`parse_setting`] reads, English and German.
pub(super) const SETTING_KEYS: &[&str] = &["Start", "End", "Duration", "Frame Rate", "Anfang", "Ende", "Dauer"];

/// True for a line of the blocks of [`BLOCK_KEYS`] or the nexrender `rqindex` debug line. Their
/// values are paths, names and settings, never problems, so they are not classified: a path may
/// well contain "File Not Found" or "Error".
pub(super) fn is_informational(body: &str) -> bool {
    let trimmed = body.trim();
    trimmed.starts_with("rqindex ")
        || trimmed
            .split_once(':')
            .is_some_and(|(key, _)| BLOCK_KEYS.contains(&key.trim()))
}

/// `25.00 (comp)`, `23.976 (comp)`, `29,97 (comp)` (locale decimal comma, §3.3) → frames per second.
pub(super) fn parse_frame_rate(value: &str) -> Option<f64> {
    let number = value.split_whitespace().next()?.replace(',', ".");
    let rate: f64 = number.parse().ok()?;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

/// A time in the project's display format (§3.3): a timecode or a plain frame number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimeValue {
    /// `H:MM:SS:FF`, or drop-frame `H;MM;SS;FF` (any `;` marks drop-frame).
    Timecode {
        negative: bool,
        hours: u64,
        minutes: u64,
        seconds: u64,
        frames: u64,
        drop_frame: bool,
    },
    /// Projects that display frame numbers print plain numbers.
    Frames(i64),
}

/// Parses the first word of `text` as a [`TimeValue`].
pub(super) fn parse_time_value(text: &str) -> Option<TimeValue> {
    let token = text.split_whitespace().next()?;
    let (negative, unsigned) = match token.strip_prefix('-') {
        Some(unsigned) => (true, unsigned),
        None => (false, token),
    };
    if !unsigned.is_empty() && unsigned.bytes().all(|byte| byte.is_ascii_digit()) {
        let magnitude: i64 = unsigned.parse().ok()?;
        return Some(TimeValue::Frames(if negative { -magnitude } else { magnitude }));
    }
    let fields: Vec<&str> = unsigned.split([':', ';']).collect();
    if fields.len() != 4
        || fields
            .iter()
            .any(|field| field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let number = |index: usize| fields[index].parse::<u64>().ok();
    Some(TimeValue::Timecode {
        negative,
        hours: number(0)?,
        minutes: number(1)?,
        seconds: number(2)?,
        frames: number(3)?,
        drop_frame: unsigned.contains(';'),
    })
}

impl TimeValue {
    /// Converts to a frame count from time zero. Timecodes need the frame rate; the timecode base is
    /// the rate rounded (23.976 → 24, 29.97 → 30). Drop-frame (29.97/59.94 only) skips 2 (4) frame
    /// numbers each minute except every tenth. Returns `None` rather than guess.
    pub(super) fn to_frames(self, frame_rate: Option<f64>) -> Option<i64> {
        let (negative, hours, minutes, seconds, frames, drop_frame) = match self {
            Self::Frames(count) => return Some(count),
            Self::Timecode {
                negative,
                hours,
                minutes,
                seconds,
                frames,
                drop_frame,
            } => (negative, hours, minutes, seconds, frames, drop_frame),
        };
        let rounded_rate = frame_rate?.round();
        if !(1.0..=1000.0).contains(&rounded_rate) {
            return None;
        }
        // The range check above makes this conversion exact.
        let timebase = rounded_rate as u64;
        if frames >= timebase || minutes >= 60 || seconds >= 60 {
            return None;
        }
        let total_seconds = hours.checked_mul(3600)?.checked_add(minutes * 60 + seconds)?;
        let mut count = total_seconds.checked_mul(timebase)?.checked_add(frames)?;
        if drop_frame && timebase % 30 == 0 {
            let dropped_per_minute = timebase / 30 * 2;
            let total_minutes = hours.checked_mul(60)?.checked_add(minutes)?;
            count = count.checked_sub(dropped_per_minute * (total_minutes - total_minutes / 10))?;
        }
        let count = i64::try_from(count).ok()?;
        Some(if negative { -count } else { count })
    }
}

/// Field-render suffix of a frame index (`(12U)`, nexrender #897).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Upper,
    Lower,
}

/// One `<timecode> (<n>[U|L]): <s> Seconds` occurrence (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FrameLine {
    pub(super) time: TimeValue,
    pub(super) timecode: String,
    pub(super) index: u32,
    pub(super) field: Option<Field>,
    pub(super) seconds: Option<u64>,
}

/// Finds every frame line in `body`, which must start with one (after whitespace). Collapsed
/// lines (`0 Seconds  0:00:00:01 (2): 0 Seconds`) yield several. Requiring a time token before
/// `(n):` keeps `Frame Rate: 24.00 (comp)` and `Finished composition 00003 (30p).` out (AWS does
/// the same, §6.3). A truncated tail without `Seconds` still counts: the line is printed after the
/// frame is done.
pub(super) fn scan_frame_lines(body: &str) -> Vec<FrameLine> {
    let text = body.trim_start();
    let mut frame_lines = Vec::new();
    for (open_at, _) in text.match_indices('(') {
        let Some(frame_line) = frame_line_at(text, open_at) else {
            continue;
        };
        let token_start = open_at - 1 - frame_line.timecode.len();
        if frame_lines.is_empty() && token_start != 0 {
            return Vec::new();
        }
        frame_lines.push(frame_line);
    }
    frame_lines
}

/// Where the time token of a frame line whose `(` is at `open_at` starts, if one is there.
pub(super) fn frame_line_token_start(text: &str, open_at: usize) -> Option<usize> {
    let frame_line = frame_line_at(text, open_at)?;
    Some(open_at - 1 - frame_line.timecode.len())
}

/// Tries to read a frame line whose `(` is at `open_at`.
fn frame_line_at(text: &str, open_at: usize) -> Option<FrameLine> {
    let before = text[..open_at].strip_suffix(' ')?;
    let token_start = before
        .rfind(|c: char| !(c.is_ascii_digit() || c == ':' || c == ';' || c == '-'))
        .map_or(0, |position| position + 1);
    let timecode = &before[token_start..];
    let time = parse_time_value(timecode)?;

    let after_open = &text[open_at + 1..];
    let digits_len = after_open.bytes().take_while(u8::is_ascii_digit).count();
    let index: u32 = after_open[..digits_len].parse().ok()?;
    let after_digits = &after_open[digits_len..];
    let (field, after_field) = match after_digits.as_bytes().first() {
        Some(b'U') => (Some(Field::Upper), &after_digits[1..]),
        Some(b'L') => (Some(Field::Lower), &after_digits[1..]),
        _ => (None, after_digits),
    };
    let after_close = after_field.strip_prefix("):")?;
    let seconds = parse_frame_seconds(after_close);
    Some(FrameLine {
        time,
        timecode: timecode.to_owned(),
        index,
        field,
        seconds,
    })
}

/// ` 0 Seconds` → `Some(0)`.
fn parse_frame_seconds(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    let amount = words.next()?.parse().ok()?;
    words
        .next()?
        .to_ascii_lowercase()
        .starts_with("second")
        .then_some(amount)
}
