//! aerender's command line for one chunk (docs/aerender.md §2, §8) and the `[#####]` output
//! naming of image sequences (§2.2). Pure code: no IO.
//!
//! Flags are always written in one order: `-project -comp -s -e -output`, the optional
//! `-RStemplate -OMtemplate -mem_usage -mfr -continueOnMissingFootage -r -log`, then the fixed
//! `-v ERRORS_AND_PROGRESS -close DO_NOT_SAVE_CHANGES -sound OFF`. `-reuse` is never passed
//! (unattended renders always start a fresh AE), and `-mfr` only to AE 2022 (22.0) and later,
//! because older aerender rejects it as an illegal flag (exit 3).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{SupervisorError, SupervisorResult};

/// Number of `#` in the patterns this agent writes (`frame_[#####].png` → `frame_00012.png`).
pub const FRAME_DIGITS: usize = 5;

/// First AE major version whose aerender accepts `-mfr` (AE 2022).
const FIRST_MFR_MAJOR: u32 = 22;

/// Environment variables to give aerender (docs/aerender.md §6.2, §8): the OpenMP
/// duplicate-runtime workaround that Deadline and AWS Deadline Cloud set.
pub const AERENDER_ENV: &[(&str, &str)] = &[("KMP_DUPLICATE_LIB_OK", "TRUE")];

/// Multi-Frame Rendering setting passed as `-mfr ON|OFF <max_cpu_percent>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfrSetting {
    /// MFR on or off.
    pub on: bool,
    /// CPU cap in percent (1–100).
    pub max_cpu_percent: u8,
}

/// Everything needed to render frames `start_frame..=end_frame` of one comp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkCommand {
    /// The project file (from the template cache).
    pub project: PathBuf,
    /// The comp to render (`-comp`).
    pub comp: String,
    /// First frame, in project display frame numbers (`-s`).
    pub start_frame: i32,
    /// Last frame, inclusive (`-e`).
    pub end_frame: i32,
    /// Output path whose file name contains `[#…#]`, see [`output_pattern`].
    pub output_pattern: PathBuf,
    /// Output-module template (`-OMtemplate`).
    pub output_module_template: Option<String>,
    /// Render-settings template (`-RStemplate`).
    pub render_settings_template: Option<String>,
    /// `-mem_usage <image_cache_percent> <max_mem_percent>`.
    pub mem_usage: Option<(u32, u32)>,
    /// `-mfr`, passed only when the AE version supports it.
    pub mfr: Option<MfrSetting>,
    /// `-log <file>`: AE then writes its log there and stdout carries only the banner lines.
    pub log_file: Option<PathBuf>,
    /// `-continueOnMissingFootage`.
    pub continue_on_missing_footage: bool,
    /// `-r <script>`: run this script once the project is open (a saved project's values). Only
    /// our startup hook teaches aerender the flag (docs/content.md §3); stock aerender refuses it.
    pub script: Option<PathBuf>,
}

impl ChunkCommand {
    /// The argument list for aerender of version `ae_version` (a banner version such as
    /// `24.2.1x2`, or an install folder label such as `2025` / `CC 2019`; `None` = unknown, in
    /// which case `-mfr` is left out).
    pub fn build_args(&self, ae_version: Option<&str>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::with_capacity(32);
        let mut flag = |name: &str, value: OsString| {
            args.push(name.into());
            args.push(value);
        };
        flag("-project", self.project.clone().into_os_string());
        flag("-comp", self.comp.clone().into());
        flag("-s", self.start_frame.to_string().into());
        flag("-e", self.end_frame.to_string().into());
        flag("-output", self.output_pattern.clone().into_os_string());
        if let Some(template) = &self.render_settings_template {
            flag("-RStemplate", template.into());
        }
        if let Some(template) = &self.output_module_template {
            flag("-OMtemplate", template.into());
        }
        if let Some((image_cache_percent, max_mem_percent)) = self.mem_usage {
            args.extend([
                "-mem_usage".into(),
                image_cache_percent.to_string().into(),
                max_mem_percent.to_string().into(),
            ]);
        }
        if let Some(mfr) = self.mfr {
            if mfr_supported(ae_version) {
                let state = if mfr.on { "ON" } else { "OFF" };
                args.extend(["-mfr".into(), state.into(), mfr.max_cpu_percent.to_string().into()]);
            } else {
                tracing::debug!(ae_version = ?ae_version, "-mfr left out: aerender before AE 2022 rejects it");
            }
        }
        if self.continue_on_missing_footage {
            args.push("-continueOnMissingFootage".into());
        }
        if let Some(script) = &self.script {
            args.extend(["-r".into(), script.clone().into_os_string()]);
        }
        if let Some(log_file) = &self.log_file {
            args.extend(["-log".into(), log_file.clone().into_os_string()]);
        }
        for fixed in [
            "-v",
            "ERRORS_AND_PROGRESS",
            "-close",
            "DO_NOT_SAVE_CHANGES",
            "-sound",
            "OFF",
        ] {
            args.push(fixed.into());
        }
        args
    }
}

