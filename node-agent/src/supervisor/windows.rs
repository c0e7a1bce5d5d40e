//! Windows side of the tree handle: each render process gets its own Job Object. Every process
//! it starts joins the job automatically, `TerminateJobObject` ends them all at once, and
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` kills them when the handle closes — also when the agent
//! itself dies. `JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION` turns the Windows Error Reporting
//! crash dialog of a crashing `AfterFX.exe` (docs/aerender.md §5.1, nexrender #921) into a
//! plain exit. Processes started between spawn and `AssignProcessToJobObject` (a few
//! microseconds, before aerender has launched AE) are found by their tag instead.
//!
//! Windows has no polite termination request for a windowless console tree, so "terminate" and
//! "kill" both terminate the job; the kill grace is only time for the processes to disappear.

// The Job Object API exists only as raw Win32 calls. Each `unsafe` block is one call with
// arguments built right there (a handle this module owns, or a pointer to a local struct).
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::process::ExitStatus;

use tokio::process::{Child, Command};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_BASIC_LIMIT_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectExtendedLimitInformation, SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Threading::{CREATE_NO_WINDOW, IO_COUNTERS};

use super::process::ExitInfo;
use super::{SupervisorError, SupervisorResult};

/// Exit code given to processes ended by `TerminateJobObject`.
const KILLED_EXIT_CODE: u32 = 1;

/// No console window for aerender and the AE console host.
pub(super) fn prepare(command: &mut Command) {
    command.creation_flags(CREATE_NO_WINDOW);
}

/// An owned job handle. Stored as an integer so the type is `Send` without an `unsafe impl`;
/// the handle is only used through this type and closed exactly once, in `drop`.
#[derive(Debug)]
struct OwnedJob(isize);

impl OwnedJob {
    fn raw(&self) -> HANDLE {
        self.0 as HANDLE
    }
}

impl Drop for OwnedJob {
    fn drop(&mut self) {
        // SAFETY: the handle came from CreateJobObjectW and is closed only here.
        unsafe { CloseHandle(self.raw()) };
    }
}

/// The render tree's Job Object.
#[derive(Debug)]
pub(super) struct TreeHandle {
    job: OwnedJob,
}

impl TreeHandle {
    /// Creates a kill-on-close job and puts the just-spawned `child` into it.
    pub(super) fn attach(child: &Child) -> SupervisorResult<Self> {
        let last_error = || SupervisorError::JobObject(std::io::Error::last_os_error());
        // SAFETY: null attributes and name are documented as valid (default security, unnamed).
        let handle = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
        if handle.is_null() {
            return Err(last_error());
        }
        let job = OwnedJob(handle as isize);
        let limits = JOBOBJECT_EXTENDED_LIMIT_INFORMATION {
            BasicLimitInformation: JOBOBJECT_BASIC_LIMIT_INFORMATION {
                PerProcessUserTimeLimit: 0,
                PerJobUserTimeLimit: 0,
                LimitFlags: JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION,
                MinimumWorkingSetSize: 0,
                MaximumWorkingSetSize: 0,
                ActiveProcessLimit: 0,
                Affinity: 0,
                PriorityClass: 0,
                SchedulingClass: 0,
            },
            IoInfo: IO_COUNTERS {
                ReadOperationCount: 0,
                WriteOperationCount: 0,
                OtherOperationCount: 0,
                ReadTransferCount: 0,
                WriteTransferCount: 0,
                OtherTransferCount: 0,
            },
            ProcessMemoryLimit: 0,
            JobMemoryLimit: 0,
            PeakProcessMemoryUsed: 0,
            PeakJobMemoryUsed: 0,
        };
        let limits_size = u32::try_from(size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>()).unwrap_or(u32::MAX);
        // SAFETY: `limits` is a live local of exactly the type and size the class expects.
        let limits_set = unsafe {
            SetInformationJobObject(
                job.raw(),
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast::<c_void>(),
                limits_size,
            )
        };
        if limits_set == 0 {
            return Err(last_error());
        }
        let process = child.raw_handle().ok_or_else(|| {
            SupervisorError::JobObject(std::io::Error::other("the render process was already reaped"))
        })?;
        // SAFETY: both handles are open: the job is owned here, the process by `child`.
        let assigned = unsafe { AssignProcessToJobObject(job.raw(), process as HANDLE) };
        if assigned == 0 {
            return Err(last_error());
        }
        Ok(Self { job })
    }

    /// Terminates every process in the job (see the module doc for why `forcibly` is ignored).
    pub(super) fn signal(&self, _forcibly: bool) {
        // SAFETY: the job handle is open for the lifetime of `self`.
        let terminated = unsafe { TerminateJobObject(self.job.raw(), KILLED_EXIT_CODE) };
        if terminated == 0 {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, "terminating the render job object failed");
        }
    }
}

/// Exit code (crashes appear as NTSTATUS values read as `i32`); Windows has no signals.
pub(super) fn exit_info(status: ExitStatus) -> ExitInfo {
    ExitInfo {
        code: status.code(),
        signal: None,
    }
}
