//! Process-table scans with `sysinfo`: finding the processes that carry a supervisor tag
//! (`FLATRENDER_PROCESS_TAG=<tag>` in their environment), terminating them with escalation and
//! verification, and counting After Effects processes for health.
//!
//! The environment is read the same way on every OS through `sysinfo` (Linux: `/proc/<pid>/environ`;
//! macOS: `sysctl KERN_PROCARGS2`; Windows: the process's PEB), which works for processes of the
//! agent's own user (or any user when the agent runs as root / SYSTEM). Zombies are dead and are
//! never reported as alive. Scans take a few milliseconds and run on the blocking pool.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::time::Duration;

use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, Signal, System, UpdateKind};
use tokio::time::Instant;

/// The environment variable that marks every process of a supervised tree.
pub const PROCESS_TAG_ENV: &str = "FLATRENDER_PROCESS_TAG";

/// How often a scan is repeated while waiting for processes to go.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long to wait for SIGKILLed / terminated processes to disappear before calling them survivors.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// What a kill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillReport {
    /// Every process that was signalled (asked to terminate, or killed).
    pub signalled: Vec<u32>,
    /// The processes still alive after the grace period, which were killed forcibly.
    pub forced: Vec<u32>,
    /// Processes of the tree still alive after the forced kill (should be empty).
    pub survivors: Vec<u32>,
}

/// Which tag values a scan matches.
#[derive(Debug, Clone)]
pub(crate) enum TagMatch {
    /// The value equals the tag.
    Exact(String),
    /// The value starts with this prefix.
    Prefix(String),
}

impl TagMatch {
    fn matches(&self, environment_entry: &OsStr) -> bool {
        let Some(value) = environment_entry
            .as_encoded_bytes()
            .strip_prefix(PROCESS_TAG_ENV.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        else {
            return false;
        };
        match self {
            Self::Exact(tag) => value == tag.as_bytes(),
            Self::Prefix(prefix) => value.starts_with(prefix.as_bytes()),
        }
    }
}

/// What to do with each tagged process found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanAction {
    /// Only list it.
    List,
    /// Ask it to terminate (SIGTERM; on Windows there is no such request, so this kills).
    Terminate,
    /// Kill it (SIGKILL / TerminateProcess).
    Kill,
}

/// Lists (and signals) the live processes whose tag matches, except this process. Blocking.
pub(crate) fn scan_tagged_blocking(tag_match: &TagMatch, action: ScanAction) -> Vec<u32> {
    let mut system = System::new();
    let refresh = ProcessRefreshKind::nothing()
        .without_tasks()
        .with_environ(UpdateKind::Always);
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh);
    let own_pid = std::process::id();
    let mut found = Vec::new();
    for (pid, process) in system.processes() {
        let is_dead = matches!(process.status(), ProcessStatus::Zombie | ProcessStatus::Dead);
        if pid.as_u32() == own_pid || is_dead || process.thread_kind().is_some() {
            continue;
        }
        if !process.environ().iter().any(|entry| tag_match.matches(entry)) {
            continue;
        }
        match action {
            ScanAction::List => {}
            // `kill_with` is `None` where the signal does not exist (Windows): kill instead.
            ScanAction::Terminate => {
                if process.kill_with(Signal::Term).is_none() {
                    process.kill();
                }
            }
            ScanAction::Kill => {
                process.kill();
            }
        }
        found.push(pid.as_u32());
    }
    found.sort_unstable();
    found
}

/// [`scan_tagged_blocking`] on the blocking pool.
pub(crate) async fn scan_tagged(tag_match: &TagMatch, action: ScanAction) -> Vec<u32> {
    let tag_match = tag_match.clone();
    match tokio::task::spawn_blocking(move || scan_tagged_blocking(&tag_match, action)).await {
        Ok(pids) => pids,
        Err(error) => {
            tracing::error!(%error, "process scan failed");
            Vec::new()
        }
    }
}

/// The handle on a tree beyond its tag: its process group or Job Object, and its root process.
pub(crate) trait TreeControl: Send {
    /// Signals the whole tree at once (process group / Job Object); `forcibly` = SIGKILL.
    fn signal_tree(&mut self, forcibly: bool);
    /// Whether the tree's root process has exited (and is reaped).
    fn root_exited(&mut self) -> bool;
}