/// Whether aerender of this version accepts `-mfr` (AE 22.0 / 2022 and later; unknown = no).
pub fn mfr_supported(ae_version: Option<&str>) -> bool {
    ae_version
        .and_then(ae_major_version)
        .is_some_and(|major| major >= FIRST_MFR_MAJOR)
}

/// AE major version from a banner version (`24.2.1x2` → 24, `13.5x347` → 13) or an install
/// folder label (`2025` → 25, `CC 2019` → 16, `Adobe After Effects 2020` → 17), per the table in
/// docs/aerender.md §1.2. `None` when nothing recognisable is in it.
pub fn ae_major_version(version: &str) -> Option<u32> {
    let label = version.trim().trim_start_matches("Adobe After Effects").trim();
    let year = label
        .split(|character: char| !character.is_ascii_digit())
        .filter(|digits| digits.len() == 4)
        .find_map(|digits| digits.parse::<u32>().ok().filter(|year| (2000..2100).contains(year)));
    if let Some(year) = year {
        return Some(match year {
            2022.. => year - 2000,
            2021 => 18,
            2020 => 17,
            2019 => 16,
            2018 => 15,
            2017 => 14,
            2014..=2016 => 13,
            _ => 12,
        });
    }
    let leading_digits: String = label.chars().take_while(char::is_ascii_digit).collect();
    leading_digits.parse().ok().filter(|major| (1..1000).contains(major))
}

/// `dir/<stem>[#####].<extension>`: the `-output` value for an image sequence.
pub fn output_pattern(dir: &Path, stem: &str, extension: &str) -> PathBuf {
    let extension = extension.trim_start_matches('.');
    dir.join(format!("{stem}[{}].{extension}", "#".repeat(FRAME_DIGITS)))
}

/// The file-name pattern of an image sequence: `prefix[#…#]suffix`.
///
/// AE replaces `[#…#]` with the frame number zero-padded to the number of `#`
/// (`frames[####].psd` → `frames0001.psd`); numbers wider than the padding are written in full.
/// The number is the comp frame number when the output-module template uses "Use Comp Frame
/// Number" (which Deadline requires for sequences, §2.2); negative frames are written as
/// `-0005` (Rust's padding; real AE behaviour unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePattern {
    prefix: String,
    digits: usize,
    suffix: String,
}

impl FramePattern {
    /// Parses a file name such as `frame_[#####].png`.
    pub fn parse(file_name_pattern: &str) -> SupervisorResult<Self> {
        let invalid = |reason| SupervisorError::InvalidPattern {
            pattern: file_name_pattern.to_owned(),
            reason,
        };
        let open = file_name_pattern
            .find("[#")
            .ok_or_else(|| invalid("no [#…#] in the file name"))?;
        let after_open = &file_name_pattern[open + 1..];
        let digits = after_open.chars().take_while(|character| *character == '#').count();
        let rest = &after_open[digits..];
        let suffix = rest.strip_prefix(']').ok_or_else(|| invalid("[# is not closed by ]"))?;
        if suffix.contains("[#") {
            return Err(invalid("more than one [#…#]"));
        }
        if file_name_pattern.contains(['/', '\\']) {
            return Err(invalid("a file-name pattern must not contain a folder"));
        }
        Ok(Self {
            prefix: file_name_pattern[..open].to_owned(),
            digits,
            suffix: suffix.to_owned(),
        })
    }

