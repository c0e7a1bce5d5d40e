//! Frame retention on the node (docs/encode.md, *Frames after the job*): a `RemoveFrames` command
//! removes a finished job's frames folder (`<output root>/<job id>/`, the render layout) off the
//! async threads, and the job is confirmed with the next heartbeat that gets through. A folder
//! already gone counts as removed; one that cannot be removed is not confirmed, so the control
//! plane asks again later.

use flatrender_proto::{pb, types::JobId};
use tracing::{info, warn};

use super::{Agent, lock};
use crate::runner::layout;

impl Agent {
    /// Starts removing the frames a `RemoveFrames` command names.
    pub(super) fn remove_frames(&self, command: &pb::RemoveFrames) {
        // Only a job id names a folder: never a path from the wire.
        let Ok(job_id) = JobId::parse_field(&command.job_id, "job_id") else {
            return warn!(job_id = %command.job_id, "RemoveFrames for a malformed job id ignored");
        };
        let dir = layout::frames_dir(&self.config.aerender.output_root, &job_id.to_string(), None);
        let confirmed = self.frames_removed.clone();
        tokio::spawn(async move {
            let path = dir.clone();
            let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(true),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(error) => Err(error),
            })
            .await;
            match removed {
                Ok(Ok(existed)) => {
                    info!(%job_id, path = %path.display(), existed, "finished job's frames removed");
                    lock(&confirmed).push(job_id.to_string());
                }
                Ok(Err(error)) => {
                    warn!(%job_id, path = %path.display(), %error, "could not remove a finished job's frames")
                }
                Err(error) => warn!(%job_id, %error, "removing a finished job's frames did not finish"),
            }
        });
    }

    /// The jobs whose frames were removed since the last heartbeat that got through (taken; give
    /// them back with [`Self::keep_frames_removed`] when the heartbeat fails).
    pub(super) fn take_frames_removed(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.frames_removed))
    }

    /// Puts confirmations back for the next heartbeat.
    pub(super) fn keep_frames_removed(&self, job_ids: Vec<String>) {
        lock(&self.frames_removed).extend(job_ids);
    }
}
