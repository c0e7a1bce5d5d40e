//! A small HTTP/1.1 file service for the HTTP store's tests, on a tokio `TcpListener` at
//! `127.0.0.1:0` with its objects in memory: `PUT` (honouring `If-None-Match: *` with 412 and
//! checking `X-Content-Blake3` against the body), `HEAD` (giving `Content-Length` and, unless told
//! otherwise, `X-Content-Blake3`), `GET` and `DELETE`. It records every request and can be told to
//! answer the next requests with 503, drop their connections, refuse uploads with a status, or
//! never answer an upload. Written by hand rather than with axum so that a connection can be
//! dropped mid-exchange and what arrived on the wire is visible.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use flatrender_node_agent::config::{ExportSettings, ExportStoreKind};

/// Longest a test waits for the server to see requests: reached only when something is broken.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The path prefix of every object (the store's base URL ends in it).
pub const BASE_PATH: &str = "/exports";

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// `PUT`, `HEAD`, …
    pub method: String,
    /// The request target, percent-encoded as sent.
    pub path: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    /// Body bytes received.
    pub body: Vec<u8>,
}

/// What the server does with the next requests.
#[derive(Default)]
struct Behaviour {
    /// Requests answered with 503.
    num_503: AtomicU32,
    /// Requests whose connection is closed without an answer (after reading the request).
    num_dropped: AtomicU32,
    /// `HEAD` leaves out `X-Content-Blake3`.
    head_without_checksum: AtomicBool,
    /// Uploads never answered (the connection stays open until the client leaves).
    stall_puts: AtomicBool,
    /// Every upload answered with this status and body.
    refuse_puts: Mutex<Option<(u16, String)>>,
}

struct ServiceState {
    objects: Mutex<HashMap<String, Vec<u8>>>,
    requests: Mutex<Vec<SeenRequest>>,
    /// The number of requests seen, for waiting on.
    num_seen: watch::Sender<usize>,
    behaviour: Behaviour,
}

/// The running file service; stops when dropped.
pub struct FileService {
    address: SocketAddr,
    state: Arc<ServiceState>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for FileService {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl FileService {
    /// Starts listening on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ServiceState {
            objects: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            num_seen: watch::Sender::new(0),
            behaviour: Behaviour::default(),
        });
        let accept_state = Arc::clone(&state);
        let accept_task = tokio::spawn(async move {
            while let Ok((stream, _peer)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&accept_state)));
            }
        });
        Self {
            address,
            state,
            accept_task,
        }
    }

    /// The base URL to configure the store with.
    pub fn base_url(&self) -> String {
        format!("http://{}{BASE_PATH}", self.address)
    }

    /// HTTP store settings for this service: quick retries, deadlines only a broken test reaches.
    pub fn settings(&self) -> ExportSettings {
        ExportSettings {
            store: ExportStoreKind::Http,
            url: self.base_url(),
            max_attempts: 4,
            retry_base_ms: 10,
            timeout_seconds: 60,
            ..ExportSettings::default()
        }
    }

    /// Answers the next `count` requests with 503.
    pub fn fail_next_with_503(&self, count: u32) {
        self.state.behaviour.num_503.store(count, Ordering::SeqCst);
    }

    /// Closes the connection of the next `count` requests without answering.
    pub fn drop_next(&self, count: u32) {
        self.state.behaviour.num_dropped.store(count, Ordering::SeqCst);
    }

    /// `HEAD` answers without `X-Content-Blake3`, so an adopter must read the object.
    pub fn omit_checksum_on_head(&self) {
        self.state.behaviour.head_without_checksum.store(true, Ordering::SeqCst);
    }

    /// Every upload is answered with `status` and `body`.
    pub fn refuse_puts(&self, status: u16, body: &str) {
        *self.state.behaviour.refuse_puts.lock().unwrap() = Some((status, body.to_owned()));
    }

    /// Uploads are read but never answered.
    pub fn stall_puts(&self) {
        self.state.behaviour.stall_puts.store(true, Ordering::SeqCst);
    }

    /// Stores `bytes` at `path` (as an earlier attempt's upload would have).
    pub fn put_object(&self, path: &str, bytes: &[u8]) {
        self.state
            .objects
            .lock()
            .unwrap()
            .insert(path.to_owned(), bytes.to_vec());
    }

    /// The object at `path`.
    pub fn object(&self, path: &str) -> Option<Vec<u8>> {
        self.state.objects.lock().unwrap().get(path).cloned()
    }

    /// How many objects are stored.
    pub fn num_objects(&self) -> usize {
        self.state.objects.lock().unwrap().len()
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The methods of the requests seen so far, in order.
    pub fn methods(&self) -> Vec<String> {
        self.requests().into_iter().map(|request| request.method).collect()
    }

    /// Waits until at least `count` requests arrived (whole, bodies included).
    pub async fn wait_for_requests(&self, count: usize) {
        let mut seen = self.state.num_seen.subscribe();
        tokio::time::timeout(WAIT_LIMIT, seen.wait_for(|num_seen| *num_seen >= count))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "fewer than {count} requests within {WAIT_LIMIT:?}: {:?}",
                    self.methods()
                )
            })
            .unwrap();
    }
}

