//! Judging a finished aerender run, and the recovery policy: pure functions over what the run
//! produced (exit status, parsed log, watchdog verdict, frames found on disk), plus the
//! crash-loop detector that quarantines the node.
//!
//! Exit codes lie (errors with exit 0, silent early exits, hangs after the finish line), so a run
//! succeeds only when it exited 0 (or was killed after finishing, in the hang-after-finish case),
//! a finish line was seen, no fatal line was printed, and every expected frame file exists with a
//! plausible size.

use std::{collections::VecDeque, time::Duration};

use flatrender_proto::types::{CrashClass, RecoveryAction};
use tokio::time::Instant;

use crate::aerender_log::{ErrorClass, LogSummary, Outcome};

/// Why the supervisor stopped waiting, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watchdog {
    /// The process exited by itself.
    Exited,
    /// No first frame within the start-up budget.
    StartupTimeout,
    /// No output for too long mid-render.
    Stalled,
    /// The finish line was seen but the process did not exit (killed after the tail budget).
    HungAfterFinish,
    /// The absolute cap was reached.
    AbsoluteCap,
    /// The control plane cancelled the lease, or the agent is stopping (killed on purpose).
    Cancelled,
}

/// Everything known about one aerender run.
#[derive(Clone, Debug)]
pub struct RunFacts<'a> {
    /// Exit code, when the process exited by itself with one.
    pub exit_code: Option<i32>,
    /// Signal that ended it (Unix), if any.
    pub signal: Option<i32>,
    /// How waiting ended.
    pub watchdog: Watchdog,
    /// The parsed log.
    pub log: &'a LogSummary,
    /// Frames this run was asked to render.
    pub expected_frames: usize,
    /// Of those, how many exist on disk with a plausible size.
    pub frames_on_disk: usize,
}

/// The verdict on a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every frame is there; report completion.
    Succeeded,
    /// Report a failure with this class and action.
    Failed(Failure),
}

/// A classified failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Class for the control plane.
    pub crash_class: CrashClass,
    /// The log parser's class, when a line explains it.
    pub error_class: Option<ErrorClass>,
    /// What to do.
    pub action: RecoveryAction,
    /// One sentence for people.
    pub message: String,
}

/// Judges a run.
pub fn judge(facts: &RunFacts<'_>) -> Verdict {
    let all_frames = facts.expected_frames > 0 && facts.frames_on_disk >= facts.expected_frames;
    let finished = facts.log.last_item().is_some_and(|item| item.finished) || facts.log.outcome == Outcome::Succeeded;
    // Damaged output is reported after the finish line (§10.3 completed-with-damage).
    let damage = facts
        .log
        .warnings
        .iter()
        .chain(&facts.log.errors)
        .find(|entry| entry.class == ErrorClass::MissingFootage);

    if let Some(fatal) = facts.log.primary_error() {
        return Verdict::Failed(classify_fatal(fatal.class, &fatal.line));
    }
    if let Some(entry) = damage {
        return Verdict::Failed(Failure {
            crash_class: CrashClass::TemplateError,
            error_class: Some(ErrorClass::MissingFootage),
            action: RecoveryAction::FailJob,
            message: format!("footage missing from the template: {}", entry.line),
        });
    }
    match facts.watchdog {
        Watchdog::Cancelled => {
            return Verdict::Failed(Failure {
                crash_class: CrashClass::Unknown,
                error_class: None,
                action: RecoveryAction::Requeue,
                message: "render stopped on purpose (lease cancelled or agent stopping)".into(),
            });
        }
        // Finished and every frame on disk: the hang after the finish line does not matter.
        Watchdog::HungAfterFinish if finished && all_frames => return Verdict::Succeeded,
        Watchdog::HungAfterFinish | Watchdog::Stalled | Watchdog::StartupTimeout | Watchdog::AbsoluteCap => {
            return Verdict::Failed(hang(facts));
        }
        Watchdog::Exited => {}
    }
    if facts.exit_code == Some(0) && finished && all_frames {
        return Verdict::Succeeded;
    }
    if let Some(signal) = facts.signal {
        return Verdict::Failed(crash(format!(
            "aerender was killed by signal {signal} after {} of {} frames",
            facts.frames_on_disk, facts.expected_frames
        )));
    }
    match facts.exit_code {
        Some(0) if finished => Verdict::Failed(Failure {
            crash_class: CrashClass::OutputWrite,
            error_class: None,
            action: RecoveryAction::RetryElsewhere,
            message: format!(
                "aerender reported success but only {} of {} frames are on disk",
                facts.frames_on_disk, facts.expected_frames
            ),
        }),
        Some(0) => Verdict::Failed(crash(format!(
            "aerender exited with 0 without finishing ({} of {} frames); a silent early exit",
            facts.frames_on_disk, facts.expected_frames
        ))),
        Some(code) => Verdict::Failed(crash(format!("aerender exited with code {code} and no error line"))),
        None => Verdict::Failed(crash("aerender ended without an exit code".into())),
    }
}

