//! Rendering one queue item: the "Starting composition" line, the settings and output-module
//! blocks, one line and one file per frame, the finish and total-time lines, and every
//! misbehaviour that happens during a render (errors, stalls, crashes, hangs, damage).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::clock::{self, Stopwatch};
use super::content::{self, Applied};
use super::project::Comp;
use super::scenario::{Mode, Scenario};
use super::sink::Sink;
use super::timefmt::{self, Locale, TimecodeStyle};

/// What to render for one queue item, already resolved from flags and project.
pub struct ItemPlan {
    pub comp: Comp,
    /// Display frame numbers to render, in order (honours `-i`).
    pub frames: Vec<i64>,
    pub first: i64,
    pub last: i64,
    pub custom_span: bool,
    pub before_comp_start: bool,
    pub output: String,
    pub rs_template: String,
    pub om_template: String,
    pub display_start_frame: i64,
}

pub enum ItemOutcome {
    Completed,
    /// The script's exit code (before the `-log` adjustment).
    Failed(i32),
}

pub struct Renderer<'a> {
    pub scenario: &'a Scenario,
    pub sink: &'a mut Sink,
    pub mfr_on: bool,
    pub continue_on_missing_footage: bool,
    /// What `-r`'s script applied, shown in every PNG frame.
    pub applied: Option<&'a Applied>,
}

/// `frames_[#####].png` → `frames_00012.png` for frame 12; `None` when not a sequence.
pub fn sequence_path(template: &str, frame: i64) -> Option<String> {
    let open = template.rfind("[#")?;
    let close = open + template[open..].find(']')?;
    let hashes = &template[open + 1..close];
    if hashes.is_empty() || !hashes.chars().all(|character| character == '#') {
        return None;
    }
    let width = hashes.len();
    Some(format!(
        "{}{frame:0width$}{}",
        &template[..open],
        &template[close + 1..]
    ))
}

fn locale_key(key: &str, locale: Locale) -> &str {
    match (locale, key) {
        (Locale::German, "Start") => "Anfang",
        (Locale::German, "End") => "Ende",
        (Locale::German, "Duration") => "Dauer",
        _ => key,
    }
}

impl Renderer<'_> {
    fn timecode(&self, plan: &ItemPlan, frame: i64) -> String {
        timefmt::timecode(
            frame - plan.display_start_frame,
            frame,
            plan.comp.fps,
            self.scenario.timecode,
        )
    }

    fn progress(&mut self, key: &str, value: &str) {
        let key = locale_key(key, self.scenario.locale);
        self.sink.ae(&format!("PROGRESS:  {key}: {value}"));
    }

    fn quoted_name(&self, name: &str) -> String {
        let period = if self.scenario.finish_period { "." } else { "" };
        match self.scenario.quotes.as_str() {
            "curly" => format!("\u{201c}{name}\u{201d}{period}"),
            "none" => format!("{name}{period}"),
            _ => format!("\"{name}\"{period}"),
        }
    }

    fn header(&mut self, plan: &ItemPlan, is_sequence: bool) {
        let comp = &plan.comp;
        let locale = self.scenario.locale;
        let size = format!("{} x {}", comp.width, comp.height);
        let duration_frames = plan.last - plan.first + 1;
        let duration = match self.scenario.timecode {
            TimecodeStyle::Frames => duration_frames.to_string(),
            style => timefmt::timecode(duration_frames, duration_frames, comp.fps, style),
        };
        let field_render = match self.scenario.field {
            Some('U') => "Upper Field First",
            Some(_) => "Lower Field First",
            None => "Off",
        };
        let rows: [(&str, String); 20] = [
            ("Render Settings", plan.rs_template.clone()),
            ("Quality", "Best".into()),
            ("Resolution", "Full".into()),
            ("Size", size.clone()),
            ("Proxy Use", "Use No Proxies".into()),
            ("Effects", "Current Settings".into()),
            ("Disk Cache", "Read Only".into()),
            ("Color Depth", "Current Settings".into()),
            ("Frame Blending", "On for Checked Layers".into()),
            ("Field Render", field_render.into()),
            ("Pulldown", "Off".into()),
            ("Motion Blur", "On for Checked Layers".into()),
            ("Solos", "Current Settings".into()),
            (
                "Time Span",
                if plan.custom_span { "Custom" } else { "Work Area" }.into(),
            ),
            ("Start", self.timecode(plan, plan.first)),
            ("End", self.timecode(plan, plan.last)),
            ("Duration", duration),
            (
                "Frame Rate",
                format!("{} (comp)", timefmt::frame_rate(comp.fps, locale)),
            ),
            ("Guide Layers", "All Off".into()),
            ("Skip Existing Files", "Off".into()),
        ];
        for (key, value) in &rows {
            self.progress(key, value);
        }
        self.sink.ae("PROGRESS:  ");
        self.progress("Output Module", &plan.om_template);
        self.progress("Output To", &plan.output);
        self.progress("Format", if is_sequence { "PNG Sequence" } else { "QuickTime" });
        self.progress("Output Info", if is_sequence { "PNG" } else { "Animation" });
        if is_sequence {
            self.progress("Start Frame", "0");
        }
        let audio = if is_sequence { "Off" } else { "On (if comp has audio)" };
        let rows: [(&str, &str); 10] = [
            ("Include", "Project Link"),
            ("Output Audio", audio),
            ("Channels", "RGB"),
            ("Depth", "Millions of Colors"),
            ("Color", "Premultiplied"),
            ("Resize", "-"),
            ("Crop", "-"),
            ("Final Size", &size),
            ("Profile", "-"),
            ("Post-Render Action", "None"),
        ];
        for (key, value) in rows {
            self.progress(key, value);
        }
        self.sink.ae("PROGRESS:  ");
    }

    fn frame_line(&mut self, plan: &ItemPlan, frame: i64, index: usize, seconds: u64) {
        if !self.scenario.frame_lines {
            return;
        }
        let timecode = self.timecode(plan, frame);
        let field = self.scenario.field.map(String::from).unwrap_or_default();
        self.sink
            .ae(&format!("PROGRESS:  {timecode} ({index}{field}): {seconds} Seconds"));
        if self.scenario.duplicate_frames {
            self.sink.ae(&format!(
                "PROGRESS:  {timecode} ({index}{field}): {} Seconds",
                seconds + 1
            ));
        }
    }

    fn file_not_found_warning(&mut self) {
        let path = self.scenario.missing_footage.clone();
        self.sink.ae(&format!(
            "WARNING:After Effects warning: logged one error  error: Unable to Render: File Not Found {path}"
        ));
    }
}

