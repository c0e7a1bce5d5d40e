//! The aerender log parser: pure (no IO), streaming, and tolerant of everything
//! `docs/aerender.md` §3 and §10 describe.
//!
//! It reads both formats: aerender's stdout (`PROGRESS:`/`INFO:`/`WARNING:` prefixes, fatal
//! `aerender ERROR…` lines, AE console noise) and AE's own render-log file (no prefixes, two-space
//! indent). It finds the banner anywhere, the settings block (locale decimal commas, drop-frame
//! timecodes), deduplicated frame lines (field suffixes, MFR out-of-order, collapsed lines), finish
//! and total-time lines, and classifies fatal and warning lines into [`ErrorClass`]es while
//! ignoring benign noise that merely contains "ERROR".
//!
//! Layout: `grammar` (pure line grammar), `collapsed` (putting back the line breaks of a pasted
//! log), `class` (classification rules), `parser` (the streaming [`LogParser`] and its
//! [`LogEvent`]s), `summary` ([`LogSummary`], the verdict).
//!
//! ```
//! use flatrender_node_agent::aerender_log::{parse_log, Outcome};
//!
//! let summary = parse_log("aerender ERROR: No comp was found with the given name.\r\n");
//! assert_eq!(summary.outcome, Outcome::Failed);
//! assert_eq!(summary.errors[0].class.to_string(), "comp_not_found");
//! ```

mod class;
mod collapsed;
mod grammar;
mod parser;
mod summary;

#[cfg(test)]
mod tests;

pub use class::ErrorClass;
pub use grammar::Field;
pub use parser::{FrameDone, LogEntry, LogEvent, LogParser, RenderSettings};
pub use summary::{ExpectedFramesSource, ItemSummary, LogSummary, Outcome};

/// Parses a whole log (any mix of `\r\n`, `\n`, `\r`, or none at all when pasted without its
/// line breaks) and returns its summary.
pub fn parse_log(text: &str) -> LogSummary {
    let mut parser = LogParser::new();
    parser.feed_text(text);
    parser.summary()
}

/// Decodes raw log bytes without ever failing (§1 "Encoding": never fail on undecodable bytes).
/// A UTF-16 byte-order mark selects UTF-16 (LE or BE), a UTF-8 one is dropped, anything else is
/// read as UTF-8 with invalid bytes replaced (OEM code-page bytes included, §1).
pub fn decode_log_bytes(bytes: &[u8]) -> String {
    if let Some(utf16_le) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return decode_utf16(utf16_le, u16::from_le_bytes);
    }
    if let Some(utf16_be) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return decode_utf16(utf16_be, u16::from_be_bytes);
    }
    let without_bom = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8_lossy(without_bom).into_owned()
}

fn decode_utf16(bytes: &[u8], to_unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks(2).map(|pair| match pair {
        [first, second] => to_unit([*first, *second]),
        // A dangling odd byte cannot be a character.
        _ => 0xFFFD,
    });
    char::decode_utf16(units)
        .map(|decoded| decoded.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}