fn crash(message: String) -> Failure {
    Failure {
        crash_class: CrashClass::Crash,
        error_class: None,
        action: RecoveryAction::RetryElsewhere,
        message,
    }
}

fn hang(facts: &RunFacts<'_>) -> Failure {
    let what = match facts.watchdog {
        Watchdog::StartupTimeout => "no frame within the start-up budget",
        Watchdog::Stalled => "no output for longer than the stall budget",
        Watchdog::HungAfterFinish => "finished but frames are missing and it did not exit",
        _ => "the render exceeded the absolute time cap",
    };
    Failure {
        crash_class: CrashClass::Hang,
        error_class: None,
        action: RecoveryAction::RetryElsewhere,
        message: format!(
            "hang: {what}; killed after {} of {} frames",
            facts.frames_on_disk, facts.expected_frames
        ),
    }
}

/// The policy per fatal class: template problems fail the job (they fail everywhere), machine
/// problems back off or move the chunk elsewhere, crashes retry elsewhere.
pub fn classify_fatal(class: ErrorClass, line: &str) -> Failure {
    use ErrorClass::*;
    let (crash_class, action) = match class {
        CompNotFound | RenderQueueItemNotFound | OutputNotProvided | FootageError | MissingFootage | MissingEffect => {
            (CrashClass::TemplateError, RecoveryAction::FailJob)
        }
        // The project's content does not fit the template (no such layer, wrong layer type): the
        // same on every node, so the job fails at once with the line naming field and layer.
        FieldNotApplied => (CrashClass::TemplateError, RecoveryAction::FailJob),
        // The cached project vanished or is unreadable: refetch it and try again here.
        ProjectMissing => (CrashClass::CacheError, RecoveryAction::RetryHere),
        // Render-settings and output-module templates are installed per machine.
        TemplateNotFound => (CrashClass::TemplateError, RecoveryAction::RetryElsewhere),
        LicenseError => (CrashClass::License, RecoveryAction::BackOff),
        AeBusy => (CrashClass::AeBusy, RecoveryAction::BackOff),
        LaunchFailure => (CrashClass::LaunchFailure, RecoveryAction::RetryElsewhere),
        OutputModuleFailed | LogFileError => (CrashClass::OutputWrite, RecoveryAction::RetryElsewhere),
        SyntaxError | ScriptError | ArgumentIgnored => (CrashClass::LaunchFailure, RecoveryAction::RetryElsewhere),
        AeRuntimeError | RenderAborted | UnknownError => (CrashClass::Crash, RecoveryAction::RetryElsewhere),
        MissingFonts | MissingDependencies | TimeSpanOutOfRange | AeWarning => {
            (CrashClass::TemplateError, RecoveryAction::FailJob)
        }
    };
    // A class that retries elsewhere must not be a template error in the control plane's eyes
    // (that would fail the job): only a FailJob action carries TemplateError there.
    let crash_class = if crash_class == CrashClass::TemplateError && action != RecoveryAction::FailJob {
        CrashClass::Unknown
    } else {
        crash_class
    };
    Failure {
        crash_class,
        error_class: Some(class),
        action,
        message: line.trim().chars().take(1000).collect(),
    }
}