/// Order in which frames complete, with the index printed for each (1-based).
fn completion_order(renderer: &Renderer<'_>, frames: &[i64]) -> Vec<(i64, usize)> {
    let shuffled = renderer.mfr_on && renderer.scenario.mfr_shuffled;
    let chunk_size = renderer.scenario.mfr_chunk;
    let mut order = Vec::with_capacity(frames.len());
    for (chunk_number, chunk) in frames.chunks(chunk_size).enumerate() {
        let mut numbered: Vec<(i64, usize)> = chunk
            .iter()
            .enumerate()
            .map(|(offset, frame)| {
                let index = if shuffled && renderer.scenario.mfr_chunk_index {
                    offset + 1
                } else {
                    chunk_number * chunk_size + offset + 1
                };
                (*frame, index)
            })
            .collect();
        if shuffled {
            numbered.reverse();
        }
        order.extend(numbered);
    }
    order
}

/// Output of a single-file (movie) render, written progressively so partial files exist. A write
/// error is remembered: the render stops at that frame, as AE's output module does.
struct MovieWriter {
    file: Option<File>,
    bytes_per_frame: u64,
    remaining: u64,
    failed: bool,
}

impl MovieWriter {
    fn open(path: &str, total_bytes: u64, num_frames: usize) -> Self {
        let file = File::create(path).ok();
        let bytes_per_frame = (total_bytes / num_frames.max(1) as u64).max(1);
        let mut writer = Self {
            failed: file.is_none(),
            file,
            bytes_per_frame,
            remaining: total_bytes,
        };
        writer.write(b"\0\0\0\x14ftypqt  fake-aerender movie\n");
        writer
    }

    fn write(&mut self, bytes: &[u8]) {
        let take = (bytes.len() as u64).min(self.remaining) as usize;
        if let Some(file) = self.file.as_mut() {
            if file.write_all(&bytes[..take]).and_then(|()| file.flush()).is_err() {
                self.failed = true;
                self.file = None;
            }
        }
        self.remaining -= take as u64;
    }

    /// Whether a write (or creating the file) failed.
    fn failed(&self) -> bool {
        self.failed
    }

    fn frame(&mut self, frame: i64, last: bool) {
        let size = if last {
            self.remaining
        } else {
            self.bytes_per_frame.min(self.remaining)
        };
        let chunk: Vec<u8> = (0..size)
            .map(|offset| (frame as u64).wrapping_add(offset) as u8)
            .collect();
        self.write(&chunk);
    }

    fn half_frame(&mut self, frame: i64) {
        let chunk: Vec<u8> = (0..self.bytes_per_frame / 2)
            .map(|offset| (frame as u64 ^ offset) as u8)
            .collect();
        self.write(&chunk);
    }
}

fn write_frame_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

