//! Test helpers every test suite of the workspace shares (feature `testing`): a bearer-token
//! request and condition polling with a generous deadline. The machines are shared (2 cores,
//! load ~7 under CI), so waits are long and reached only when something is really wrong, and
//! nothing asserts how fast something happened.

use std::time::Duration;

use tonic::Request;

/// How long a test waits for something that takes well under a second on an idle machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// `message` with `authorization: Bearer token`.
///
/// # Panics
/// When `token` is not valid header text (a test's own mistake).
pub fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    #[allow(clippy::expect_used)]
    let value = format!("Bearer {token}").parse().expect("a token is header text");
    request.metadata_mut().insert("authorization", value);
    request
}

/// Polls `check` every 50 ms until it is true (`true`) or [`PATIENCE`] passes (`false`).
pub async fn eventually<F, Fut>(check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(PATIENCE, check).await
}

/// [`eventually`] with an explicit deadline, for waits that legitimately take longer.
pub async fn eventually_within<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