/// No handle beyond the tag (leftovers of an earlier agent run).
struct TagOnly;

impl TreeControl for TagOnly {
    fn signal_tree(&mut self, _forcibly: bool) {}

    fn root_exited(&mut self) -> bool {
        true
    }
}

/// Asks every process of the tree to terminate, waits up to `grace`, kills what is left, and
/// waits up to a few seconds more for everything to disappear.
pub(crate) async fn terminate_tree(tag_match: &TagMatch, grace: Duration, tree: &mut dyn TreeControl) -> KillReport {
    let mut signalled: BTreeSet<u32> = scan_tagged(tag_match, ScanAction::Terminate)
        .await
        .into_iter()
        .collect();
    tree.signal_tree(false);
    let grace_deadline = Instant::now() + grace;
    loop {
        let alive = scan_tagged(tag_match, ScanAction::List).await;
        if alive.is_empty() && tree.root_exited() {
            return KillReport {
                signalled: signalled.into_iter().collect(),
                ..KillReport::default()
            };
        }
        if Instant::now() >= grace_deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // Kill by tag first, so `forced` lists what was still alive before the group kill.
    let forced = scan_tagged(tag_match, ScanAction::Kill).await;
    tree.signal_tree(true);
    signalled.extend(&forced);
    let verify_deadline = Instant::now() + VERIFY_TIMEOUT;
    let survivors = loop {
        // Killing again on every round also catches processes forked during the kill.
        let alive = scan_tagged(tag_match, ScanAction::Kill).await;
        signalled.extend(&alive);
        if (alive.is_empty() && tree.root_exited()) || Instant::now() >= verify_deadline {
            break alive;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    if !survivors.is_empty() {
        tracing::error!(?survivors, "processes of the render tree survived a forced kill");
    }
    KillReport {
        signalled: signalled.into_iter().collect(),
        forced,
        survivors,
    }
}

/// Terminates every process whose tag starts with `tag_prefix` (with `grace` before forcing), e.g.
/// After Effects processes left behind when an earlier run of the agent crashed. Call it at
/// start-up with the prefix this node uses for all its tags. An empty prefix is refused (it would
/// hit other agents' trees) and returns an empty report.
pub async fn sweep_tagged(tag_prefix: &str, grace: Duration) -> KillReport {
    if tag_prefix.is_empty() {
        tracing::warn!("refusing to sweep processes with an empty tag prefix");
        return KillReport::default();
    }
    let report = terminate_tree(&TagMatch::Prefix(tag_prefix.to_owned()), grace, &mut TagOnly).await;
    if !report.signalled.is_empty() {
        tracing::warn!(
            tag_prefix,
            num_processes = report.signalled.len(),
            "swept leftover render processes"
        );
    }
    report
}

/// Processes with one of the given names, and their resident memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessCount {
    /// How many processes matched.
    pub num_processes: usize,
    /// Their total resident memory in bytes.
    pub memory_bytes: u64,
    /// Their pids, ascending.
    pub pids: Vec<u32>,
}

/// Counts live processes named like one of `names` (ASCII case-insensitive, `.exe` optional;
/// e.g. [`crate::health::DEFAULT_AE_PROCESS_NAMES`]). Blocking: call it from `spawn_blocking`.
pub fn count_processes_named(names: &[&str]) -> ProcessCount {
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().without_tasks().with_memory(),
    );
    let mut count = ProcessCount::default();
    for (pid, process) in system.processes() {
        let is_dead = matches!(process.status(), ProcessStatus::Zombie | ProcessStatus::Dead);
        if is_dead || process.thread_kind().is_some() {
            continue;
        }
        let process_name = process.name().to_string_lossy();
        if names.iter().any(|name| same_program_name(&process_name, name)) {
            count.num_processes += 1;
            count.memory_bytes += process.memory();
            count.pids.push(pid.as_u32());
        }
    }
    count.pids.sort_unstable();
    count
}

fn same_program_name(process_name: &str, wanted: &str) -> bool {
    fn without_exe(name: &str) -> &str {
        match name.len().checked_sub(4) {
            Some(split) if name.is_char_boundary(split) && name[split..].eq_ignore_ascii_case(".exe") => &name[..split],
            _ => name,
        }
    }
    without_exe(process_name).eq_ignore_ascii_case(without_exe(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact tags match only themselves, prefixes match longer tags, other variables never.
    #[test]
    fn tag_matching() {
        let exact = TagMatch::Exact("node1/job7".to_owned());
        let prefix = TagMatch::Prefix("node1/".to_owned());
        assert!(exact.matches(OsStr::new("FLATRENDER_PROCESS_TAG=node1/job7")));
        assert!(!exact.matches(OsStr::new("FLATRENDER_PROCESS_TAG=node1/job70")));
        assert!(prefix.matches(OsStr::new("FLATRENDER_PROCESS_TAG=node1/job70")));
        assert!(!prefix.matches(OsStr::new("FLATRENDER_PROCESS_TAG=node2/job70")));
        assert!(!prefix.matches(OsStr::new("FLATRENDER_PROCESS_TAGX=node1/job70")));
        assert!(!prefix.matches(OsStr::new("OTHER=FLATRENDER_PROCESS_TAG=node1/")));
    }

    /// Program names compare case-insensitively with or without `.exe`.
    #[test]
    fn program_names_ignore_case_and_exe() {
        assert!(same_program_name("AfterFX.exe", "afterfx"));
        assert!(same_program_name("aerender", "aerender.exe"));
        assert!(same_program_name("AfterFX.com", "AfterFX.com"));
        assert!(!same_program_name("AfterFX.com", "AfterFX"));
        assert!(!same_program_name("aerendercore", "aerender"));
    }

    /// A long-lived child process (killed when the test ends, also on panic).
    #[cfg(unix)]
    fn sleeping_child(tag: Option<&str>) -> tokio::process::Child {
        let mut command = tokio::process::Command::new("sleep");
        command.arg("600").kill_on_drop(true).env_remove(PROCESS_TAG_ENV);
        if let Some(tag) = tag {
            command.env(PROCESS_TAG_ENV, tag);
        }
        command.spawn().expect("spawn sleep")
    }

    /// A scan finds the live child carrying the tag, neither an untagged child nor one with a
    /// longer tag nor this process; a prefix scan finds both tagged children; killing by tag ends
    /// the tagged child and leaves the others running.
    #[cfg(unix)]
    #[tokio::test]
    async fn scan_finds_and_kills_only_the_tagged_child() {
        let tag = format!("processes-test-{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let mut tagged = sleeping_child(Some(&tag));
        let mut longer_tag = sleeping_child(Some(&format!("{tag}-other")));
        let mut untagged = sleeping_child(None);
        let tagged_pid = tagged.id().expect("tagged pid");
        let longer_tag_pid = longer_tag.id().expect("longer-tag pid");
        let untagged_pid = untagged.id().expect("untagged pid");

        let exact = TagMatch::Exact(tag.clone());
        // The environment is readable once the child has exec'd; wait for that, not for a time.
        let deadline = Instant::now() + Duration::from_secs(30);
        let found = loop {
            let found = scan_tagged(&exact, ScanAction::List).await;
            if found.contains(&tagged_pid) || Instant::now() >= deadline {
                break found;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        assert_eq!(found, vec![tagged_pid]);
        let mut both_tagged = vec![tagged_pid, longer_tag_pid];
        both_tagged.sort_unstable();
        assert_eq!(
            scan_tagged(&TagMatch::Prefix(tag.clone()), ScanAction::List).await,
            both_tagged
        );
        assert!(!both_tagged.contains(&untagged_pid) && !found.contains(&std::process::id()));

        assert_eq!(scan_tagged(&exact, ScanAction::Kill).await, vec![tagged_pid]);
        let status = tokio::time::timeout(Duration::from_secs(30), tagged.wait())
            .await
            .expect("the killed child exits")
            .expect("wait");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(
            longer_tag.try_wait().expect("try_wait").is_none(),
            "longer tag still runs"
        );
        assert!(untagged.try_wait().expect("try_wait").is_none(), "untagged still runs");
    }
}
