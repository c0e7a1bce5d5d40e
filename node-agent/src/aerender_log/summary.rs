//! [`LogSummary`]: the verdict on a whole log, serialisable to the `parse-log` JSON shape.
//!
//! Unknown values stay `None` (JSON `null`); nothing is guessed. The one derived value is that a
//! finished item has rendered all its frames: see [`ItemSummary::frames_completed`].

use std::collections::BTreeSet;

use serde::Serialize;

use super::parser::{ItemState, LogEntry, LogParser};

/// How the log ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A finish line for the last item and no fatal line.
    Succeeded,
    /// At least one fatal line.
    Failed,
    /// Neither: still running, silently exited, or an excerpt.
    Incomplete,
}

/// Where an item's `expected_frames` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedFramesSource {
    /// `Duration:` (or `End − Start + 1`) of the settings block with the frame rate.
    Settings,
    /// No settings block, but the item finished: its last `(n)` index is its frame count, because
    /// indices are 1-based within the render (§3.3).
    LastFrameIndex,
}

/// One render-queue item of the log (one per `Starting composition` … `Finished composition`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemSummary {
    /// Comp name from the start or finish line.
    pub comp: Option<String>,
    /// Frames this item renders, when the log says.
    pub expected_frames: Option<u64>,
    /// Where `expected_frames` came from.
    pub expected_frames_source: Option<ExpectedFramesSource>,
    /// Distinct frames done. A finished item counts all `expected_frames` even where frame lines
    /// are missing (movie outputs print none, §3.3; excerpts): finishing means every frame rendered.
    pub frames_completed: u64,
    /// Distinct frame indices actually printed (less than `frames_completed` when lines were missing,
    /// or with `-continueOnMissingFootage` skipping frames, §6.3).
    pub frame_lines_seen: u64,
    /// A finish line was seen.
    pub finished: bool,
    /// `Frame Rate:` in frames per second.
    pub frame_rate: Option<f64>,
    /// `Start:` as a comp frame number.
    pub start_frame: Option<i64>,
    /// `End:` as a comp frame number (inclusive).
    pub end_frame: Option<i64>,
    /// `Total Time Elapsed:` in seconds.
    pub total_time_seconds: Option<u64>,
    /// The distinct `(n)` indices printed (not serialised: can be tens of thousands).
    #[serde(skip)]
    pub frame_indices: BTreeSet<u32>,
}

/// The verdict on a log. Serialises to `{"outcome", "ae_version", "comp", "expected_frames",
/// "frames_completed", "errors", "warnings", …}`; the later fields are extras.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSummary {
    pub outcome: Outcome,
    /// From the `aerender version` banner, else from the render-log header (`v22.0` → `22.0`).
    pub ae_version: Option<String>,
    /// Comp of the last item that names one.
    pub comp: Option<String>,
    /// Sum over items, `None` unless every item's count is known.
    pub expected_frames: Option<u64>,
    /// Sum over items of distinct frames done.
    pub frames_completed: u64,
    /// Fatal lines in order.
    pub errors: Vec<LogEntry>,
    /// Warning lines in order.
    pub warnings: Vec<LogEntry>,
    /// Project file from the render-log header.
    pub project: Option<String>,
    /// Frame rate of the last item.
    pub frame_rate: Option<f64>,
    /// Start frame of the last item.
    pub start_frame: Option<i64>,
    /// End frame (inclusive) of the last item.
    pub end_frame: Option<i64>,
    /// Sum of the `Total Time Elapsed` lines, `None` if there were none.
    pub total_time_seconds: Option<u64>,
    /// Sum over items of distinct frame indices actually printed.
    pub frame_lines_seen: u64,
    /// Per item detail.
    pub items: Vec<ItemSummary>,
}

impl LogSummary {
    /// The fatal line that best explains the failure: the first with a specific class, else the
    /// first (`Runtime error in After Effects.` follows the real cause, §3.5).
    pub fn primary_error(&self) -> Option<&LogEntry> {
        self.errors
            .iter()
            .find(|entry| !entry.class.is_generic())
            .or_else(|| self.errors.first())
    }

    /// The last item, which is the only one when aerender ran with `-comp`.
    pub fn last_item(&self) -> Option<&ItemSummary> {
        self.items.last()
    }
}

impl LogParser {
    /// The summary of everything fed so far.
    pub fn summary(&self) -> LogSummary {
        summarize(self)
    }
}

fn summarize(parser: &LogParser) -> LogSummary {
    let items: Vec<ItemSummary> = parser.items.iter().map(summarize_item).collect();
    let outcome = if !parser.errors.is_empty() {
        Outcome::Failed
    } else if items.last().is_some_and(|item| item.finished) {
        Outcome::Succeeded
    } else {
        Outcome::Incomplete
    };
    let expected_frames = if items.is_empty() {
        None
    } else {
        items.iter().try_fold(0_u64, |total, item| {
            item.expected_frames.map(|count| total.saturating_add(count))
        })
    };
    let total_time_seconds = items
        .iter()
        .filter_map(|item| item.total_time_seconds)
        .reduce(|total, seconds| total.saturating_add(seconds));
    let last_item = items.last();
    LogSummary {
        outcome,
        ae_version: parser
            .ae_version_from_banner
            .clone()
            .or_else(|| parser.ae_version_from_header.clone()),
        comp: items.iter().rev().find_map(|item| item.comp.clone()),
        expected_frames,
        frames_completed: items.iter().map(|item| item.frames_completed).sum(),
        errors: parser.errors.clone(),
        warnings: parser.warnings.clone(),
        project: parser.project.clone(),
        frame_rate: last_item.and_then(|item| item.frame_rate),
        start_frame: last_item.and_then(|item| item.start_frame),
        end_frame: last_item.and_then(|item| item.end_frame),
        total_time_seconds,
        frame_lines_seen: items.iter().map(|item| item.frame_lines_seen).sum(),
        items,
    }
}

fn summarize_item(item: &ItemState) -> ItemSummary {
    let frame_lines_seen = item.frame_indices.len() as u64;
    let last_index = item.frame_indices.last().copied();
    let (expected_frames, expected_frames_source) = match (item.settings.expected_frames, last_index) {
        (Some(count), _) => (Some(count), Some(ExpectedFramesSource::Settings)),
        (None, Some(index)) if item.finished => (Some(u64::from(index)), Some(ExpectedFramesSource::LastFrameIndex)),
        (None, _) => (None, None),
    };
    let frames_completed = if item.finished {
        frame_lines_seen.max(expected_frames.unwrap_or(0))
    } else {
        frame_lines_seen
    };
    ItemSummary {
        comp: item.comp.clone(),
        expected_frames,
        expected_frames_source,
        frames_completed,
        frame_lines_seen,
        finished: item.finished,
        frame_rate: item.settings.frame_rate,
        start_frame: item.settings.start_frame,
        end_frame: item.settings.end_frame,
        total_time_seconds: item.total_time_seconds,
        frame_indices: item.frame_indices.clone(),
    }
}
