//! Where lines go: aerender's own lines, the script's lines, AE's severity lines and console noise.
//!
//! * `launcher` — aerender's own (banner, launch progress, -1701, busy): always stdout; held back
//!   and printed at exit when imitating the macOS piped-stdout ordering.
//! * `script` — lines the script writes whatever the verbosity (fatal `aerender …` lines, warnings,
//!   "Adding specified comp"): the `-log` file when one is open, else stdout.
//! * `ae` — `PROGRESS:`/`INFO:`/`WARNING:` messages from AE: like `script`, but dropped with
//!   `-v ERRORS`; also copied (without `PROGRESS:`) to the optional AE-style render log.
//! * `noise` — AE's console chatter, straight to stdout or stderr, raw bytes allowed.

use std::fs::File;
use std::io::Write;

use super::timefmt::{self, Locale};

pub struct Sink {
    eol: &'static str,
    hold_launcher_lines: bool,
    held_launcher_lines: Vec<String>,
    flush_each_line: bool,
    noise_to_stderr: bool,
    verbose: bool,
    log_file: Option<File>,
    render_log: Option<File>,
    locale: Locale,
}

impl Sink {
    pub fn new(windows_line_endings: bool, hold_launcher_lines: bool, buffered: bool, noise_to_stderr: bool) -> Self {
        Self {
            eol: if windows_line_endings { "\r\n" } else { "\n" },
            hold_launcher_lines,
            held_launcher_lines: Vec::new(),
            flush_each_line: !buffered,
            noise_to_stderr,
            verbose: true,
            log_file: None,
            render_log: None,
            locale: Locale::English,
        }
    }

    fn write_stdout(&self, bytes: &[u8]) {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe must not change what the double does next; real aerender ignores it too.
        let _ = stdout
            .write_all(bytes)
            .and_then(|()| stdout.write_all(self.eol.as_bytes()));
        if self.flush_each_line {
            let _ = stdout.flush();
        }
    }

    pub fn launcher(&mut self, line: &str) {
        if self.hold_launcher_lines {
            self.held_launcher_lines.push(line.to_owned());
        } else {
            self.write_stdout(line.as_bytes());
        }
    }

    pub fn script(&mut self, line: &str) {
        match self.log_file.as_mut() {
            Some(file) => {
                let _ = write!(file, "{line}{}", self.eol);
            }
            None => self.write_stdout(line.as_bytes()),
        }
    }

    pub fn ae(&mut self, line: &str) {
        if !self.verbose {
            return;
        }
        if let Some(render_log) = self.render_log.as_mut() {
            let _ = write!(
                render_log,
                "{}{}",
                line.strip_prefix("PROGRESS:").unwrap_or(line),
                self.eol
            );
        }
        self.script(line);
    }

    pub fn noise(&mut self, bytes: &[u8]) {
        if self.noise_to_stderr {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr
                .write_all(bytes)
                .and_then(|()| stderr.write_all(self.eol.as_bytes()));
        } else {
            self.write_stdout(bytes);
        }
    }

    pub fn set_verbose(&mut self, verbose: bool) {
        self.verbose = verbose;
    }

    pub fn set_log_file(&mut self, file: File) {
        self.log_file = Some(file);
    }

    pub fn has_log_file(&self) -> bool {
        self.log_file.is_some()
    }

    /// Starts AE's own render-log file (the second log format of the research notes, §3.4).
    pub fn open_render_log(
        &mut self,
        mut file: File,
        version: &str,
        windows: bool,
        project_name: &str,
        locale: Locale,
    ) {
        let short_version: String = version
            .split('x')
            .next()
            .unwrap_or(version)
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        let os = if windows { "Windows" } else { "Macintosh" };
        let now = timefmt::now(locale);
        let (date, time) = now.split_once(' ').unwrap_or((&now, ""));
        let _ = write!(
            file,
            "Adobe After Effects v{short_version} {os} 64 render log for project \u{201c}{project_name}\u{201d}{eol}Rendering started on {date} at {time}{eol}{eol}",
            eol = self.eol
        );
        self.render_log = Some(file);
        self.locale = locale;
    }

    /// Prints held-back launcher lines, closes the render log and flushes everything.
    pub fn finish(&mut self) {
        if let Some(mut render_log) = self.render_log.take() {
            let now = timefmt::now(self.locale);
            let (date, time) = now.split_once(' ').unwrap_or((&now, ""));
            let _ = write!(render_log, "{eol}Log closed on {date} at {time}{eol}", eol = self.eol);
        }
        if let Some(log_file) = self.log_file.as_mut() {
            let _ = log_file.flush();
        }
        for line in std::mem::take(&mut self.held_launcher_lines) {
            self.write_stdout(line.as_bytes());
        }
        let _ = std::io::stdout().flush();
    }
}
