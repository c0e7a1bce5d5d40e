//! The HTTP store against the loopback file service (`server`): the upload carries the exact
//! bytes, `Content-Length`, the checksum and `If-None-Match: *`; 503s and dropped connections are
//! retried; an existing upload (412) is adopted, read by `HEAD` or by hashing a `GET`; a 400 fails
//! at once; an unreachable store gives up with a retryable error; a stalled upload times out or is
//! cancelled; discard sends `DELETE`.

use tokio_util::sync::CancellationToken;

use flatrender_node_agent::config::ExportSettings;
use flatrender_node_agent::export::{ExportError, ExportKey, ExportStore, StoredExport};

use super::server::{BASE_PATH, FileService, WAIT_LIMIT};
use super::{Video, new_key};

fn http_store(settings: &ExportSettings) -> ExportStore {
    ExportStore::from_config(settings).unwrap()
}

/// The object path the service sees for `key` (names without characters to encode).
fn object_path(key: &ExportKey) -> String {
    format!("{BASE_PATH}/{}", key.relative_path())
}

async fn store_video(store: &ExportStore, video: &Video, key: &ExportKey) -> Result<StoredExport, ExportError> {
    tokio::time::timeout(
        WAIT_LIMIT,
        store.store(
            &video.path,
            key,
            &video.checksum,
            video.size_bytes(),
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("the store finishes")
}

/// The upload is one conditional `PUT` of exactly the file's bytes, with `Content-Length`, the
/// BLAKE3 in `X-Content-Blake3` and the bearer token; the location is the object's URL.
#[tokio::test]
async fn upload_stores_the_exact_bytes_and_checksum_header() {
    let service = FileService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "upload-token\n").unwrap();
    let store = http_store(&ExportSettings {
        auth_token_file: token_file,
        ..service.settings()
    });
    let video = Video::write(dir.path(), "encoded.mp4", 3, 2 << 20);
    let key = new_key("promo.mp4");

    let stored = store_video(&store, &video, &key).await.unwrap();

    let path = object_path(&key);
    assert_eq!(
        stored.location,
        format!("{}/{}", service.base_url(), key.relative_path())
    );
    assert_eq!(
        (stored.size_bytes, stored.checksum, stored.adopted),
        (video.size_bytes(), video.checksum, false)
    );
    assert_eq!(service.object(&path).unwrap(), video.bytes);
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "{:?}", service.methods());
    let put = &requests[0];
    assert_eq!((put.method.as_str(), put.path.as_str()), ("PUT", path.as_str()));
    assert_eq!(put.headers["content-length"], video.bytes.len().to_string());
    assert_eq!(put.headers["x-content-blake3"], video.checksum.to_hex());
    assert_eq!(put.headers["if-none-match"], "*");
    assert_eq!(put.headers["authorization"], "Bearer upload-token");
}

/// A file name with spaces and `%` reaches the service percent-encoded, as one segment.
#[tokio::test]
async fn file_names_are_percent_encoded() {
    let service = FileService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let video = Video::write(dir.path(), "encoded.mp4", 4, 1000);
    let key = new_key("final cut 100%.mp4");

    let stored = store_video(&store, &video, &key).await.unwrap();

    let tenant_job = format!("{}/{}", key.tenant_id(), key.job_id());
    let path = format!("{BASE_PATH}/{tenant_job}/final%20cut%20100%25.mp4");
    assert_eq!(service.object(&path).unwrap(), video.bytes, "{:?}", service.requests());
    assert!(
        stored.location.ends_with("/final%20cut%20100%25.mp4"),
        "{}",
        stored.location
    );
}

/// Two 503s, then success: the store retries and the object is stored once.
#[tokio::test]
async fn server_errors_are_retried_until_the_upload_succeeds() {
    let service = FileService::start().await;
    service.fail_next_with_503(2);
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let video = Video::write(dir.path(), "encoded.mp4", 5, 50_000);
    let key = new_key("promo.mp4");

    let stored = store_video(&store, &video, &key).await.unwrap();

    assert!(!stored.adopted);
    assert_eq!(service.methods(), vec!["PUT", "PUT", "PUT"]);
    assert_eq!(service.object(&object_path(&key)).unwrap(), video.bytes);
    assert_eq!(service.num_objects(), 1);
}