    /// Splits an `-output` path into its folder and file-name pattern.
    pub fn from_output_path(output_pattern: &Path) -> SupervisorResult<(PathBuf, Self)> {
        let file_name = output_pattern
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pattern = Self::parse(&file_name)?;
        let dir = output_pattern.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((dir, pattern))
    }

    /// The file name AE writes for `frame` (`frame_[#####].png`, 12 → `frame_00012.png`).
    pub fn file_name(&self, frame: i32) -> String {
        format!("{}{frame:0width$}{}", self.prefix, self.suffix, width = self.digits)
    }

    /// The frame number of a file name of this sequence, `None` for other files.
    pub fn frame_of(&self, file_name: &str) -> Option<i32> {
        let number = file_name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let frame: i32 = number.parse().ok()?;
        // The round trip rejects other paddings (`0012` for `[#####]`) and signs such as `+12`.
        (self.file_name(frame) == file_name).then_some(frame)
    }

    /// The text before the frame number (`frame_`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many digits the frame number is padded to (5 for `[#####]`).
    pub fn digits(&self) -> usize {
        self.digits
    }

    /// The text after the frame number (`.png`).
    pub fn suffix(&self) -> &str {
        &self.suffix
    }

    /// The pattern as written in `-output` (`frame_[#####].png`).
    pub fn pattern_string(&self) -> String {
        format!("{}[{}]{}", self.prefix, "#".repeat(self.digits), self.suffix)
    }