/// Counts crash-like failures in a sliding window; too many means the machine, not the work, is
/// the problem, and the node quarantines itself.
#[derive(Debug)]
pub struct CrashLoopDetector {
    window: Duration,
    threshold: usize,
    crashes: VecDeque<Instant>,
}

impl CrashLoopDetector {
    /// Quarantine after `threshold` crashes within `window`.
    pub fn new(threshold: u32, window: Duration) -> Self {
        Self {
            window,
            threshold: threshold.max(1) as usize,
            crashes: VecDeque::new(),
        }
    }

    /// Records a failure; returns true when the node should quarantine itself now.
    pub fn record(&mut self, class: CrashClass, now: Instant) -> bool {
        if !matches!(
            class,
            CrashClass::Crash | CrashClass::Hang | CrashClass::LaunchFailure | CrashClass::AeBusy
        ) {
            return false;
        }
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.window)
        {
            self.crashes.pop_front();
        }
        self.crashes.len() >= self.threshold
    }

    /// Forgets the history (after a successful render or a probe).
    pub fn reset(&mut self) {
        self.crashes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aerender_log::parse_log;

    const SUCCESS: &str = "PROGRESS:  Starting composition \"Main\".\nPROGRESS:  0:00:00:00 (1): 0 Seconds\nPROGRESS:  Finished composition \"Main\".\n";

    fn facts<'a>(log: &'a LogSummary, exit_code: Option<i32>, watchdog: Watchdog, on_disk: usize) -> RunFacts<'a> {
        RunFacts {
            exit_code,
            signal: None,
            watchdog,
            log,
            expected_frames: 1,
            frames_on_disk: on_disk,
        }
    }

    /// Exit 0, a finish line and the frame on disk: success.
    #[test]
    fn clean_run_succeeds() {
        let log = parse_log(SUCCESS);
        assert_eq!(judge(&facts(&log, Some(0), Watchdog::Exited, 1)), Verdict::Succeeded);
    }

    /// Exit 0 with a finish line but a missing frame is not a success.
    #[test]
    fn missing_frames_fail_despite_exit_zero() {
        let log = parse_log(SUCCESS);
        let Verdict::Failed(failure) = judge(&facts(&log, Some(0), Watchdog::Exited, 0)) else {
            panic!("must fail")
        };
        assert_eq!(failure.crash_class, CrashClass::OutputWrite);
    }

    /// Exit 0 without a finish line is a silent early exit.
    #[test]
    fn silent_early_exit_is_a_crash() {
        let log = parse_log("PROGRESS:  Launching After Effects...\n");
        let Verdict::Failed(failure) = judge(&facts(&log, Some(0), Watchdog::Exited, 0)) else {
            panic!("must fail")
        };
        assert_eq!(failure.crash_class, CrashClass::Crash);
        assert!(failure.message.contains("silent early exit"));
    }

    /// A hang after the finish line with every frame on disk still counts as a success.
    #[test]
    fn hang_after_finish_with_outputs_succeeds() {
        let log = parse_log(SUCCESS);
        assert_eq!(
            judge(&facts(&log, None, Watchdog::HungAfterFinish, 1)),
            Verdict::Succeeded
        );
        let Verdict::Failed(failure) = judge(&facts(&log, None, Watchdog::HungAfterFinish, 0)) else {
            panic!("must fail")
        };
        assert_eq!(failure.crash_class, CrashClass::Hang);
    }

    /// A fatal line wins over exit code 0.
    #[test]
    fn fatal_line_with_exit_zero_fails() {
        let log = parse_log("aerender ERROR: No comp was found with the given name.\n");
        let Verdict::Failed(failure) = judge(&facts(&log, Some(0), Watchdog::Exited, 0)) else {
            panic!("must fail")
        };
        assert_eq!(
            (failure.crash_class, failure.action),
            (CrashClass::TemplateError, RecoveryAction::FailJob)
        );
    }

    /// Machine-level classes back off or move; only template classes fail the job.
    #[test]
    fn policy_per_class() {
        assert_eq!(
            classify_fatal(ErrorClass::LicenseError, "x").action,
            RecoveryAction::BackOff
        );
        assert_eq!(classify_fatal(ErrorClass::AeBusy, "x").crash_class, CrashClass::AeBusy);
        assert_eq!(
            classify_fatal(ErrorClass::ProjectMissing, "x").crash_class,
            CrashClass::CacheError
        );
        let node_template = classify_fatal(ErrorClass::TemplateNotFound, "x");
        assert_eq!(
            (node_template.crash_class, node_template.action),
            (CrashClass::Unknown, RecoveryAction::RetryElsewhere)
        );
        assert_eq!(
            classify_fatal(ErrorClass::AeRuntimeError, "x").action,
            RecoveryAction::RetryElsewhere
        );
    }

    /// A field the script could not apply fails the job as a template error, and the reported
    /// message is the line naming the field and the layer (the job's failure reason starts with
    /// it), even though the script error line came first and the exit code was 9.
    #[test]
    fn field_not_applied_fails_the_job_naming_field_and_layer() {
        let field_line =
            "Error: flatrender: field \"headline\" (layer \"Title\"): no layer of that name in composition \"Intro\"";
        let log = parse_log(&format!(
            "PROGRESS: Running Script: /w/apply.jsx\r\naerender ERROR: Error executing script: /w/apply.jsx\r\n{field_line}\r\n"
        ));
        let Verdict::Failed(failure) = judge(&facts(&log, Some(9), Watchdog::Exited, 0)) else {
            panic!("must fail")
        };
        assert_eq!(
            (failure.crash_class, failure.action, failure.error_class),
            (
                CrashClass::TemplateError,
                RecoveryAction::FailJob,
                Some(ErrorClass::FieldNotApplied)
            )
        );
        assert!(failure.message.starts_with(field_line), "{}", failure.message);
        assert_eq!(ErrorClass::FieldNotApplied.to_string(), "field_not_applied");
    }

    /// Killed by a signal is a crash; cancelled is a hand-back.
    #[test]
    fn signals_and_cancellation() {
        let log = parse_log("PROGRESS:  Starting composition \"Main\".\n");
        let mut run = facts(&log, None, Watchdog::Exited, 0);
        run.signal = Some(6);
        let Verdict::Failed(failure) = judge(&run) else {
            panic!("must fail")
        };
        assert_eq!(failure.crash_class, CrashClass::Crash);
        let Verdict::Failed(failure) = judge(&facts(&log, None, Watchdog::Cancelled, 0)) else {
            panic!("must fail")
        };
        assert_eq!(failure.action, RecoveryAction::Requeue);
    }

    /// Three crashes within the window quarantine; old ones age out; other classes do not count.
    #[tokio::test(start_paused = true)]
    async fn crash_loop_detection() {
        let mut detector = CrashLoopDetector::new(3, Duration::from_secs(60));
        let start = Instant::now();
        assert!(!detector.record(CrashClass::Crash, start));
        assert!(!detector.record(CrashClass::TemplateError, start));
        assert!(!detector.record(CrashClass::Hang, start + Duration::from_secs(10)));
        assert!(
            !detector.record(CrashClass::Crash, start + Duration::from_secs(65)),
            "the first crash aged out"
        );
        assert!(detector.record(CrashClass::Crash, start + Duration::from_secs(66)));
        detector.reset();
        assert!(!detector.record(CrashClass::Crash, start + Duration::from_secs(102)));
    }
}
