//! Logs whose line breaks were lost: pasted from tickets and chats, their entries run together,
//! separated only by runs of spaces or tabs. [`resplit_if_collapsed`] puts a line break back
//! before every known entry start, so the line grammar of [`super::grammar`] applies unchanged.
//!
//! Entries are never cut at whitespace itself (values contain spaces: `Size: 1920 x 1080`), only
//! before the shapes an entry starts with: severity prefixes, `aerender …` fatal lines and the
//! banner, frame lines, time-stamped start/finish lines, total time, the render-log header and
//! footer, known AE console noise and, in the render-log format (no prefixes), settings keys.
//! The pre-pass only runs when the text does not look line-structured (more hidden entry starts
//! than lines), because some of these shapes may also occur inside a message.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::grammar;

/// How sure a cut before a shape is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Strength {
    /// A settings key of the render-log format: only after another settings line, because the
    /// same words occur inside messages (`INFO:After Effects: this project …`).
    AfterSetting,
    /// `Error: …`, the second line of a multi-line fatal message (§3.1): only after an
    /// `aerender` fatal line.
    AfterFatal,
    /// An entry shape that may also be the body of a prefixed line (`PROGRESS:  0:00:00:01 (2)`):
    /// cut unless only a prefix (or nothing) precedes it in the current entry.
    Body,
    /// A severity prefix or an `aerender` marker: always a new entry, also right after a bare
    /// prefix (the `PROGRESS:  ` separator lines of the settings block).
    Marker,
}

/// Severity prefixes. `ERROR:` also ends `aerender ERROR:`, which [`prefix_starts`] skips.
const PREFIXES: &[&str] = &["PROGRESS:", "INFO:", "WARNING:", "DEBUG:", "ERROR:"];

/// Starts of aerender's own lines. Not `aerender ` alone: the busy message says "Try running
/// aerender without …".
const AERENDER_MARKERS: &[&str] = &[
    "aerender version ",
    "aerender ERROR",
    "aerender Error",
    "aerender SYNTAX ERROR",
    "aerender USAGE",
    "aerender Fehler",
];

/// Unprefixed entries that start with a fixed text: the render-log header and footer (§3.4), the
/// nexrender script line and AE console noise (§3.2 items 3 and 5), the first settings key.
const FIXED_STARTS: &[&str] = &[
    "Adobe After Effects v",
    "Rendering started on ",
    "Log closed on ",
    "Running Script:",
    "Using DXGI",
    "LoadLibrary \"",
    "Render Settings:",
];

/// Words that follow a time stamp (`15/03/2022 19:28:47 GMT+2: Finished composition …`).
const STAMPED_KEYWORDS: &[&str] = &[
    "Starting composition",
    "Finished composition",
    "fin de la composition",
    "Komposition",
];

/// Puts the line breaks back into `text` when it does not look line-structured: when the entry
/// starts found inside lines outnumber the (non-blank) lines. Line-structured text is returned
/// unchanged.
pub(super) fn resplit_if_collapsed(text: &str) -> Cow<'_, str> {
    let mut num_lines = 0_usize;
    let mut num_hidden_starts = 0_usize;
    for line in grammar::split_lines(text) {
        if !line.trim().is_empty() {
            num_lines += 1;
            num_hidden_starts += entry_cuts(line).len();
        }
    }
    if num_hidden_starts == 0 || num_hidden_starts < num_lines {
        return Cow::Borrowed(text);
    }
    let mut resplit = String::with_capacity(text.len() + num_hidden_starts);
    for line in grammar::split_lines(text) {
        let mut entry_start = 0;
        for cut in entry_cuts(line) {
            resplit.push_str(&line[entry_start..cut]);
            resplit.push('\n');
            entry_start = cut;
        }
        resplit.push_str(&line[entry_start..]);
        resplit.push('\n');
    }
    Cow::Owned(resplit)
}

