//! Text formats of times as aerender prints them: timecodes, frame rates, dates, elapsed time.
//!
//! Dates are printed in UTC (std has no time-zone database); real aerender uses local time.

use std::time::{SystemTime, UNIX_EPOCH};

/// How the project displays times (File > Project Settings > Time Display Style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimecodeStyle {
    /// `H:MM:SS:FF`, non-drop.
    NonDrop,
    /// `H;MM;SS;FF`, drop-frame counting for 29.97/59.94 fps.
    DropFrame,
    /// Plain frame numbers.
    Frames,
}

/// Language of the AE install, which changes a few keys, the decimal separator and the dates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locale {
    English,
    German,
}

/// Nominal (integer) frames per second used for timecode digits.
pub fn nominal_fps(fps: f64) -> i64 {
    (fps.round() as i64).max(1)
}

/// Timecode of `frames_from_zero` frames after time 0, or `display_frame` in `Frames` style.
pub fn timecode(frames_from_zero: i64, display_frame: i64, fps: f64, style: TimecodeStyle) -> String {
    let nominal = nominal_fps(fps);
    let (count, separator) = match style {
        TimecodeStyle::Frames => return display_frame.to_string(),
        TimecodeStyle::NonDrop => (frames_from_zero, ':'),
        TimecodeStyle::DropFrame => (drop_frame_count(frames_from_zero, fps), ';'),
    };
    let sign = if count < 0 { "-" } else { "" };
    let count = count.abs();
    let frames = count % nominal;
    let seconds = (count / nominal) % 60;
    let minutes = (count / (nominal * 60)) % 60;
    let hours = count / (nominal * 3600);
    format!("{sign}{hours}{separator}{minutes:02}{separator}{seconds:02}{separator}{frames:02}")
}

/// Converts a real frame count into the label count of SMPTE drop-frame timecode.
fn drop_frame_count(frames: i64, fps: f64) -> i64 {
    let is_drop_rate = (fps - 29.97).abs() < 0.01 || (fps - 59.94).abs() < 0.01;
    if !is_drop_rate || frames < 0 {
        return frames;
    }
    let drop = if nominal_fps(fps) == 60 { 4 } else { 2 };
    let per_ten_minutes = (fps * 600.0).round() as i64;
    let per_minute = nominal_fps(fps) * 60 - drop;
    let tens = frames / per_ten_minutes;
    let rest = frames % per_ten_minutes;
    let dropped_in_rest = if rest > drop {
        drop * ((rest - drop) / per_minute)
    } else {
        0
    };
    frames + drop * 9 * tens + dropped_in_rest
}

/// `25.00`, `23.976`, `29.97` (German: `25,00`).
pub fn frame_rate(fps: f64, locale: Locale) -> String {
    let hundredths = fps * 100.0;
    let text = if (hundredths - hundredths.round()).abs() < 1e-6 {
        format!("{fps:.2}")
    } else {
        format!("{fps:.3}")
    };
    match locale {
        Locale::English => text,
        Locale::German => text.replace('.', ","),
    }
}

/// `Total Time Elapsed` value: `<n> Seconds`, `<m> Min, <s> Sec` or `<h> Hr, <m> Min`.
pub fn total_time(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds} Seconds")
    } else if seconds < 3600 {
        format!("{} Min, {} Sec", seconds / 60, seconds % 60)
    } else {
        format!("{} Hr, {} Min", seconds / 3600, (seconds % 3600) / 60)
    }
}

/// Civil date (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `11/25/2025 1:59:13 AM` (English) or `25.11.2025 01:59:13` (German) for `unix_seconds`.
pub fn date_time_at(unix_seconds: i64, locale: Locale) -> String {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(86_400));
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (hour, minute, second) = (second_of_day / 3600, (second_of_day / 60) % 60, second_of_day % 60);
    match locale {
        Locale::English => {
            let meridiem = if hour < 12 { "AM" } else { "PM" };
            let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
            format!("{month}/{day}/{year} {hour12}:{minute:02}:{second:02} {meridiem}")
        }
        Locale::German => format!("{day:02}.{month:02}.{year} {hour:02}:{minute:02}:{second:02}"),
    }
}

/// The current date and time in the render-log style of `locale`.
pub fn now(locale: Locale) -> String {
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    date_time_at(i64::try_from(unix_seconds).unwrap_or(0), locale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-drop timecodes roll frames into seconds at the nominal rate.
    #[test]
    fn non_drop_timecode_matches_doc_example() {
        assert_eq!(timecode(124, 124, 25.0, TimecodeStyle::NonDrop), "0:00:04:24");
        assert_eq!(timecode(125, 125, 25.0, TimecodeStyle::NonDrop), "0:00:05:00");
        assert_eq!(timecode(655, 655, 23.976, TimecodeStyle::NonDrop), "0:00:27:07");
        assert_eq!(timecode(3600 * 25, 0, 25.0, TimecodeStyle::NonDrop), "1:00:00:00");
    }

    /// Drop-frame labels skip ;00 and ;01 at each minute except every tenth.
    #[test]
    fn drop_frame_timecode_skips_labels() {
        assert_eq!(timecode(1799, 0, 29.97, TimecodeStyle::DropFrame), "0;00;59;29");
        assert_eq!(timecode(1800, 0, 29.97, TimecodeStyle::DropFrame), "0;01;00;02");
        assert_eq!(timecode(17_982, 0, 29.97, TimecodeStyle::DropFrame), "0;10;00;00");
        assert_eq!(timecode(12, 7, 25.0, TimecodeStyle::Frames), "7");
    }

    /// Frame rates use two decimals unless more are needed, with a comma in German.
    #[test]
    fn frame_rate_formats() {
        assert_eq!(frame_rate(25.0, Locale::English), "25.00");
        assert_eq!(frame_rate(29.97, Locale::English), "29.97");
        assert_eq!(frame_rate(23.976, Locale::English), "23.976");
        assert_eq!(frame_rate(25.0, Locale::German), "25,00");
    }

    /// Elapsed time switches unit at one minute and one hour.
    #[test]
    fn total_time_formats() {
        assert_eq!(total_time(0), "0 Seconds");
        assert_eq!(total_time(48), "48 Seconds");
        assert_eq!(total_time(88), "1 Min, 28 Sec");
        assert_eq!(total_time(26 * 3600 + 15 * 60 + 3), "26 Hr, 15 Min");
    }

    /// Dates follow the US and German render-log layouts.
    #[test]
    fn dates_follow_locale() {
        // 2025-11-25 01:59:13 UTC
        assert_eq!(date_time_at(1_764_035_953, Locale::English), "11/25/2025 1:59:13 AM");
        assert_eq!(date_time_at(1_764_035_953, Locale::German), "25.11.2025 01:59:13");
        assert_eq!(
            date_time_at(1_764_035_953 + 12 * 3600, Locale::English),
            "11/25/2025 1:59:13 PM"
        );
    }
}