    /// The lowercase extension without the dot (`png`), if the pattern has one.
    pub fn extension(&self) -> Option<String> {
        let (_, extension) = self.suffix.rsplit_once('.')?;
        Some(extension.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> ChunkCommand {
        ChunkCommand {
            project: PathBuf::from("/cache/ab12/project.aep"),
            comp: "Main Comp".to_owned(),
            start_frame: 10,
            end_frame: 19,
            output_pattern: output_pattern(Path::new("/out/job1"), "frame_", "png"),
            output_module_template: None,
            render_settings_template: None,
            mem_usage: None,
            mfr: None,
            log_file: None,
            continue_on_missing_footage: false,
            script: None,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect()
    }

    /// The minimal chunk gives exactly the required flags in a fixed order, without -reuse.
    #[test]
    fn minimal_chunk_builds_exact_flags() {
        let args = strings(&chunk().build_args(Some("24.2.1x2")));
        let expected = [
            "-project",
            "/cache/ab12/project.aep",
            "-comp",
            "Main Comp",
            "-s",
            "10",
            "-e",
            "19",
            "-output",
            "/out/job1/frame_[#####].png",
            "-v",
            "ERRORS_AND_PROGRESS",
            "-close",
            "DO_NOT_SAVE_CHANGES",
            "-sound",
            "OFF",
        ];
        assert_eq!(args, expected);
    }

    /// Every optional flag appears with its values when set, -mfr included on AE 2025.
    #[test]
    fn full_chunk_builds_all_optional_flags() {
        let command = ChunkCommand {
            output_module_template: Some("PNG Sequence".to_owned()),
            render_settings_template: Some("Best Settings".to_owned()),
            mem_usage: Some((50, 80)),
            mfr: Some(MfrSetting {
                on: true,
                max_cpu_percent: 90,
            }),
            log_file: Some(PathBuf::from("/out/job1/ae.log")),
            continue_on_missing_footage: true,
            script: Some(PathBuf::from("/state/work/j/scene-000-f/apply.jsx")),
            ..chunk()
        };
        let args = strings(&command.build_args(Some("2025")));
        let expected_tail = [
            "-output",
            "/out/job1/frame_[#####].png",
            "-RStemplate",
            "Best Settings",
            "-OMtemplate",
            "PNG Sequence",
            "-mem_usage",
            "50",
            "80",
            "-mfr",
            "ON",
            "90",
            "-continueOnMissingFootage",
            "-r",
            "/state/work/j/scene-000-f/apply.jsx",
            "-log",
            "/out/job1/ae.log",
            "-v",
            "ERRORS_AND_PROGRESS",
            "-close",
            "DO_NOT_SAVE_CHANGES",
            "-sound",
            "OFF",
        ];
        assert_eq!(args[8..], expected_tail);
        assert!(!args.iter().any(|arg| arg == "-reuse"));
    }

    /// -mfr is passed to AE 22+ (OFF too) and left out for older or unknown versions.
    #[test]
    fn mfr_is_gated_by_ae_version() {
        let command = ChunkCommand {
            mfr: Some(MfrSetting {
                on: false,
                max_cpu_percent: 50,
            }),
            ..chunk()
        };
        let with_mfr = |version: Option<&str>| strings(&command.build_args(version)).contains(&"-mfr".to_owned());
        assert!(with_mfr(Some("22.0x104")));
        assert!(with_mfr(Some("24.2.1x2")));
        assert!(with_mfr(Some("2022")));
        assert!(!with_mfr(Some("18.4x47")));
        assert!(!with_mfr(Some("2021")));
        assert!(!with_mfr(Some("CC 2019")));
        assert!(!with_mfr(None));
        let args = strings(&command.build_args(Some("23.1")));
        let position = args.iter().position(|arg| arg == "-mfr").unwrap();
        assert_eq!(args[position + 1..position + 3], ["OFF", "50"]);
    }

    /// Banner versions and folder labels map to AE major versions per the doc's table.
    #[test]
    fn major_versions_from_banners_and_labels() {
        assert_eq!(ae_major_version("24.2.1x2"), Some(24));
        assert_eq!(ae_major_version("13.5x347"), Some(13));
        assert_eq!(ae_major_version("2025"), Some(25));
        assert_eq!(ae_major_version("2020"), Some(17));
        assert_eq!(ae_major_version("CC 2019"), Some(16));
        assert_eq!(ae_major_version("Adobe After Effects 2024"), Some(24));
        assert_eq!(ae_major_version("CC 2015"), Some(13));
        assert_eq!(ae_major_version("(Beta)"), None);
        assert_eq!(ae_major_version(""), None);
    }

    /// The helper builds `<dir>/<stem>[#####].<ext>` and tolerates a leading dot.
    #[test]
    fn output_pattern_has_five_hashes() {
        assert_eq!(
            output_pattern(Path::new("/out"), "shot_", ".exr"),
            PathBuf::from("/out/shot_[#####].exr")
        );
    }

    /// Frame numbers are zero-padded to the number of #, wider numbers are written in full.
    #[test]
    fn frame_file_names_are_zero_padded() {
        let pattern = FramePattern::parse("frame_[#####].png").unwrap();
        assert_eq!(pattern.file_name(12), "frame_00012.png");
        assert_eq!(pattern.file_name(0), "frame_00000.png");
        assert_eq!(pattern.file_name(123_456), "frame_123456.png");
        let short = FramePattern::parse("frames[####].psd").unwrap();
        assert_eq!(short.file_name(1), "frames0001.psd");
        assert_eq!(short.pattern_string(), "frames[####].psd");
        assert_eq!(short.extension().as_deref(), Some("psd"));
    }

    /// File names map back to frames; other files, other paddings and other suffixes do not.
    #[test]
    fn frame_numbers_parse_back_from_file_names() {
        let pattern = FramePattern::parse("frame_[#####].png").unwrap();
        assert_eq!(pattern.frame_of("frame_00012.png"), Some(12));
        assert_eq!(pattern.frame_of("frame_123456.png"), Some(123_456));
        assert_eq!(pattern.frame_of("frame_-0005.png"), Some(-5));
        assert_eq!(pattern.frame_of("frame_0012.png"), None);
        assert_eq!(pattern.frame_of("frame_00012.png.tmp"), None);
        assert_eq!(pattern.frame_of("frame_000012.png"), None);
        assert_eq!(pattern.frame_of("other_00012.png"), None);
        assert_eq!(pattern.frame_of("frame_abcde.png"), None);
    }

    /// Patterns without, with unclosed or with several [#…#] are rejected; paths are split.
    #[test]
    fn invalid_patterns_are_rejected() {
        assert!(FramePattern::parse("movie.mov").is_err());
        assert!(FramePattern::parse("frame_[###.png").is_err());
        assert!(FramePattern::parse("a[##]b[##].png").is_err());
        let (dir, pattern) = FramePattern::from_output_path(Path::new("/out/job/f_[###].tif")).unwrap();
        assert_eq!(dir, PathBuf::from("/out/job"));
        assert_eq!(pattern.file_name(7), "f_007.tif");
    }
}
