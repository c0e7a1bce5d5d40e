//! Unix side of the tree handle: the render process leads its own process group
//! (`process_group(0)`, so the group id is its pid), which `killpg` signals as a whole.
//! Descendants that leave the group (`setsid`/`setpgid`) are found by their tag instead.

use std::process::ExitStatus;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::process::ExitInfo;
use super::{SupervisorError, SupervisorResult};

/// Puts the child into a new process group of its own.
pub(super) fn prepare(command: &mut Command) {
    command.process_group(0);
}

/// The render tree's process group.
#[derive(Debug)]
pub(super) struct TreeHandle {
    process_group: Pid,
}

impl TreeHandle {
    /// The group led by the just-spawned `child`.
    pub(super) fn attach(child: &Child) -> SupervisorResult<Self> {
        let pid = child.id().ok_or_else(|| SupervisorError::Io {
            context: "reading the render process id".to_owned(),
            source: std::io::Error::other("the process was already reaped"),
        })?;
        let process_group = i32::try_from(pid).map_err(|_| SupervisorError::Io {
            context: format!("process id {pid} does not fit a pid_t"),
            source: std::io::Error::other("pid out of range"),
        })?;
        Ok(Self {
            process_group: Pid::from_raw(process_group),
        })
    }

    /// SIGTERM (or SIGKILL when `forcibly`) to every process in the group. A group that no
    /// longer exists (ESRCH) is fine. The group id is the root's pid: it cannot be reused for a
    /// new group while any member lives, and the kernel reuses pids only after wrapping around.
    pub(super) fn signal(&self, forcibly: bool) {
        let signal = if forcibly { Signal::SIGKILL } else { Signal::SIGTERM };
        if let Err(error) = killpg(self.process_group, signal)
            && error != nix::errno::Errno::ESRCH
        {
            tracing::warn!(process_group = self.process_group.as_raw(), %error, "signalling the render process group failed");
        }
    }
}

/// Exit code, or the signal that ended the process.
pub(super) fn exit_info(status: ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    ExitInfo {
        code: status.code(),
        signal: status.signal(),
    }
}
