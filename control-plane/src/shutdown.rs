//! Waiting that gives way to shutdown: every periodic background task sleeps through here.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps unless shutdown comes first; true when shutting down.
pub(crate) async fn sleep_or_shutdown(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