/// Byte offsets inside `line` (never 0, ascending) where a new entry starts.
fn entry_cuts(line: &str) -> Vec<usize> {
    let mut candidates: Vec<(usize, Strength)> = Vec::new();
    prefix_starts(line, &mut candidates);
    for marker in AERENDER_MARKERS {
        candidates.extend(line.match_indices(marker).map(|(at, _)| (at, Strength::Marker)));
    }
    for fixed in FIXED_STARTS {
        candidates.extend(
            line.match_indices(fixed)
                .filter(|(at, _)| follows_whitespace(line, *at))
                .map(|(at, _)| (at, Strength::Body)),
        );
    }
    frame_line_starts(line, &mut candidates);
    stamped_line_starts(line, &mut candidates);
    // `Total Time Elapsed:` with whatever sticks to it (log 18's markdown `**`).
    candidates.extend(
        line.match_indices("Total Time Elapsed:")
            .map(|(at, _)| (word_start(line, at), Strength::Body)),
    );
    setting_key_starts(line, &mut candidates);
    candidates.extend(
        line.match_indices("Error: ")
            .filter(|(at, _)| follows_whitespace(line, *at))
            .map(|(at, _)| (at, Strength::AfterFatal)),
    );

    // Strongest first at equal offsets, so that dedup keeps it.
    candidates.sort_unstable_by(|left, right| left.0.cmp(&right.0).then(right.1.cmp(&left.1)));
    candidates.dedup_by_key(|(at, _)| *at);

    let mut cuts = Vec::new();
    let mut entry_start = 0;
    for (at, strength) in candidates {
        let entry_so_far = line[entry_start..at].trim_start();
        let cut = match strength {
            Strength::Marker => !entry_so_far.is_empty(),
            Strength::Body => !is_bare_prefix(entry_so_far),
            Strength::AfterSetting => starts_with_setting(entry_so_far),
            Strength::AfterFatal => entry_so_far.starts_with("aerender ") && entry_so_far.trim_end() != "aerender",
        };
        if cut && at > 0 {
            cuts.push(at);
            entry_start = at;
        }
    }
    cuts
}

/// Severity prefixes anywhere (two writers can interleave without a space), except the `ERROR:`
/// of `aerender ERROR:` and `aerender SYNTAX ERROR:`.
fn prefix_starts(line: &str, candidates: &mut Vec<(usize, Strength)>) {
    for prefix in PREFIXES {
        for (at, _) in line.match_indices(prefix) {
            let before = line[..at].trim_end();
            let is_part_of_fatal_line =
                *prefix == "ERROR:" && (before.ends_with("aerender") || before.ends_with("SYNTAX"));
            if !is_part_of_fatal_line {
                candidates.push((at, Strength::Marker));
            }
        }
    }
}

/// Frame lines (`0:00:08:07 (200): 0 Seconds`, `12 (13): 0 Seconds`) start at their time token.
fn frame_line_starts(line: &str, candidates: &mut Vec<(usize, Strength)>) {
    for (open_at, _) in line.match_indices('(') {
        let Some(token_start) = grammar::frame_line_token_start(line, open_at) else {
            continue;
        };
        if follows_whitespace(line, token_start) {
            candidates.push((token_start, Strength::Body));
        }
    }
}

/// Start and finish lines begin with a date and time before the keyword; so does AE's
/// `2019-04-29 22:50:53 : INFO  Environment: …` console noise.
fn stamped_line_starts(line: &str, candidates: &mut Vec<(usize, Strength)>) {
    let keyword_offsets = STAMPED_KEYWORDS
        .iter()
        .flat_map(|keyword| line.match_indices(keyword).map(|(at, _)| at))
        .chain(line.match_indices(" : INFO ").map(|(at, _)| at + " : ".len()));
    for keyword_at in keyword_offsets {
        if let Some(stamp_start) = time_stamp_start(line, keyword_at) {
            candidates.push((stamp_start, Strength::Body));
        }
    }
}