/// What to do after a request.
enum Reply {
    Send(Vec<u8>),
    Close,
    Stall,
}

async fn serve_connection(stream: TcpStream, state: Arc<ServiceState>) {
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::new(read_half);
    while let Some(request) = read_request(&mut reader).await {
        let reply = match request {
            Ok(request) => {
                let reply = respond(&state, &request);
                state.requests.lock().unwrap().push(request);
                state.num_seen.send_modify(|num_seen| *num_seen += 1);
                reply
            }
            Err(status) => Reply::Send(response(status, &[], b"unsupported request")),
        };
        match reply {
            Reply::Send(bytes) => {
                if write_half.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Close => return,
            Reply::Stall => {
                // Hold the connection until the client leaves.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest).await;
                return;
            }
        }
    }
}

/// The next request on the connection; `None` when the client left (also mid-request), a status
/// for requests this server does not handle (a chunked body).
async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Result<SeenRequest, u16>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header_line = String::new();
        if reader.read_line(&mut header_line).await.ok()? == 0 {
            return None;
        }
        let header_line = header_line.trim_end();
        if header_line.is_empty() {
            break;
        }
        let (name, value) = header_line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    if headers.contains_key("transfer-encoding") {
        return Some(Err(411));
    }
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |value| value.parse().ok())?;
    let mut body = vec![0_u8; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Ok(SeenRequest {
        method,
        path,
        headers,
        body,
    }))
}

/// Takes one from a "next N requests" knob; `true` if this request is affected.
fn take(knob: &AtomicU32) -> bool {
    knob.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
        .is_ok()
}

fn respond(state: &ServiceState, request: &SeenRequest) -> Reply {
    let behaviour = &state.behaviour;
    if take(&behaviour.num_dropped) {
        return Reply::Close;
    }
    if take(&behaviour.num_503) {
        return Reply::Send(response(503, &[], b"service busy"));
    }
    let mut objects = state.objects.lock().unwrap();
    match request.method.as_str() {
        "PUT" => {
            if let Some((status, body)) = behaviour.refuse_puts.lock().unwrap().clone() {
                return Reply::Send(response(status, &[], body.as_bytes()));
            }
            if behaviour.stall_puts.load(Ordering::SeqCst) {
                return Reply::Stall;
            }
            if request.headers.get("if-none-match").map(String::as_str) == Some("*")
                && objects.contains_key(&request.path)
            {
                return Reply::Send(response(412, &[], b"an object exists at this path"));
            }
            let actual = blake3::hash(&request.body).to_hex().to_string();
            match request.headers.get("x-content-blake3") {
                Some(claimed) if !claimed.eq_ignore_ascii_case(&actual) => {
                    Reply::Send(response(400, &[], b"checksum does not match the body"))
                }
                _ => {
                    objects.insert(request.path.clone(), request.body.clone());
                    Reply::Send(response(201, &[], b""))
                }
            }
        }
        "HEAD" => match objects.get(&request.path) {
            Some(bytes) => {
                let mut headers = vec![("Content-Length".to_owned(), bytes.len().to_string())];
                if !behaviour.head_without_checksum.load(Ordering::SeqCst) {
                    headers.push(("X-Content-Blake3".to_owned(), blake3::hash(bytes).to_hex().to_string()));
                }
                Reply::Send(head_response(200, &headers))
            }
            None => Reply::Send(head_response(404, &[("Content-Length".to_owned(), "0".to_owned())])),
        },
        "GET" => match objects.get(&request.path) {
            Some(bytes) => Reply::Send(response(200, &[], bytes)),
            None => Reply::Send(response(404, &[], b"no such object")),
        },
        "DELETE" => match objects.remove(&request.path) {
            Some(_) => Reply::Send(response(204, &[], b"")),
            None => Reply::Send(response(404, &[], b"no such object")),
        },
        _ => Reply::Send(response(405, &[], b"method not allowed")),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        412 => "Precondition Failed",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// A response with a body (204 gets none and no length, as HTTP requires).
fn response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in headers {
        bytes.extend(format!("{name}: {value}\r\n").into_bytes());
    }
    if status != 204 {
        bytes.extend(format!("Content-Length: {}\r\n", body.len()).into_bytes());
    }
    bytes.extend(b"\r\n");
    if status != 204 {
        bytes.extend(body);
    }
    bytes
}

/// A `HEAD` answer: the headers a `GET` would have, no body.
fn head_response(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut bytes = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in headers {
        bytes.extend(format!("{name}: {value}\r\n").into_bytes());
    }
    bytes.extend(b"\r\n");
    bytes
}