/// What a full disk does to a frame: the part that fit is on disk, the rest is not.
fn write_frame_file_disk_full(path: &str, bytes: &[u8]) {
    // The write fails either way; a folder that cannot even be created changes nothing.
    let _ = write_frame_file(path, &bytes[..bytes.len() / 3]);
}

/// AE's report of a failed output write (§3.5's write-failure text in the §3.5/§10.3 AE error
/// form, then `INFO: Render aborted.`); the caller exits 9, `EXIT_AE_RUNTIME` (§4).
/// The OS error itself is not printed: the notes document no such detail.
fn output_write_failed(renderer: &mut Renderer<'_>, path: &str) -> ItemOutcome {
    renderer.sink.script(&format!(
        "aerender Error: After Effects error: Rendering error while writing to file {path}. An output module failed. The file may be damaged or corrupted."
    ));
    renderer.sink.script("INFO: Render aborted.");
    ItemOutcome::Failed(9)
}

/// Renders one item; returns only if the process should go on (or exit with a code).
pub fn render_item(renderer: &mut Renderer<'_>, plan: &ItemPlan) -> ItemOutcome {
    let scenario = renderer.scenario;
    let is_sequence = sequence_path(&plan.output, 0).is_some();
    clock::sleep_ms(scenario.start_delay_ms);
    let stopwatch = Stopwatch::start();
    let name = &plan.comp.name;
    let started = match scenario.locale {
        Locale::English => format!(
            "PROGRESS:  {}: Starting composition {name}.",
            timefmt::now(scenario.locale)
        ),
        Locale::German => format!(
            "PROGRESS:  {}: Komposition {name} wird gestartet.",
            timefmt::now(scenario.locale)
        ),
    };
    renderer.sink.ae(&started);
    renderer.sink.ae("");
    renderer.sink.ae("");
    renderer.header(plan, is_sequence);

    let failing_frame = scenario.at_frame.unwrap_or_else(|| plan.frames[plan.frames.len() / 2]);
    let mut movie = (!is_sequence).then(|| MovieWriter::open(&plan.output, scenario.movie_bytes, plan.frames.len()));
    let mut skipped_missing = false;
    let order = completion_order(renderer, &plan.frames);
    let (png_width, png_height) = scenario.png_size;
    let applied = renderer.applied;
    for (position, (frame, index)) in order.iter().copied().enumerate() {
        let frame_png = || content::frame_image(applied, png_width, png_height, name, frame);
        if frame == failing_frame {
            match scenario.mode {
                Mode::Error => {
                    let message = match (scenario.error.as_str(), &scenario.error_message) {
                        ("read_source", _) | (_, None) => {
                            "Could not read from source. Please check the settings and try again."
                        }
                        (_, Some(message)) => message.as_str(),
                    };
                    renderer
                        .sink
                        .script(&format!("aerender Error: After Effects error: {message}"));
                    renderer.sink.script("INFO: Render aborted.");
                    return ItemOutcome::Failed(9);
                }
                Mode::Stall if scenario.stall_cpu => clock::burn_forever(),
                Mode::Stall => clock::sleep_forever(),
                Mode::Crash | Mode::CrashDialog => {
                    clock::sleep_ms(scenario.frame_ms / 2);
                    match (movie.as_mut(), sequence_path(&plan.output, frame)) {
                        (Some(movie), _) => movie.half_frame(frame),
                        (None, Some(path)) => {
                            let bytes = frame_png();
                            // Dying anyway: a failed write changes nothing.
                            let _ = write_frame_file(&path, &bytes[..bytes.len() / 2]);
                        }
                        (None, None) => {}
                    }
                    if scenario.mode == Mode::CrashDialog {
                        clock::sleep_forever();
                    }
                    if scenario.crash_message {
                        renderer.sink.script("INFO: Render aborted.");
                    }
                    crash(scenario);
                }
                Mode::DiskFull => {
                    clock::sleep_ms(scenario.frame_ms);
                    let path = sequence_path(&plan.output, frame).unwrap_or_else(|| plan.output.clone());
                    write_frame_file_disk_full(&path, &frame_png());
                    return output_write_failed(renderer, &path);
                }
                _ => {}
            }
        }
        if scenario.mode == Mode::MissingFrames && scenario.missing_frames.contains(&frame) {
            if !renderer.continue_on_missing_footage {
                // nexrender #239/#467: AE "will hang if it cannot find a footage item".
                if scenario.stall_cpu {
                    clock::burn_forever()
                } else {
                    clock::sleep_forever()
                }
            }
            skipped_missing = true;
            continue;
        }
        let frame_stopwatch = Stopwatch::start();
        clock::sleep_ms(scenario.slow_frames.get(&frame).copied().unwrap_or(scenario.frame_ms));
        let written = match (movie.as_mut(), sequence_path(&plan.output, frame)) {
            (Some(movie), _) => {
                movie.frame(frame, position + 1 == order.len());
                if movie.failed() {
                    Err(plan.output.clone())
                } else {
                    Ok(())
                }
            }
            (None, Some(path)) => write_frame_file(&path, &frame_png()).map_err(|_| path),
            (None, None) => Ok(()),
        };
        if let Err(path) = written {
            return output_write_failed(renderer, &path);
        }
        renderer.frame_line(plan, frame, index, frame_stopwatch.elapsed().as_secs());
    }

    let finished = match scenario.locale {
        Locale::English => format!("Finished composition {}", renderer.quoted_name(name)),
        Locale::German => format!(
            "Komposition {} beendet.",
            renderer.quoted_name(name).trim_end_matches('.')
        ),
    };
    renderer
        .sink
        .ae(&format!("PROGRESS:  {}: {finished}", timefmt::now(scenario.locale)));
    renderer.sink.ae("");
    renderer.sink.ae("");
    let hangs_before_total = matches!(scenario.mode, Mode::LicensePopup)
        || (scenario.mode == Mode::HangAfterFinish && !scenario.hang_after_total);
    if hangs_before_total {
        clock::sleep_forever();
    }
    renderer.sink.ae(&format!(
        "PROGRESS:  Total Time Elapsed: {}",
        timefmt::total_time(stopwatch.elapsed().as_secs())
    ));
    if scenario.mode == Mode::HangAfterFinish {
        clock::sleep_forever();
    }
    if scenario.mode == Mode::Damage || skipped_missing {
        renderer.file_not_found_warning();
    }
    ItemOutcome::Completed
}

