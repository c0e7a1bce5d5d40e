//! Where to connect and with which token (flags → environment → config file → `./data/admin.token`),
//! the gRPC clients, and the one mapping from failures to exit codes and advice.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use flatrender_proto::{
    client::{self, EndpointError},
    pb::{admin_service_client::AdminServiceClient, render_service_client::RenderServiceClient},
};
use serde::Deserialize;
use tonic::{Code, Request, Status, metadata::MetadataValue, transport::Channel};

use crate::args::GlobalArgs;

/// Exit codes scripts branch on (documented in `--help` and docs/frctl.md).
pub mod exit {
    /// Something unexpected.
    pub const UNEXPECTED: u8 = 1;
    /// Bad usage or an argument the server refused.
    pub const USAGE: u8 = 2;
    /// Token missing, wrong or not allowed.
    pub const AUTH: u8 = 3;
    /// Unknown node, job or token.
    pub const NOT_FOUND: u8 = 4;
    /// Control plane unreachable or too slow.
    pub const UNREACHABLE: u8 = 5;
    /// The change conflicts with the current state.
    pub const CONFLICT: u8 = 6;
    /// A confirmation was needed and not given.
    pub const NOT_CONFIRMED: u8 = 7;
    /// `jobs watch` saw the job fail or be cancelled.
    pub const JOB_UNSUCCESSFUL: u8 = 8;
}

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";
const RUN_SH_TOKEN: &str = "data/admin.token";
const TOKEN_ADVICE: &str =
    "check --token / FRCTL_TOKEN; create an admin token with `control-plane token create --kind admin`";

/// An error with the exit code it maps to; the message says what to do.
#[derive(Debug)]
pub struct Failure {
    /// Process exit code.
    pub code: u8,
    /// What went wrong and the fix.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The keys of `frctl.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    endpoint: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
}

/// Resolved connection settings.
#[derive(Debug)]
pub struct Settings {
    /// gRPC endpoint URL.
    pub endpoint: String,
    /// Bearer secret.
    pub token: String,
    /// Per-request time limit.
    pub timeout: Duration,
    /// The CA trusted for an `https://` endpoint (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

fn default_config_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|value| !value.is_empty()) {
        Some(xdg) => PathBuf::from(xdg),
        None => PathBuf::from(std::env::var_os("HOME").filter(|value| !value.is_empty())?).join(".config"),
    };
    Some(base.join("flatrender").join("frctl.toml"))
}

fn load_config(explicit: Option<&Path>) -> Result<ConfigFile, Failure> {
    let (path, required) = match explicit {
        Some(path) => (path.to_path_buf(), true),
        None => match default_config_path() {
            Some(path) => (path, false),
            None => return Ok(ConfigFile::default()),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // Only an explicitly named config file must exist.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !required => return Ok(ConfigFile::default()),
        Err(error) => {
            return Err(Failure::new(
                exit::USAGE,
                format!("cannot read config file {}: {error}", path.display()),
            ));
        }
    };
    toml::from_str(&text).map_err(|error| {
        Failure::new(
            exit::USAGE,
            format!(
                "config file {} is invalid (keys: endpoint, token, token_file, ca_cert): {error}",
                path.display()
            ),
        )
    })
}

fn read_token_file(path: &Path, origin: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        Failure::new(
            exit::AUTH,
            format!("cannot read token file {} ({origin}): {error}", path.display()),
        )
    })?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        return Err(Failure::new(
            exit::AUTH,
            format!("token file {} ({origin}) is empty; {TOKEN_ADVICE}", path.display()),
        ));
    }
    Ok(token)
}

impl Settings {
    /// Applies the documented precedence; no token at all is exit 3 with where to get one.
    pub fn resolve(global: &GlobalArgs) -> Result<Self, Failure> {
        let config = load_config(global.config.as_deref())?;
        let endpoint = global
            .endpoint
            .clone()
            .or(config.endpoint)
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint = with_scheme(endpoint.trim());
        let token = if let Some(token) = global.token.as_deref().filter(|token| !token.trim().is_empty()) {
            token.trim().to_owned()
        } else if let Some(path) = &global.token_file {
            read_token_file(path, "--token-file / FRCTL_TOKEN_FILE")?
        } else if let Some(token) = config.token.filter(|token| !token.trim().is_empty()) {
            token.trim().to_owned()
        } else if let Some(path) = &config.token_file {
            read_token_file(path, "config file token_file")?
        } else if Path::new(RUN_SH_TOKEN).is_file() {
            read_token_file(Path::new(RUN_SH_TOKEN), "written by scripts/run.sh")?
        } else {
            return Err(Failure::new(
                exit::AUTH,
                format!(
                    "no admin token: pass --token, set FRCTL_TOKEN or FRCTL_TOKEN_FILE, put `token` in the config \
                     file, or run from the folder where scripts/run.sh wrote {RUN_SH_TOKEN}; create one with \
                     `control-plane token create --kind admin`"
                ),
            ));
        };
        let ca_pem = match global.ca_cert.as_ref().or(config.ca_cert.as_ref()) {
            Some(path) => Some(std::fs::read(path).map_err(|error| {
                Failure::new(
                    exit::USAGE,
                    format!("cannot read --ca-cert {}: {error}", path.display()),
                )
            })?),
            None => None,
        };
        Ok(Self {
            endpoint,
            token,
            timeout: Duration::from_secs(global.timeout),
            ca_pem,
        })
    }
}