/// Where the `<date> <time>[ AM|PM][ zone]:` before `keyword_at` begins, if there is one.
fn time_stamp_start(line: &str, keyword_at: usize) -> Option<usize> {
    let mut rest = line[..keyword_at].trim_end().strip_suffix(':')?;
    let mut stamp_start = None;
    let mut has_time_or_date = false;
    loop {
        let trimmed = rest.trim_end();
        let word_at = trimmed.rfind(char::is_whitespace).map_or(0, |space_at| {
            // The whitespace character may be wider than one byte.
            space_at + trimmed[space_at..].chars().next().map_or(1, char::len_utf8)
        });
        let word = &trimmed[word_at..];
        let is_date = is_date_word(word);
        if word.is_empty() || !(is_date || is_clock_word(word) || is_zone_word(word)) {
            break;
        }
        has_time_or_date |= is_date || is_clock_word(word);
        stamp_start = Some(word_at);
        // The date is the stamp's first word; whatever precedes it is the previous entry.
        if is_date {
            break;
        }
        rest = &trimmed[..word_at];
    }
    stamp_start.filter(|_| has_time_or_date)
}

/// `4/30/2019`, `4/7/19`, `19.05.2022`, `2019-04-29`.
fn is_date_word(word: &str) -> bool {
    let num_separators = word.chars().filter(|c| matches!(c, '/' | '.' | '-')).count();
    num_separators >= 2
        && word.starts_with(|c: char| c.is_ascii_digit())
        && word.chars().all(|c| c.is_ascii_digit() || matches!(c, '/' | '.' | '-'))
}

/// `1:59:13`, `19:28:47`.
fn is_clock_word(word: &str) -> bool {
    word.contains(':') && word.chars().all(|c| c.is_ascii_digit() || c == ':')
}

/// `AM`, `PM`, `EDT`, `GMT+2`, `UTC-05`.
fn is_zone_word(word: &str) -> bool {
    let letters_len = word.chars().take_while(char::is_ascii_uppercase).count();
    let offset = &word[letters_len..];
    (2..=5).contains(&letters_len)
        && (offset.is_empty()
            || (offset.starts_with(['+', '-'])
                && offset.len() > 1
                && offset[1..].chars().all(|c| c.is_ascii_digit() || c == ':')))
}

/// Settings keys of the render-log format (`  Quality: Best`), followed by `:` and whitespace.
/// Of keys ending at the same colon only the longest counts (`Color Depth:`, not `Depth:`).
fn setting_key_starts(line: &str, candidates: &mut Vec<(usize, Strength)>) {
    // Colon offset → start of the longest key before it.
    let mut longest_key_starts: BTreeMap<usize, usize> = BTreeMap::new();
    for key in grammar::BLOCK_KEYS.iter().chain(grammar::SETTING_KEYS) {
        for (at, _) in line.match_indices(key) {
            let colon_at = at + key.len();
            let ends_key = line[colon_at..]
                .strip_prefix(':')
                .is_some_and(|after_colon| after_colon.is_empty() || after_colon.starts_with(char::is_whitespace));
            if ends_key && follows_whitespace(line, at) {
                let key_start = longest_key_starts.entry(colon_at).or_insert(at);
                *key_start = (*key_start).min(at);
            }
        }
    }
    candidates.extend(longest_key_starts.into_values().map(|at| (at, Strength::AfterSetting)));
}

/// True when `entry` (trimmed at the start) begins with a settings key and its colon.
fn starts_with_setting(entry: &str) -> bool {
    entry.split_once(':').is_some_and(|(key, _)| {
        let key = key.trim();
        grammar::BLOCK_KEYS.contains(&key) || grammar::SETTING_KEYS.contains(&key)
    })
}

/// True for nothing, or a severity prefix followed by nothing.
fn is_bare_prefix(entry: &str) -> bool {
    let (_, body) = grammar::strip_prefix(entry);
    body.trim().is_empty()
}

fn follows_whitespace(line: &str, at: usize) -> bool {
    line[..at].chars().next_back().is_none_or(char::is_whitespace)
}

/// The start of the whitespace-delimited word containing byte `at`.
fn word_start(line: &str, at: usize) -> usize {
    line[..at]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(space_at, space)| space_at + space.len_utf8())
}
