//! Printing: aligned text tables for people, JSON documents for scripts, and the small
//! formatting helpers (timestamps, sizes, enum names) both share.

use std::{fmt::Write as _, io::Write as _, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::args::OutputFormat;

/// Writes to stdout; a reader that went away (broken pipe) ends the process with exit 0, as
/// as output nobody reads does not matter. Other write errors are ignored: there is nowhere
/// better to report them.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| stdout.flush());
    if written.is_err_and(|error| error.kind() == std::io::ErrorKind::BrokenPipe) {
        std::process::exit(0);
    }
}

/// A text table: headers, then rows of cells, columns padded to their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|header| header.chars().count()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate() {
                if index < widths.len() {
                    widths[index] = widths[index].max(cell.chars().count());
                }
            }
        }
        let mut text = String::new();
        let headers: Vec<String> = self.headers.iter().map(|header| (*header).to_owned()).collect();
        for row in std::iter::once(&headers).chain(self.rows.iter()) {
            let mut line = String::new();
            for (index, width) in widths.iter().enumerate() {
                let cell = row.get(index).map_or("", String::as_str);
                let _ = write!(line, "{cell:<width$}  ");
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }

    /// Prints the table, or `empty` when it has no rows.
    pub fn print_or(&self, empty: &str) {
        if self.rows.is_empty() {
            outln!("{empty}");
        } else {
            out!("{}", self.render());
        }
    }
}

/// Prints `value` as pretty JSON (the machine contract).
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `value` as one JSON line (NDJSON streams).
pub fn print_json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// JSON for scripts, or `table` for people.
pub fn emit<T: Serialize>(format: OutputFormat, value: &T, table: impl FnOnce()) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => print_json(value),
        OutputFormat::Table => {
            table();
            Ok(())
        }
    }
}

/// A wire timestamp as chrono time.
pub fn time(value: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::from_timestamp(value.seconds, u32::try_from(value.nanos).ok()?)
}

/// RFC 3339 in UTC with seconds (`2026-01-02T03:04:05Z`), the JSON form.
pub fn rfc3339(value: Option<&prost_types::Timestamp>) -> Option<String> {
    time(value).map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// A timestamp for tables: RFC 3339, or `-`.
pub fn time_cell(value: Option<&prost_types::Timestamp>) -> String {
    rfc3339(value).unwrap_or_else(|| "-".to_owned())
}

/// How long ago, for tables (`3m ago`, `-`).
pub fn ago_cell(value: Option<&prost_types::Timestamp>) -> String {
    match time(value) {
        Some(at) => {
            let elapsed = (Utc::now() - at).to_std().unwrap_or(Duration::ZERO);
            format!("{} ago", crate::duration::format(elapsed))
        }
        None => "-".to_owned(),
    }
}

/// A wire duration in whole seconds.
pub fn seconds(value: Option<&prost_types::Duration>) -> Option<u64> {
    let value = value?;
    u64::try_from(value.seconds).ok()
}

/// Bytes for people (`1.5 GiB`).
pub fn bytes(value: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    // Display only: precision loss on huge values does not matter.
    #[allow(clippy::cast_precision_loss)]
    let mut amount = value.max(0) as f64;
    let mut unit = 0;
    while amount >= 1024.0 && unit + 1 < units.len() {
        amount /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{amount:.1} {}", units[unit])
    }
}

/// `text`, or `-` when empty.
pub fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// `Some(text)` unless empty (JSON: empty strings become null).
pub fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// The first 8 characters of a UUID, for narrow tables.
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns are padded to the widest cell and lines carry no trailing spaces.
    #[test]
    fn table_aligns_columns() {
        let mut table = Table::new(&["NAME", "STATE"]);
        table.row(vec!["node-long-name".into(), "online".into()]);
        table.row(vec!["n".into(), String::new()]);
        assert_eq!(table.render(), "NAME            STATE\nnode-long-name  online\nn\n");
    }

    /// Sizes and timestamps use the documented forms.
    #[test]
    fn formats_are_stable() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        let stamp = prost_types::Timestamp {
            seconds: 1_767_323_045,
            nanos: 0,
        };
        assert_eq!(rfc3339(Some(&stamp)).unwrap(), "2026-01-02T03:04:05Z");
        assert_eq!(time_cell(None), "-");
    }
}