/// `host:port` as `http://host:port` (the control plane's listen address is written without a
/// scheme); URLs are kept as given.
fn with_scheme(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// Connected clients plus what is needed to explain failures.
pub struct Client {
    settings: Settings,
    channel: Channel,
}

impl Client {
    /// Connects (bounded by the timeout); failure is exit 5 naming the endpoint.
    pub async fn connect(settings: Settings) -> Result<Self, Failure> {
        let channel = open_channel(&settings, Some(settings.timeout)).await?;
        Ok(Self { settings, channel })
    }

    /// A new channel with no per-request time limit, for long-lived streams.
    pub async fn streaming_channel(&self) -> Result<Channel, Failure> {
        open_channel(&self.settings, None).await
    }

    /// AdminService over the shared channel.
    pub fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    /// RenderService over the shared channel.
    pub fn render(&self) -> RenderServiceClient<Channel> {
        RenderServiceClient::new(self.channel.clone())
    }

    /// `message` with the bearer token.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        // A token with characters invalid in a header cannot be right; the server then says unauthenticated.
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", self.settings.token)) {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// The failure (exit code and advice) for a gRPC status.
    pub fn failure(&self, status: &Status) -> Failure {
        status_failure(status, &self.settings.endpoint)
    }
}

async fn open_channel(settings: &Settings, timeout: Option<Duration>) -> Result<Channel, Failure> {
    let mut endpoint = client::endpoint(&settings.endpoint, settings.ca_pem.as_deref(), settings.timeout)
        .map_err(|error| endpoint_failure(&settings.endpoint, error))?;
    endpoint = match timeout {
        Some(timeout) => endpoint.timeout(timeout),
        // A long-lived stream has no request time limit; HTTP/2 pings notice a peer that
        // vanished without closing the connection (a dead host, a dropped route).
        None => endpoint
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true),
    };
    endpoint
        .connect()
        .await
        .map_err(|error| unreachable(&settings.endpoint, &error))
}

/// The advice for an endpoint that cannot be built, in frctl's flags.
fn endpoint_failure(endpoint: &str, error: EndpointError) -> Failure {
    let message = match error {
        EndpointError::InvalidUrl { source, .. } => {
            format!("--endpoint {endpoint} is not a URL ({source}); use e.g. {DEFAULT_ENDPOINT}")
        }
        EndpointError::MissingCa { .. } => format!(
            "{endpoint} uses TLS: pass --ca-cert (or FRCTL_CA_CERT, or ca_cert in the config file) with the PEM of \
             the CA that signed the control plane's certificate"
        ),
        EndpointError::Tls { source, .. } => format!("TLS for {endpoint}: {source}"),
    };
    Failure::new(exit::USAGE, message)
}

fn unreachable(endpoint: &str, error: &dyn std::error::Error) -> Failure {
    let mut cause = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        // Some errors repeat their source in their own message; say each part once.
        let text = inner.to_string();
        if !cause.contains(&text) {
            cause = format!("{cause}: {text}");
        }
        source = inner.source();
    }
    Failure::new(
        exit::UNREACHABLE,
        format!(
            "cannot reach the control plane at {endpoint} ({cause}); check it is running (scripts/run.sh) \
             or pass --endpoint / FRCTL_ENDPOINT"
        ),
    )
}

