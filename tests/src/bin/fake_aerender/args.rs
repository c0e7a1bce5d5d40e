//! aerender's command line, parsed the way `aerender` and `commandLineRenderer.jsx` parse it.
//!
//! Two stages, as in the real product: the launcher (`classify`) handles `-help`/`-h`,
//! `-version`, `-reuse` and `-mp`; the script (`parse_script_args`) parses the rest after After
//! Effects has launched. Flags are case-sensitive; one pair of enclosing `"` is stripped.
//! Value checks for `-v`, `-close`, `-sound`, `-mfr` and `-i` happen later (in `flow`), after the
//! `-log` file is open, exactly like the script, which is what turns exit 3 into 4.

/// What the launcher decides before After Effects is involved.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// No arguments or `-help`/`-h` anywhere: usage text, exit 2.
    Usage,
    /// `-version`: banner only, exit 0.
    Version,
    /// Anything else: launch After Effects and let the script parse the arguments.
    Render { reuse: bool, script_args: Vec<String> },
}

/// Which aerender generation is being imitated, as far as flag acceptance goes.
#[derive(Clone, Copy, Debug)]
pub struct FlagProfile {
    /// AE 2022 (22.0) and later accept `-mfr`, `-renderSettings` and `-outputSettings`.
    pub supports_2022_flags: bool,
    /// Reproduce nexrender #699: `-reuse` anywhere but first reaches the script and is illegal.
    pub reject_late_reuse: bool,
    /// FlatRender's startup hook is installed: the script learns `-r <script>` (docs/content.md).
    pub script_hook: bool,
}

/// Arguments as the script holds them (`in_*` variables), values still unvalidated.
#[derive(Debug, Default, Clone)]
pub struct ScriptArgs {
    pub project: Option<String>,
    pub teamproject: Option<String>,
    pub comp: Option<String>,
    pub rqindex: Option<String>,
    pub rs_template: Option<String>,
    pub om_template: Option<String>,
    pub render_settings: Option<String>,
    pub output_settings: Option<String>,
    pub output: Option<String>,
    pub log: Option<String>,
    pub start_frame: Option<String>,
    pub end_frame: Option<String>,
    pub increment: Option<String>,
    pub mem_usage: Option<(String, String)>,
    pub mfr: Option<(String, String)>,
    pub verbose: Option<String>,
    pub close: Option<String>,
    pub sound: Option<String>,
    /// `-r <script>`, only with the startup hook.
    pub script: Option<String>,
    pub continue_on_missing_footage: bool,
    pub do_save_prefs_on_quit: bool,
}

impl ScriptArgs {
    /// True when `-mfr ON`/`-mfr on` was given.
    pub fn mfr_on(&self) -> bool {
        self.mfr
            .as_ref()
            .is_some_and(|(enable, _)| enable == "ON" || enable == "on")
    }
}

/// The launcher's view of argv (without the program name).
pub fn classify(argv: &[String], profile: FlagProfile) -> Invocation {
    if argv.is_empty() || argv.iter().any(|arg| arg == "-help" || arg == "-h") {
        return Invocation::Usage;
    }
    if argv.iter().any(|arg| arg == "-version") {
        return Invocation::Version;
    }
    let mut reuse = false;
    let mut script_args = Vec::with_capacity(argv.len());
    for (position, arg) in argv.iter().enumerate() {
        let launcher_handles_reuse = position == 0 || !profile.reject_late_reuse;
        match arg.as_str() {
            "-reuse" if launcher_handles_reuse => reuse = true,
            "-mp" => {}
            _ => script_args.push(arg.clone()),
        }
    }
    Invocation::Render { reuse, script_args }
}

fn strip_enclosing_quotes(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        value[1..value.len() - 1].to_owned()
    } else {
        value.to_owned()
    }
}

