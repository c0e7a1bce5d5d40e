//! Tests of the aerender log parser: the line grammar, classification of every line the doc
//! quotes, streaming semantics, the four real logs of `node-agent/tests/fixtures/aerender-logs/`,
//! and logs pasted without their line breaks.

mod classify;
mod collapsed;
mod failures;
mod fixtures;
mod grammar;
mod parser;

use super::{ErrorClass, LogEntry, LogSummary, parse_log};

/// Classes of a list of entries, in order.
fn classes(entries: &[LogEntry]) -> Vec<ErrorClass> {
    entries.iter().map(|entry| entry.class).collect()
}

/// Parses one line and returns the summary.
fn parse_one(line: &str) -> LogSummary {
    parse_log(line)
}

/// A §3.2 settings and output-module block: 25 fps, frames 0–124.
const SETTINGS_25_FPS_125_FRAMES: &str = "PROGRESS:  Render Settings: Best Settings
PROGRESS:  Quality: Best
PROGRESS:  Time Span: Work Area
PROGRESS:  Start: 0:00:00:00
PROGRESS:  End: 0:00:04:24
PROGRESS:  Duration: 0:00:05:00
PROGRESS:  Frame Rate: 25.00 (comp)
PROGRESS:  Guide Layers: All Off
PROGRESS:  Skip Existing Files: Off
PROGRESS:  
PROGRESS:  Output Module: Lossless
PROGRESS:  Output To: /out/main_[#####].png
PROGRESS:  Format: PNG Sequence
PROGRESS:  Start Frame: 0
PROGRESS:  Post-Render Action: None
PROGRESS:  
";

/// The §10.2 success transcript with all 125 frame lines.
fn success_transcript() -> String {
    let mut text = String::from(
        "aerender version 24.2.1x2\nPROGRESS: Launching After Effects...\nPROGRESS: ...After Effects successfully launched\nPROGRESS: Adding specified comp to Render Queue\nPROGRESS:  11/25/2025 1:59:13 AM: Starting composition main.\n\n\n",
    );
    text.push_str(SETTINGS_25_FPS_125_FRAMES);
    for frame in 0..125 {
        text.push_str(&format!(
            "PROGRESS:  0:00:{:02}:{:02} ({}): 0 Seconds\n",
            frame / 25,
            frame % 25,
            frame + 1
        ));
    }
    text.push_str("PROGRESS:  11/25/2025 2:00:01 AM: Finished composition \"main\".\n\n\nPROGRESS:  Total Time Elapsed: 48 Seconds\n");
    text
}
