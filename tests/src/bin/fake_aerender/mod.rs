//! The aerender test double. Behaviour follows `docs/aerender.md` (§2 flags, §3 output, §4 exit
//! codes, §10 the double's spec) and AE's `commandLineRenderer.jsx`. It knows nothing about the
//! agent; the agent must not know about it.
//!
//! # Layout
//! * `args` — launcher and script argument parsing, usage text.
//! * `flow` — one invocation in the real order: banner, launch, flags, `-log`, project.
//! * `queue` — which queue item(s) to render, templates, output, frame range.
//! * `render` — one queue item: header blocks, frames and files, in-render failures.
//! * `sink` — stdout / `-log` file / AE render log / console noise, banner-last ordering.
//! * `project` — the project description; `scenario` — the misbehaviour settings.
//! * `content` — FlatRender's startup hook: `-r <script>`, the data line, the applied frames.
//! * `tree` — run counter, instance lock, signal handling, the "After Effects" child process.
//! * `png`, `timefmt`, `clock` — encoders and formatting helpers.
//!
//! # Project file
//! `-project` must name an existing file (else `aerender ERROR: No project provided and no
//! project open.`, exit 7). Any file is a project. If it contains lines like these (others,
//! including binary `.aep` bytes, are ignored), they describe it:
//! ```text
//! # a comment
//! display_start_frame=0          # project frame numbering starts at 0 (or 1)
//! comp "Main" fps=25 frames=250 start=0 width=1920 height=1080
//! rq "Main" output="/renders/main_[#####].png" status=queued   # status: queued|needs_output|will_continue|done
//! rs_template "My Render Settings"   # extra templates besides AE's stock ones
//! om_template "My PNG Sequence"
//! set mode=crash at_frame=12         # scenario keys carried by the project (lowest priority)
//! layer "Main" "Title" type=text props="Text>Source Text;Transform>Opacity"
//! layer "Main" "Background" type=solid
//! ```
//! Without `comp` lines every comp name exists (25 fps, 125 frames, 1920x1080). Without `rq`
//! lines the render queue is empty: `-comp` adds the comp ("Adding specified comp to Render
//! Queue", needs `-output`), `-rqindex` is out of range, and no target renders nothing.
//!
//! `layer "<Comp>" "<Layer>" type=<t> [props="<path>;<path>"]` (same quoting as `comp`/`rq`)
//! describes a layer; `t` is one of `text`, `solid`, `footage`, `precomp`, `shape`, `null`,
//! `adjustment`, `camera`, `light` (any other value, or none, makes a layer that passes no type
//! check). A comp with `layer` lines has exactly those layers (names compared exactly); a comp
//! without any accepts every layer name, type and property. `props=` lists the `>`-separated
//! property paths the layer has (`props=""`: none); without it every path exists.
//!
//! # FlatRender's scripts (`-r`)
//! As AE with FlatRender's startup hook (docs/content.md, "Applying the values"): `-r <script>`
//! is a flag only when `Scripts/Startup/flatrender_hook.jsx` exists next to the double's own
//! executable (`current_exe()`'s folder); without it `-r` is `aerender SYNTAX ERROR: Illegal
//! argument flag: -r` (exit 3), and a missing value is `no value given for flag: -r`. The hook
//! wraps the `-comp` queue-item lookup, so the script runs only with `-comp`, after the project
//! opened (and its load warnings), before that lookup: `PROGRESS: Running Script: <path>` (always
//! printed, like the script's own lines), then:
//! * unreadable file: `aerender ERROR: Can not open script file. Make sure path is correct:
//!   <path>`, exit 9 (10 with `-log`). The hook throws it inside the stock renderer's `try`, whose
//!   `catch` prints it and sets `EXIT_AE_RUNTIME`; unlike nexrender's patch, no `Runtime error in
//!   After Effects.` follows.
//! * no line starting `var FLATRENDER_DATA = ` (some other script): nothing applied, render as usual.
//! * the first such line, up to its final `;`, is JSON (version 1; `composition`, `scene_index`,
//!   `fields`). Malformed JSON or a missing member: `aerender ERROR: Error executing script:
//!   <path>` + `Error: flatrender: bad data line: <message>`, exit 9 (10). The data's composition
//!   missing from a project with `comp` lines: `Error: flatrender: no composition "<name>"`.
//! * each field in order is checked against the data's composition: the layer exists; without a
//!   `property`, the kind's default target (text/select: text layer; number: `needs a property`;
//!   boolean: any layer; color: solid; image/video/audio: footage; character: precomp); with one,
//!   the path is in `props=`; an asset's `path` exists and its first bytes are a format of its
//!   kind (image: PNG, JPEG, GIF, WebP, TIFF, BMP, PSD; video: ISO-BMFF `ftyp`, WebM/Matroska,
//!   GIF, AVI; audio: ID3, MPEG frame sync, WAVE, `ftyp`, Ogg, FLAC, AIFF), else `cannot import
//!   "<file name>": file not found | the file cannot be read | the file is damaged or not a
//!   supported <kind> format`; a character's composition exists when the project has `comp`
//!   lines. A missing or mistyped value is `bad <kind> value` (colour: four numbers in 0..1), an
//!   unknown kind `unknown kind "<kind>"`. The first failure prints `aerender ERROR: Error
//!   executing script: <path>` + `Error: flatrender: field "<key>" (layer "<layer>"): <reason>`,
//!   exit 9 (10), no frame. Strings are printed verbatim.
//! * all fields apply: PNG frames are filled with the first colour field (RGB premultiplied over
//!   black: alpha 0.5 halves each channel) and carry uncompressed UTF-8 `iTXt` chunks after the
//!   `Comment`: `flatrender:scene` = `<scene_index> <composition>`, then one
//!   `field:<key>` per field: text/select/character verbatim, the number as JSON prints
//!   it, `true`/`false`, the colour `#RRGGBBAA` (upper case, from `color`), the asset's `blake3`.
//!   Without a colour field the frame is the usual gradient. (`field:` and a key of at most 63
//!   characters stay within PNG's 79-byte keyword limit.) Frames of a render without a script
//!   (or without a data line) are byte for byte what they always were; movies are unchanged.
//!
//! # Scenario
//! Key=value pairs from, lowest priority first: the project's `set` lines, the file named by
//! `FAKE_AERENDER_SCENARIO` (one `key=value` per line, `#` comments), and variables
//! `FAKE_AERENDER_<KEY>` (e.g. `FAKE_AERENDER_MODE=stall`). Unknown keys or bad values make the
//! double print `fake-aerender scenario error: …` on stderr and exit 70.
//! `FAKE_AERENDER_STATE_DIR` (optional) holds the run counter `runs` (each invocation is run 1,
//! 2, …), `child.pids` (pids of spawned "After Effects" children) and the instance lock.
//!
//! `mode` (default `success`):
//! * `success` (alias `slow`) — render everything, exit 0.
//! * `error` — the fatal error named by `error`: `no_project`, `comp_not_found`,
//!   `rqindex_not_found`, `rs_template`, `om_template`, `needs_output` (exit 7, at the script's
//!   point for each), `compression` / `script` (nexrender-patched three-line form, exit 9),
//!   `custom` (prints `error_message` verbatim, exit 9), `read_source` (default) / `runtime`
//!   (mid-render at `at_frame`: `aerender Error: After Effects error: <msg>` + `INFO: Render
//!   aborted.`, exit 9), `busy` (exit 1), `launch_1701` (exit 1), `socket` (no text, exit 11).
//!   `exit_code=0` gives "error with exit 0".
//! * `silent_exit` — banner and launch lines, `exit_after_ms` (6000) of silence, exit 0.
//! * `no_render` — the timeSpanStart and Skip Existing Files warnings, no files, exit 0.
//! * `damage` — full render, then `WARNING:…Unable to Render: File Not Found <missing_footage>`
//!   after Total Time Elapsed, exit 0.
//! * `missing_frames` — frames in `missing_frames=a,b` are skipped (no line, no file) when
//!   `-continueOnMissingFootage` is given (plus the File Not Found warning, exit 0); without the
//!   flag the render hangs at the first of them (burning CPU with `stall_cpu=true`).
//! * `hang_after_finish` — never exits after `Finished composition` (`hang_after=total`: after
//!   `Total Time Elapsed`), ~0 CPU, child kept alive.
//! * `stall` — no more output from `at_frame` on, never exits (`stall_cpu=true` spins a core).
//! * `crash` — half-written file for `at_frame`, optional `INFO: Render aborted.`
//!   (`crash_message=aborted`), then SIGABRT (Unix) / exit 0xC0000005 (Windows), or exit
//!   `crash_exit=<code>`.
//! * `crash_dialog` — like `crash` up to the half-written file, then the tree stays alive silently.
//! * `license_popup` — blocks forever after `Finished composition` (`license_at=before`: right
//!   after launch, before anything renders).
//! * `busy` — `aerender ERROR: After Effects can not render for aerender. …`, exit 1.
//! * `disk_full` — the output disk fills up at `at_frame`: a third of that frame is written, then
//!   the write error below.
//!
//! Output write errors (any mode: `disk_full`, a read-only or missing output folder, `/dev/full`
//! as a movie output) are never ignored. aerender.md documents no disk-full text, so the double
//! prints §3.5's write-failure message in the AE error form of §3.5/§10.3.1 (as the mid-render
//! `read_source` error does), `aerender Error: After Effects error: Rendering error while writing
//! to file <path>. An output module failed. The file may be damaged or corrupted.`, then `INFO:
//! Render aborted.`, and exits 9 (§4 `EXIT_AE_RUNTIME`). The frame's progress line is not printed.
//!
//! Targeting: `runs=1` / `runs=1,3` / `runs=2-4` limits the mode to those run numbers (others
//! run clean); `only_comp=<name>` to renders of that `-comp`; `at_frame=<display frame>` is where
//! in-render failures strike (default: the middle frame) — a chunk without that frame renders clean.
//! `exit_code=<n>` overrides the final exit code of a targeted run.
//!
//! Timing: `frame_ms` (10) per frame, `slow_frames=12:65000,13:500` per-frame overrides,
//! `launch_ms` (0) between the two launch lines, `start_delay_ms` (0) before `Starting
//! composition`, `tail_ms` (0) before exiting.
//!
//! Signals: stuck modes (`hang_after_finish`, `stall`, `crash_dialog`, `license_popup`) ignore
//! SIGINT/SIGTERM/SIGHUP, in the parent and the child (`ignore_signals=true|false` overrides).
//!
//! Process tree: `child=true` (default) starts the "After Effects" child named `child_name`
//! (default `aerendercore`, or `AfterFX.com` with `profile=windows`); `child_survives=true`
//! keeps it running after aerender exits or dies, for `child_linger_ms` or forever, holding the
//! project file open; `child_detach=true` puts it in its own process group;
//! `child_stdio=null` stops it inheriting stdout/stderr (by default it holds the pipes, like AE).
//!
//! Output looks: `version` (`24.2.1x2`; below 22 rejects `-mfr`, `-renderSettings`,
//! `-outputSettings`), `profile=windows|macos` (CRLF vs LF, child name; default: host),
//! `banner_last=true|false|auto` (`auto`: macOS profile with piped stdout), `reject_late_reuse`,
//! `lock=true` (second concurrent instance gets the busy error), `timecode=ndf|df|frames`,
//! `field=U|L`, `duplicate_frames`, `quotes=straight|curly|none`, `finish_period`,
//! `locale=en|de`, `noise` (Windows console noise lines), `noise_stream=stdout|stderr`,
//! `invalid_utf8`, `frame_lines=false` (movie without frame lines), `buffered`,
//! `mfr_order=shuffled` + `mfr_index=absolute|chunk` + `mfr_chunk=4` (only with `-mfr ON`),
//! `movie_bytes` (65536, outputs without `[#]`), `png_size=64x36`, `render_log=<path>`
//! (AE-style render log file), `missing_fonts=simple|grouped|both` (+ `font_family`,
//! `font_style`), `missing_footage=<path>`.
//!
//! # Exit codes
//! 0 ok · 2 usage · 3/4 syntax (4 once `-log` is open) · 7/8 aerender runtime (comp, rqindex,
//! template, needs output, no project) · 9/10 AE runtime (output write errors and `-r` script
//! failures included) · 11 socket · 1 launcher failures (busy, -1701) · SIGABRT crash · 70
//! invalid scenario.