/// Parses the script's flags; `Err` carries the text after `aerender SYNTAX ERROR: `.
pub fn parse_script_args(args: &[String], profile: FlagProfile) -> Result<ScriptArgs, String> {
    let mut parsed = ScriptArgs::default();
    let mut index = 0;
    let value_at = |at: usize, flag: &str| -> Result<String, String> {
        match args.get(at) {
            Some(value) if !value.is_empty() => Ok(strip_enclosing_quotes(value)),
            _ => Err(format!("no value given for flag: {flag}")),
        }
    };
    while index < args.len() {
        let flag = args[index].as_str();
        let is_2022_flag = matches!(flag, "-mfr" | "-renderSettings" | "-outputSettings");
        if is_2022_flag && !profile.supports_2022_flags {
            return Err(format!("Illegal argument flag: {flag}"));
        }
        let single = |slot: &mut Option<String>| -> Result<usize, String> {
            *slot = Some(value_at(index + 1, flag)?);
            Ok(2)
        };
        let consumed = match flag {
            "-port" => {
                value_at(index + 1, flag)?;
                2
            }
            "-project" => single(&mut parsed.project)?,
            "-teamproject" => single(&mut parsed.teamproject)?,
            "-comp" => single(&mut parsed.comp)?,
            "-rqindex" => single(&mut parsed.rqindex)?,
            "-RStemplate" => single(&mut parsed.rs_template)?,
            "-OMtemplate" => single(&mut parsed.om_template)?,
            "-renderSettings" => single(&mut parsed.render_settings)?,
            "-outputSettings" => single(&mut parsed.output_settings)?,
            "-output" => single(&mut parsed.output)?,
            "-log" => single(&mut parsed.log)?,
            "-s" => single(&mut parsed.start_frame)?,
            "-e" => single(&mut parsed.end_frame)?,
            "-i" => single(&mut parsed.increment)?,
            "-v" => single(&mut parsed.verbose)?,
            "-close" => single(&mut parsed.close)?,
            "-sound" => single(&mut parsed.sound)?,
            "-r" if profile.script_hook => single(&mut parsed.script)?,
            "-mem_usage" => {
                parsed.mem_usage = Some((value_at(index + 1, flag)?, value_at(index + 2, flag)?));
                3
            }
            "-mfr" => {
                parsed.mfr = Some((value_at(index + 1, flag)?, value_at(index + 2, flag)?));
                3
            }
            "-continueOnMissingFootage" => {
                parsed.continue_on_missing_footage = true;
                1
            }
            "-doSavePrefsOnQuit" => {
                parsed.do_save_prefs_on_quit = true;
                1
            }
            _ => return Err(format!("Illegal argument flag: {flag}")),
        };
        index += consumed;
    }
    Ok(parsed)
}

/// JavaScript-like `parseInt(value, 10)`: leading integer, `None` if there is none.
pub fn parse_int(value: &str) -> Option<i64> {
    let trimmed = value.trim_start();
    let (sign, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let numeric: String = digits.chars().take_while(char::is_ascii_digit).collect();
    numeric.parse::<i64>().ok().map(|number| sign * number)
}

/// The usage text printed after the banner for `-help`, `-h` or no arguments.
pub const USAGE: &str = r#"USAGE:
1] aerender renders After Effects comps. The render may be performed either
   by an already running instance of AE or by a newly invoked instance. By
   default, aerender will invoke a new instance of AE, even if one is already
   running. To change this, see the "-reuse" flag below.
2] aerender takes a series of optional arguments.
   "-help"  print this usage message
   "-reuse"  use an instance of After Effects that is already running, if possible
   "-project project_path"  where project_path is a file path or URI specifying a project file to open
   "-teamproject team_project_name"  where team_project_name is the name of a team project to open
   "-comp comp_name"  where comp_name specifies a comp to be rendered
   "-rqindex index_in_render_queue"  where index_in_render_queue specifies a single item in the render queue to render
   "-RStemplate render_settings_template"  where render_settings_template is the name of a template to apply to the render queue item
   "-OMtemplate output_module_template"  where output_module_template is the name of a template to apply to the output module
   "-renderSettings "key1: value1; key2: value2""  render settings to apply after the template
   "-outputSettings "key1: value1; key2: value2""  output module settings to apply after the template
   "-output output_path"  where output_path is a file path or URI specifying the destination render file
   "-log logfile_path"  where logfile_path is a file path or URI specifying the location of the log file
   "-s start_frame"  where start_frame is the first frame to render
   "-e end_frame"  where end_frame is the last frame to render
   "-i increment"  where increment is the number of frames to advance before rendering a new frame
   "-mem_usage image_cache_percent max_mem_percent"  memory limits
   "-mfr ON_or_OFF max_cpu_percent"  Multi-Frame Rendering on or off and its CPU limit
   "-v verbose_flag"  where verbose_flag is ERRORS or ERRORS_AND_PROGRESS (default)
   "-close close_flag"  where close_flag is DO_NOT_SAVE_CHANGES (default), SAVE_CHANGES or DO_NOT_CLOSE
   "-sound sound_flag"  where sound_flag is ON or OFF (default)
   "-version"  displays the version number of aerender to the console. Does not render.
   "-continueOnMissingFootage"  Do not stop rendering on missing footage. Log and render with placeholder color bars."#;

#[cfg(test)]
mod tests {
    use super::*;