/// Connections dropped without an answer are retried like 503s.
#[tokio::test]
async fn dropped_connections_are_retried() {
    let service = FileService::start().await;
    service.drop_next(2);
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let video = Video::write(dir.path(), "encoded.mp4", 6, 50_000);
    let key = new_key("promo.mp4");

    let stored = store_video(&store, &video, &key).await.unwrap();

    assert_eq!((stored.checksum, stored.adopted), (video.checksum, false));
    assert_eq!(service.methods(), vec!["PUT", "PUT", "PUT"]);
    assert_eq!(service.object(&object_path(&key)).unwrap(), video.bytes);
}

/// An earlier attempt's upload exists: the `PUT` gets 412, and its size and checksum come from
/// `HEAD`; the object is not overwritten.
#[tokio::test]
async fn existing_upload_is_adopted_not_overwritten() {
    let service = FileService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let earlier = Video::write(dir.path(), "earlier.mp4", 7, 30_000);
    let video = Video::write(dir.path(), "encoded.mp4", 8, 40_000);
    let key = new_key("promo.mp4");
    service.put_object(&object_path(&key), &earlier.bytes);

    let stored = store_video(&store, &video, &key).await.unwrap();

    assert!(stored.adopted);
    assert_eq!(
        (stored.size_bytes, stored.checksum),
        (earlier.size_bytes(), earlier.checksum)
    );
    assert_eq!(service.methods(), vec!["PUT", "HEAD"]);
    assert_eq!(service.object(&object_path(&key)).unwrap(), earlier.bytes);
}

/// When `HEAD` gives no checksum, the existing upload is read with `GET` and hashed.
#[tokio::test]
async fn existing_upload_without_checksum_header_is_hashed() {
    let service = FileService::start().await;
    service.omit_checksum_on_head();
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let earlier = Video::write(dir.path(), "earlier.mp4", 9, 300_000);
    let video = Video::write(dir.path(), "encoded.mp4", 10, 40_000);
    let key = new_key("promo.mp4");
    service.put_object(&object_path(&key), &earlier.bytes);

    let stored = store_video(&store, &video, &key).await.unwrap();

    assert!(stored.adopted);
    assert_eq!(
        (stored.size_bytes, stored.checksum),
        (earlier.size_bytes(), earlier.checksum)
    );
    assert_eq!(service.methods(), vec!["PUT", "HEAD", "GET"]);
}

/// Two attempts upload one key: the second adopts the first's upload, and the service holds one
/// object with the first's bytes.
#[tokio::test]
async fn second_upload_of_a_key_adopts_the_first() {
    let service = FileService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let first = Video::write(dir.path(), "first.mp4", 11, 20_000);
    let second = Video::write(dir.path(), "second.mp4", 12, 25_000);
    let key = new_key("promo.mp4");

    let stored_first = store_video(&store, &first, &key).await.unwrap();
    let stored_second = store_video(&store, &second, &key).await.unwrap();

    assert!(!stored_first.adopted && stored_second.adopted);
    assert_eq!(stored_second.location, stored_first.location);
    assert_eq!(stored_second.checksum, first.checksum);
    assert_eq!(service.num_objects(), 1);
    assert_eq!(service.object(&object_path(&key)).unwrap(), first.bytes);
}

