//! Over-size requests answer `RESOURCE_EXHAUSTED`, as gRPC's status-code table says, instead of
//! the `OUT_OF_RANGE` tonic's decoder produces when a message passes
//! `server.max_message_bytes`. Clients retry or shrink on the former; the latter means
//! "iterated past the end".

use tonic::codegen::http::{HeaderValue, Response};
use tower::util::MapResponseLayer;

/// What tonic's decoder says (percent-encoded in `grpc-message`) when a message is too large.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// The layer that rewrites tonic's over-size status.
pub fn layer<B>() -> MapResponseLayer<fn(Response<B>) -> Response<B>> {
    MapResponseLayer::new(rewrite::<B>)
}

fn rewrite<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == b"11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|message| message.to_str().ok())
        .is_some_and(|message| message.replace("%20", " ").contains(TONIC_TOO_LARGE));
    if out_of_range && too_large {
        // 8 = RESOURCE_EXHAUSTED.
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: &'static str, message: &'static str) -> Response<()> {
        let mut response = Response::new(());
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static(status));
        response
            .headers_mut()
            .insert("grpc-message", HeaderValue::from_static(message));
        response
    }

    /// Only tonic's over-size answer changes; a handler's own OUT_OF_RANGE is left alone.
    #[test]
    fn only_oversize_becomes_resource_exhausted() {
        let rewritten = rewrite(response(
            "11",
            "Error,%20decoded%20message%20length%20too%20large:%20found%2070000%20bytes",
        ));
        assert_eq!(rewritten.headers()["grpc-status"], "8");
        let kept = rewrite(response("11", "page%20past%20the%20end"));
        assert_eq!(kept.headers()["grpc-status"], "11");
        let other = rewrite(response("3", "decoded%20message%20length%20too%20large"));
        assert_eq!(other.headers()["grpc-status"], "3");
    }
}