    const MODERN: FlagProfile = FlagProfile {
        supports_2022_flags: true,
        reject_late_reuse: false,
        script_hook: false,
    };

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    /// No arguments, `-help` or `-h` anywhere mean usage; `-version` means banner only.
    #[test]
    fn launcher_recognises_usage_and_version() {
        assert_eq!(classify(&[], MODERN), Invocation::Usage);
        assert_eq!(classify(&strings(&["-comp", "x", "-help"]), MODERN), Invocation::Usage);
        assert_eq!(classify(&strings(&["-h"]), MODERN), Invocation::Usage);
        assert_eq!(classify(&strings(&["-version"]), MODERN), Invocation::Version);
    }

    /// `-reuse` after other flags reaches the script when the nexrender #699 profile is on.
    #[test]
    fn late_reuse_is_passed_to_the_script_when_rejected() {
        let late = strings(&["-project", "p", "-reuse"]);
        let strict = FlagProfile {
            reject_late_reuse: true,
            ..MODERN
        };
        let Invocation::Render { reuse, script_args } = classify(&late, strict) else {
            panic!("render expected")
        };
        assert!(!reuse);
        assert_eq!(
            parse_script_args(&script_args, strict).unwrap_err(),
            "Illegal argument flag: -reuse"
        );
        let Invocation::Render { reuse, .. } = classify(&late, MODERN) else {
            panic!("render expected")
        };
        assert!(reuse);
    }

    /// Every documented flag parses and quotes around values are stripped once.
    #[test]
    fn parses_all_flags() {
        let argv = strings(&[
            "-project",
            "\"/p/a b.aep\"",
            "-comp",
            "Main",
            "-s",
            "3",
            "-e",
            "9",
            "-i",
            "2",
            "-output",
            "/o/f_[#####].png",
            "-mem_usage",
            "50",
            "70",
            "-mfr",
            "ON",
            "90",
            "-v",
            "ERRORS",
            "-close",
            "DO_NOT_SAVE_CHANGES",
            "-sound",
            "OFF",
            "-continueOnMissingFootage",
            "-doSavePrefsOnQuit",
            "-port",
            "x",
            "-log",
            "/l.txt",
        ]);
        let parsed = parse_script_args(&argv, MODERN).unwrap();
        assert_eq!(parsed.project.as_deref(), Some("/p/a b.aep"));
        assert_eq!(parsed.mem_usage, Some(("50".to_owned(), "70".to_owned())));
        assert!(parsed.mfr_on());
        assert!(parsed.continue_on_missing_footage && parsed.do_save_prefs_on_quit);
    }

    /// Unknown flags, wrong case and trailing value flags give the script's messages.
    #[test]
    fn syntax_errors_use_script_messages() {
        assert_eq!(
            parse_script_args(&strings(&["-Comp", "x"]), MODERN).unwrap_err(),
            "Illegal argument flag: -Comp"
        );
        assert_eq!(
            parse_script_args(&strings(&["-comp"]), MODERN).unwrap_err(),
            "no value given for flag: -comp"
        );
        assert_eq!(
            parse_script_args(&strings(&["-mem_usage", "5"]), MODERN).unwrap_err(),
            "no value given for flag: -mem_usage"
        );
        let legacy = FlagProfile {
            supports_2022_flags: false,
            ..MODERN
        };
        assert_eq!(
            parse_script_args(&strings(&["-mfr", "ON", "90"]), legacy).unwrap_err(),
            "Illegal argument flag: -mfr"
        );
    }

    /// `-r` is an illegal flag unless the startup hook taught the script about it.
    #[test]
    fn script_flag_needs_the_hook() {
        let argv = strings(&["-project", "p", "-r", "\"/w/apply.jsx\""]);
        assert_eq!(
            parse_script_args(&argv, MODERN).unwrap_err(),
            "Illegal argument flag: -r"
        );
        let hooked = FlagProfile {
            script_hook: true,
            ..MODERN
        };
        let parsed = parse_script_args(&argv, hooked).unwrap();
        assert_eq!(parsed.script.as_deref(), Some("/w/apply.jsx"));
        assert_eq!(
            parse_script_args(&strings(&["-r"]), hooked).unwrap_err(),
            "no value given for flag: -r"
        );
    }

    /// `parse_int` behaves like JavaScript's `parseInt` for the values aerender sees.
    #[test]
    fn parse_int_is_lenient_like_javascript() {
        assert_eq!(parse_int("12"), Some(12));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("7abc"), Some(7));
        assert_eq!(parse_int("abc"), None);
    }
}
