//! The client side of a connection to the control plane, shared by the node agent and `frctl`:
//! an `https://` endpoint trusts exactly the CA given (the farm's own, not the system's roots),
//! an `http://` one is plaintext. Each caller words the errors as advice for its own users.

use std::time::Duration;

use thiserror::Error;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// Why no endpoint could be built for a URL.
#[derive(Debug, Error)]
pub enum EndpointError {
    /// The text is not a URL tonic can connect to.
    #[error("bad endpoint {url}: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// tonic's reason.
        source: tonic::transport::Error,
    },
    /// An `https://` URL with no CA to trust.
    #[error("{url} uses TLS but no CA certificate was given")]
    MissingCa {
        /// The URL as given.
        url: String,
    },
    /// The TLS settings were refused (e.g. no host name to check the certificate against).
    #[error("TLS for {url}: {source}")]
    Tls {
        /// The URL as given.
        url: String,
        /// tonic's reason.
        source: tonic::transport::Error,
    },
}

/// A gRPC endpoint for `url` connecting within `connect_timeout`, with TCP keep-alive and no Nagle
/// delay: TLS trusting only `ca_pem` (PEM) for `https://`, plaintext otherwise.
pub fn endpoint(url: &str, ca_pem: Option<&[u8]>, connect_timeout: Duration) -> Result<Endpoint, EndpointError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| EndpointError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(connect_timeout)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        // Small request/reply calls: Nagle plus delayed ACK would add ~40 ms to each.
        .tcp_nodelay(true);
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let ca = ca_pem.ok_or_else(|| EndpointError::MissingCa { url: url.to_owned() })?;
    endpoint
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .map_err(|source| EndpointError::Tls {
            url: url.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);
    /// A self-signed CA (P-256, `openssl req -x509`); the handshake against a CA is covered end to
    /// end (tests/tests/e2e/tls.rs).
    const CA_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\n\
MIIBkjCCATegAwIBAgIUHglTwXRn4P1zbNBF5pZK6MAPunMwCgYIKoZIzj0EAwIw\n\
HTEbMBkGA1UEAwwSZmxhdHJlbmRlci10ZXN0LWNhMCAXDTI2MTIwMTAxMzQ1NFoY\n\
DzIxMjYxMTA3MDEzNDU0WjAdMRswGQYDVQQDDBJmbGF0cmVuZGVyLXRlc3QtY2Ew\n\
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARzEpkrK2cfbXQQ6WLapyhzYzKR3LLs\n\
tskHc2SBVe90hCnNoS4s+2w+BaoH0F7l8H5hGsDFTW1cDaIx7Oi1Z/Ioo1MwUTAd\n\
BgNVHQ4EFgQUltUJm/V8Xi0U5jhw/aNrPksY0TcwHwYDVR0jBBgwFoAUltUJm/V8\n\
Xi0U5jhw/aNrPksY0TcwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG\n\
AiEAvGM0ULP6I/+y0Q3f7BbHbeb4AxHVw6hI4P7avF8hL8gCIQCp+1GJ7pVZwXWq\n\
NGxRMLIULPyZfNxt4qhoqlUfOFC+Yg==\n\
-----END CERTIFICATE-----\n\
";

    /// Plain `http://` needs no CA and keeps the URL.
    #[test]
    fn plaintext_endpoint_needs_no_ca() {
        let endpoint = endpoint("http://127.0.0.1:50051", None, TIMEOUT).expect("plaintext endpoint");
        assert_eq!(endpoint.uri().to_string(), "http://127.0.0.1:50051/");
    }

    /// `https://` without a CA is refused before any connection, naming the URL.
    #[test]
    fn tls_endpoint_without_ca_is_refused() {
        let error = endpoint("https://farm:50051", None, TIMEOUT).expect_err("no CA");
        assert!(matches!(&error, EndpointError::MissingCa { url } if url == "https://farm:50051"));
    }

    /// `https://` with a CA builds; text that is not a URL is refused naming it.
    #[test]
    fn tls_endpoint_with_ca_builds_and_bad_urls_are_named() {
        endpoint("https://farm:50051", Some(CA_PEM), TIMEOUT).expect("TLS endpoint");
        let error = endpoint("http://bad host", None, TIMEOUT).expect_err("not a URL");
        assert!(matches!(&error, EndpointError::InvalidUrl { url, .. } if url == "http://bad host"));
        assert!(
            error.to_string().starts_with("bad endpoint http://bad host:"),
            "{error}"
        );
    }
}