/// Warnings of an item that renders nothing (frames outside the comp, or mode `no_render`).
pub fn warn_nothing_rendered(renderer: &mut Renderer<'_>, plan: &ItemPlan) {
    let comp_start = plan.display_start_frame + plan.comp.start;
    let offset_frames = if plan.first < comp_start {
        plan.first - comp_start
    } else {
        -1
    };
    let seconds = format!("{:.2}", offset_frames as f64 / plan.comp.fps);
    let seconds = if renderer.scenario.locale == Locale::German {
        seconds.replace('.', ",")
    } else {
        seconds
    };
    renderer.sink.ae(&format!(
        "WARNING:After Effects warning: timeSpanStart of {seconds} seconds will cause render to have frames outside of range"
    ));
    if renderer.scenario.mode == Mode::NoRender {
        renderer.sink.ae(
            "WARNING:After Effects warning: Skip Existing Files is on and all frames of this render already exist.",
        );
    }
}

/// Dies the way a crashed After Effects takes aerender down.
fn crash(scenario: &Scenario) -> ! {
    let _ = std::io::stdout().flush();
    match scenario.crash_exit {
        Some(code) => std::process::exit(code),
        // 0xC0000005, STATUS_ACCESS_VIOLATION
        None if cfg!(windows) => std::process::exit(0xC000_0005_u32 as i32),
        None => std::process::abort(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[#…#]` is replaced by the zero-padded frame number; other names are not sequences.
    #[test]
    fn sequence_paths_are_padded() {
        assert_eq!(
            sequence_path("/o/frames[####].psd", 1).as_deref(),
            Some("/o/frames0001.psd")
        );
        assert_eq!(
            sequence_path("/o/r_[#####].png", 12345).as_deref(),
            Some("/o/r_12345.png")
        );
        assert_eq!(sequence_path("/o/result.mov", 3), None);
        assert_eq!(sequence_path("/o/[x].png", 3), None);
    }

    /// Under MFR with shuffling, frames complete out of order, with absolute or chunk indices.
    #[test]
    fn mfr_order_is_shuffled_within_chunks() {
        let mut scenario = Scenario::default();
        scenario.apply("mfr_order", "shuffled").unwrap();
        scenario.apply("mfr_chunk", "2").unwrap();
        let mut sink = Sink::new(false, false, true, false);
        let mut renderer = Renderer {
            scenario: &scenario,
            sink: &mut sink,
            mfr_on: true,
            continue_on_missing_footage: false,
            applied: None,
        };
        assert_eq!(completion_order(&renderer, &[10, 11, 12]), [(11, 2), (10, 1), (12, 3)]);
        let mut chunked = scenario.clone();
        chunked.apply("mfr_index", "chunk").unwrap();
        renderer.scenario = &chunked;
        assert_eq!(completion_order(&renderer, &[10, 11, 12]), [(11, 2), (10, 1), (12, 1)]);
        renderer.mfr_on = false;
        assert_eq!(completion_order(&renderer, &[10, 11, 12]), [(10, 1), (11, 2), (12, 3)]);
    }
}