mod args;
mod clock;
mod content;
mod flow;
mod png;
mod project;
mod queue;
mod render;
mod scenario;
mod sink;
mod timefmt;
mod tree;

use std::path::Path;

use args::{FlagProfile, Invocation};
use project::Project;
use scenario::Scenario;

/// Exit code when the scenario itself is invalid (EX_SOFTWARE-like, never used by aerender).
const SCENARIO_ERROR_EXIT: i32 = 70;

/// Runs the double (or the "After Effects" child) and returns the exit code.
pub fn run() -> i32 {
    if std::env::var(tree::ENV_ROLE).is_ok_and(|role| role == "child") {
        tree::child_main();
    }
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let project_lines = project_path_in(&argv)
        .and_then(|path| Project::open(Path::new(path)))
        .map(|project| project.scenario_lines)
        .unwrap_or_default();
    let mut scenario = match Scenario::load(&project_lines) {
        Ok(scenario) => scenario,
        Err(message) => {
            eprintln!("fake-aerender scenario error: {message}");
            return SCENARIO_ERROR_EXIT;
        }
    };
    let profile = FlagProfile {
        supports_2022_flags: scenario.major_version() >= 22,
        reject_late_reuse: scenario.reject_late_reuse,
        script_hook: content::hook_installed(),
    };
    match args::classify(&argv, profile) {
        Invocation::Usage => {
            let eol = if scenario.windows_profile { "\r\n" } else { "\n" };
            print!(
                "aerender version {}{eol}{}{eol}",
                scenario.version,
                args::USAGE.replace('\n', eol)
            );
            2
        }
        Invocation::Version => {
            let eol = if scenario.windows_profile { "\r\n" } else { "\n" };
            print!("aerender version {}{eol}", scenario.version);
            0
        }
        Invocation::Render { reuse, script_args } => {
            let run = tree::run_number();
            let comp = value_after(&script_args, "-comp");
            let comp_targeted = scenario.only_comp.as_ref().is_none_or(|only| comp == Some(only));
            if !scenario.applies_to_run(run) || !comp_targeted {
                scenario.neutralize();
            }
            if scenario.ignores_signals() {
                tree::reexec_ignoring_signals(run);
            }
            flow::run(reuse, &script_args, scenario)
        }
    }
}

fn value_after<'a>(argv: &'a [String], flag: &str) -> Option<&'a String> {
    argv.iter()
        .position(|arg| arg == flag)
        .and_then(|position| argv.get(position + 1))
}

fn project_path_in(argv: &[String]) -> Option<&str> {
    value_after(argv, "-project").map(|path| path.trim_matches('"'))
}