/// A 400 fails at once, not retried, naming the method, URL, status and the body's start.
#[tokio::test]
async fn client_errors_fail_at_once_naming_url_and_status() {
    let service = FileService::start().await;
    service.refuse_puts(400, "bad upload:\n  tenant over quota");
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let video = Video::write(dir.path(), "encoded.mp4", 13, 1000);
    let key = new_key("promo.mp4");

    let error = store_video(&store, &video, &key).await.unwrap_err();

    assert!(!error.is_retryable(), "{error}");
    let url = format!("{}/{}", service.base_url(), key.relative_path());
    assert_eq!(
        error.to_string(),
        format!("PUT {url}: http status 400: bad upload: tenant over quota")
    );
    assert_eq!(service.methods(), vec!["PUT"]);
}

/// Nothing listens on the port: every attempt fails to connect, and after `max_attempts` the
/// error is retryable and names the URL and the number of attempts.
#[tokio::test]
async fn unreachable_store_gives_up_with_a_retryable_error() {
    let free_port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = http_store(&ExportSettings {
        store: flatrender_node_agent::config::ExportStoreKind::Http,
        url: format!("http://127.0.0.1:{free_port}/exports"),
        max_attempts: 3,
        retry_base_ms: 10,
        timeout_seconds: 60,
        ..ExportSettings::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 14, 1000);
    let key = new_key("promo.mp4");

    let error = store_video(&store, &video, &key).await.unwrap_err();

    assert!(error.is_retryable(), "{error}");
    assert!(
        matches!(&error, ExportError::GaveUp { attempts: 3, last, .. } if matches!(**last, ExportError::Unreachable { .. })),
        "{error:?}"
    );
    let url = format!("http://127.0.0.1:{free_port}/exports/{}", key.relative_path());
    assert!(error.to_string().contains(&url), "{error}");
}

/// An upload the service never answers fails each attempt at the deadline and ends retryable.
#[tokio::test]
async fn stalled_upload_times_out_with_a_retryable_error() {
    let service = FileService::start().await;
    service.stall_puts();
    let store = http_store(&ExportSettings {
        max_attempts: 2,
        timeout_seconds: 1,
        ..service.settings()
    });
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 15, 1000);

    let error = store_video(&store, &video, &new_key("promo.mp4")).await.unwrap_err();

    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("gave up after 2 attempts"), "{error}");
    assert!(error.to_string().contains("no complete answer within 1 s"), "{error}");
    assert_eq!(service.methods(), vec!["PUT", "PUT"]);
}

/// Cancelled while the upload waits for its answer: the store returns at once, cancelled, not
/// retryable.
#[tokio::test]
async fn cancelled_upload_returns_cancelled() {
    let service = FileService::start().await;
    service.stall_puts();
    let store = http_store(&service.settings());
    let dir = tempfile::tempdir().unwrap();
    let video = Video::write(dir.path(), "encoded.mp4", 16, 1000);
    let key = new_key("promo.mp4");
    let cancel = CancellationToken::new();

    let upload = store.store(&video.path, &key, &video.checksum, video.size_bytes(), &cancel);
    let cancel_when_sent = async {
        service.wait_for_requests(1).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::time::timeout(WAIT_LIMIT, async { tokio::join!(upload, cancel_when_sent) })
        .await
        .expect("the cancelled store returns");

    let error = result.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(service.num_objects(), 0);
}

/// Discard sends `DELETE` for the location; an object already gone (404) is fine; a location
/// outside the store is refused without a request.
#[tokio::test]
async fn discard_sends_delete() {
    let service = FileService::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = http_store(&service.settings());
    let video = Video::write(dir.path(), "encoded.mp4", 17, 1000);
    let key = new_key("promo.mp4");
    let stored = store_video(&store, &video, &key).await.unwrap();

    store.discard(&stored.location).await.unwrap();
    assert_eq!(service.object(&object_path(&key)), None);
    store.discard(&stored.location).await.unwrap();
    assert_eq!(service.methods(), vec!["PUT", "DELETE", "DELETE"]);
    let deleted = &service.requests()[1];
    assert_eq!(deleted.path, object_path(&key));

    let error = store
        .discard("http://elsewhere.internal/exports/a/b/c.mp4")
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("elsewhere.internal"), "{error}");
    assert_eq!(service.requests().len(), 3);
}