/// The exit code and advice for a gRPC status.
pub fn status_failure(status: &Status, endpoint: &str) -> Failure {
    let message = status.message();
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Failure::new(exit::USAGE, format!("invalid argument: {message}")),
        Code::Unauthenticated | Code::PermissionDenied => {
            Failure::new(exit::AUTH, format!("refused ({message}); {TOKEN_ADVICE}"))
        }
        Code::NotFound => {
            let hint = if message.starts_with("node") {
                "; see `frctl nodes list`"
            } else if message.starts_with("job") || message.starts_with("render job") {
                "; see `frctl jobs list`"
            } else {
                ""
            };
            Failure::new(exit::NOT_FOUND, format!("{message}{hint}"))
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Failure::new(
            exit::UNREACHABLE,
            format!(
                "the control plane at {endpoint} did not answer ({message}); check it is running \
                 (scripts/run.sh) or pass --endpoint / FRCTL_ENDPOINT, or raise --timeout"
            ),
        ),
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
            Failure::new(exit::CONFLICT, format!("conflict: {message}"))
        }
        // The control plane never answers UNKNOWN itself: this is the client's view of a
        // connection that broke below gRPC (transport or HTTP/2 error), e.g. plaintext sent to a
        // TLS listener.
        Code::Unknown => Failure::new(
            exit::UNREACHABLE,
            format!(
                "could not talk to the control plane at {endpoint} ({message}): check the address, and \
                 if it serves TLS use https:// with --ca-cert"
            ),
        ),
        code => Failure::new(exit::UNEXPECTED, format!("control plane error ({code:?}): {message}")),
    }
}

/// `Result<Response<T>, Status>` → `Result<T, Failure>` with the client's advice.
pub trait Answer<T> {
    /// Unwraps the response or explains the status.
    fn answer(self, client: &Client) -> Result<T, Failure>;
}

impl<T> Answer<T> for Result<tonic::Response<T>, Status> {
    fn answer(self, client: &Client) -> Result<T, Failure> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| client.failure(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each status class maps to its documented exit code.
    #[test]
    fn statuses_map_to_documented_exit_codes() {
        let endpoint = "http://127.0.0.1:1";
        let cases = [
            (Status::invalid_argument("node_id: must be a UUID"), exit::USAGE),
            (Status::unauthenticated("unknown token"), exit::AUTH),
            (Status::permission_denied("admin only"), exit::AUTH),
            (Status::not_found("node x not found"), exit::NOT_FOUND),
            (Status::unavailable("down"), exit::UNREACHABLE),
            (Status::deadline_exceeded("slow"), exit::UNREACHABLE),
            (Status::failed_precondition("running"), exit::CONFLICT),
            (Status::already_exists("dup"), exit::CONFLICT),
            (Status::internal("boom"), exit::UNEXPECTED),
            (Status::unknown("h2 protocol error: http2 error"), exit::UNREACHABLE),
            (Status::unknown("transport error"), exit::UNREACHABLE),
        ];
        for (status, code) in cases {
            assert_eq!(status_failure(&status, endpoint).code, code, "{status:?}");
        }
        assert!(
            status_failure(&Status::invalid_argument("node_id: must be a UUID"), endpoint)
                .message
                .contains("node_id")
        );
        assert!(
            status_failure(&Status::not_found("node x not found"), endpoint)
                .message
                .contains("frctl nodes list")
        );
        assert!(
            status_failure(&Status::unauthenticated("no"), endpoint)
                .message
                .contains("control-plane token create --kind admin")
        );
    }

    /// An endpoint that cannot be built is exit 2 naming the flag to fix.
    #[test]
    fn endpoint_problems_are_usage_errors_naming_the_flag() {
        let timeout = Duration::from_secs(5);
        for (url, flag) in [("https://farm:50051", "--ca-cert"), ("http://bad host", "--endpoint")] {
            let error = client::endpoint(url, None, timeout).expect_err(url);
            let failure = endpoint_failure(url, error);
            assert_eq!(failure.code, exit::USAGE, "{url}");
            assert!(failure.message.contains(flag), "{url}: {}", failure.message);
        }
    }

    /// A bare `host:port` endpoint gets `http://`; URLs are untouched.
    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(with_scheme("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(with_scheme("http://farm:50051"), "http://farm:50051");
    }

    /// A missing default config file is fine; a missing explicit one is an error.
    #[test]
    fn only_explicit_config_must_exist() {
        let missing = Path::new("/nonexistent/frctl.toml");
        assert_eq!(load_config(Some(missing)).unwrap_err().code, exit::USAGE);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frctl.toml");
        std::fs::write(&path, "endpoint = \"http://farm:50051\"\ntoken = \"abc\"\n").unwrap();
        let config = load_config(Some(&path)).unwrap();
        assert_eq!(config.endpoint.as_deref(), Some("http://farm:50051"));
        assert_eq!(config.token.as_deref(), Some("abc"));
        std::fs::write(&path, "endpiont = \"typo\"\n").unwrap();
        assert!(
            load_config(Some(&path))
                .unwrap_err()
                .message
                .contains("endpoint, token, token_file")
        );
    }
}
