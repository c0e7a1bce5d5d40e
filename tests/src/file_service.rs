//! A small file service for the e2e tests: the HTTP output store's other end. `PUT` stores an
//! object unless `If-None-Match: *` finds one (412), keeping the uploader's `X-Content-Blake3`;
//! `HEAD`/`GET` answer with it; `DELETE` removes. Uploads can be held before their body is read
//! (`hold_uploads`), so a test can kill or cancel an agent while one is in flight: a body that does
//! not arrive whole is never stored.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
};
use tokio::sync::{Notify, watch};

/// One stored object.
#[derive(Clone, Debug)]
pub struct StoredObject {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The `X-Content-Blake3` it was uploaded with.
    pub blake3_hex: String,
}

#[derive(Default)]
struct Shared {
    objects: Mutex<HashMap<String, StoredObject>>,
    puts_started: Mutex<usize>,
    put_started: Notify,
    completed_puts: Mutex<usize>,
}

/// A running file service on a loopback port.
pub struct FileService {
    /// `http://127.0.0.1:port`.
    pub base_url: String,
    shared: Arc<Shared>,
    hold: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

type AppState = (Arc<Shared>, watch::Receiver<bool>);

impl FileService {
    /// Starts on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let (hold, held) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind file service");
        let address = listener.local_addr().expect("file service address");
        let router = axum::Router::new()
            .route("/{*path}", axum::routing::any(handle))
            .with_state((shared.clone(), held));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            base_url: format!("http://{address}"),
            shared,
            hold,
            task,
        }
    }

    /// From now on, uploads wait before their body is read until [`Self::release_uploads`].
    pub fn hold_uploads(&self) {
        self.hold.send_replace(true);
    }

    /// Lets held uploads (and later ones) finish.
    pub fn release_uploads(&self) {
        self.hold.send_replace(false);
    }

    /// Waits until `count` uploads have started in total; false after `limit`.
    pub async fn wait_uploads_started(&self, count: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.put_started.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if *lock(&self.shared.puts_started) >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// The stored objects by path (without the leading '/').
    pub fn objects(&self) -> HashMap<String, StoredObject> {
        lock(&self.shared.objects).clone()
    }

    /// Uploads whose whole body arrived (stored or refused with 412).
    pub fn completed_uploads(&self) -> usize {
        *lock(&self.shared.completed_puts)
    }
}

impl Drop for FileService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    State((shared, mut held)): State<AppState>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match method {
        Method::PUT => put(&shared, &mut held, path, &headers, body).await,
        Method::HEAD | Method::GET => match lock(&shared.objects).get(&path) {
            None => StatusCode::NOT_FOUND.into_response(),
            Some(object) => {
                let mut response = if method == Method::GET {
                    object.bytes.clone().into_response()
                } else {
                    StatusCode::OK.into_response()
                };
                let headers = response.headers_mut();
                if let Ok(value) = object.blake3_hex.parse() {
                    headers.insert("x-content-blake3", value);
                }
                if let Ok(value) = object.bytes.len().to_string().parse() {
                    headers.insert("content-length", value);
                }
                response
            }
        },
        Method::DELETE => match lock(&shared.objects).remove(&path) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

async fn put(
    shared: &Shared,
    held: &mut watch::Receiver<bool>,
    path: String,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    *lock(&shared.puts_started) += 1;
    shared.put_started.notify_waiters();
    // Held: the upload waits here, its body unread (the uploader may be killed or cancelled).
    while *held.borrow_and_update() {
        if held.changed().await.is_err() {
            break;
        }
    }
    // A body that does not arrive whole (the uploader went away) is never stored.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *lock(&shared.completed_puts) += 1;
    let mut objects = lock(&shared.objects);
    let create_only = headers.get("if-none-match").is_some_and(|value| value == "*");
    if create_only && objects.contains_key(&path) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    let blake3_hex = headers
        .get("x-content-blake3")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    objects.insert(
        path,
        StoredObject {
            bytes: bytes.to_vec(),
            blake3_hex,
        },
    );
    StatusCode::CREATED.into_response()
}
