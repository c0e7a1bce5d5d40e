//! The durable outbox against a real folder: restart, ordering, bounds and damaged files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use chrono::DateTime;

use flatrender_node_agent::health::HealthSample;
use flatrender_node_agent::outbox::{
    ChunkCompletion, ChunkFailure, FrameOutputRecord, ItemId, Outbox, OutboxError, OutboxItem, OutboxLimits,
};

const ROOMY: OutboxLimits = OutboxLimits {
    max_health_samples: 1000,
    max_bytes: 10 * 1024 * 1024,
};

fn completion(frame_job_id: &str) -> OutboxItem {
    OutboxItem::Completion(ChunkCompletion {
        frame_job_id: frame_job_id.to_owned(),
        lease_token: 7,
        outputs: vec![FrameOutputRecord {
            frame: 1,
            path: "out/frame_00001.png".to_owned(),
            size_bytes: 1234,
            blake3_hex: "ab".repeat(32),
        }],
        render_seconds: 12.5,
        export: None,
    })
}

fn failure(frame_job_id: &str) -> OutboxItem {
    OutboxItem::Failure(ChunkFailure {
        frame_job_id: frame_job_id.to_owned(),
        lease_token: 9,
        crash_class: 2,
        error_class: "ae_runtime_error".to_owned(),
        exit_code: Some(1),
        log_tail: "aerender ERROR: something\n".to_owned(),
        message: "render failed".to_owned(),
        frames_written: vec![1, 2, 3],
        recovery_action: 1,
    })
}

fn health(uptime_seconds: u64) -> OutboxItem {
    OutboxItem::Health(HealthSample {
        recorded_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
        cpu_percent: 12.5,
        memory_used_bytes: 1 << 30,
        memory_total_bytes: 1 << 34,
        swap_used_bytes: 0,
        swap_total_bytes: 1 << 31,
        cache_disk_free_bytes: 1 << 36,
        output_disk_free_bytes: 1 << 37,
        num_ae_processes: 1,
        ae_memory_bytes: 1 << 29,
        load_average_1m: 0.5,
        uptime_seconds,
        aerender_running: true,
    })
}

async fn item_bytes(dir: &Path, item: OutboxItem) -> u64 {
    let probe = Outbox::open(dir.to_path_buf(), ROOMY).await.unwrap();
    let id = probe.push(item).await.unwrap();
    let bytes = probe.bytes_pending();
    probe.ack(id).await.unwrap();
    bytes
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Items pushed before a restart are pending after it, and an acked item stays gone.
#[tokio::test]
async fn items_survive_reopen_until_acked() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let completion_id = outbox.push(completion("fj-1")).await.unwrap();
    let failure_id = outbox.push(failure("fj-2")).await.unwrap();
    let health_id = outbox.push(health(1)).await.unwrap();
    drop(outbox);

    let reopened = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    assert_eq!(
        reopened.pending(),
        vec![
            (completion_id, completion("fj-1")),
            (failure_id, failure("fj-2")),
            (health_id, health(1))
        ]
    );
    assert_eq!(
        (reopened.len(), reopened.results_pending(), reopened.health_pending()),
        (3, 2, 1)
    );
    reopened.ack(failure_id).await.unwrap();
    reopened.ack(failure_id).await.unwrap();
    drop(reopened);

    let after_ack = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let pending_ids: Vec<ItemId> = after_ack.pending().into_iter().map(|(id, _)| id).collect();
    assert_eq!(pending_ids, vec![completion_id, health_id]);
    let new_id = after_ack.push(completion("fj-3")).await.unwrap();
    assert!(new_id > health_id, "ids keep growing after a restart");
}

/// Pending items come back in the order they were pushed, across kinds.
#[tokio::test]
async fn pending_is_first_in_first_out() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let mut pushed_ids: Vec<ItemId> = Vec::new();
    for index in 0..20 {
        let item = match index % 3 {
            0 => completion(&format!("fj-{index}")),
            1 => failure(&format!("fj-{index}")),
            _ => health(index),
        };
        pushed_ids.push(outbox.push(item).await.unwrap());
    }
    let pending_ids: Vec<ItemId> = outbox.pending().into_iter().map(|(id, _)| id).collect();
    assert_eq!(pending_ids, pushed_ids);
    let result_ids: Vec<ItemId> = outbox.pending_results().into_iter().map(|(id, _)| id).collect();
    assert!(result_ids.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(result_ids.len(), 14);
    drop(outbox);
    let reopened = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let reopened_ids: Vec<ItemId> = reopened.pending().into_iter().map(|(id, _)| id).collect();
    assert_eq!(reopened_ids, pushed_ids);
}

/// Over the sample limit, the oldest health samples go first and results stay.
#[tokio::test]
async fn oldest_health_samples_are_dropped_over_the_sample_limit() {
    let dir = tempfile::tempdir().unwrap();
    let limits = OutboxLimits {
        max_health_samples: 3,
        max_bytes: 10 * 1024 * 1024,
    };
    let outbox = Outbox::open(dir.path().to_path_buf(), limits).await.unwrap();
    outbox.push(completion("fj-1")).await.unwrap();
    for uptime_seconds in 1..=5 {
        outbox.push(health(uptime_seconds)).await.unwrap();
    }
    let uptimes: Vec<u64> = outbox
        .pending_health(usize::MAX)
        .into_iter()
        .map(|(_, sample)| sample.uptime_seconds)
        .collect();
    assert_eq!(uptimes, vec![3, 4, 5]);
    assert_eq!(outbox.results_pending(), 1);
    assert_eq!(outbox.health_dropped_total(), 2);
    assert_eq!(file_names(dir.path()).len(), 4, "dropped samples are deleted from disk");
}

/// Over the byte budget, health samples make room for results, oldest first.
#[tokio::test]
async fn health_samples_make_room_for_results_under_the_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let health_bytes = item_bytes(dir.path(), health(1)).await;
    let completion_bytes = item_bytes(dir.path(), completion("fj-1")).await;
    let limits = OutboxLimits {
        max_health_samples: 100,
        max_bytes: 4 * health_bytes,
    };
    let outbox = Outbox::open(dir.path().to_path_buf(), limits).await.unwrap();
    for uptime_seconds in 1..=4 {
        outbox.push(health(uptime_seconds)).await.unwrap();
    }
    assert_eq!(outbox.health_pending(), 4);
    outbox.push(completion("fj-1")).await.unwrap();
    let num_dropped = completion_bytes.div_ceil(health_bytes);
    let expected_uptimes: Vec<u64> = (1 + num_dropped..=4).collect();
    let uptimes: Vec<u64> = outbox
        .pending_health(usize::MAX)
        .into_iter()
        .map(|(_, sample)| sample.uptime_seconds)
        .collect();
    assert_eq!(uptimes, expected_uptimes);
    assert!(outbox.bytes_pending() <= limits.max_bytes);
    assert_eq!(outbox.results_pending(), 1);
}

/// When results alone fill the byte budget, a further result is refused, never dropped, and
/// health samples no longer fit.
#[tokio::test]
async fn results_are_refused_when_results_exhaust_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let completion_bytes = item_bytes(dir.path(), completion("fj-1")).await;
    let limits = OutboxLimits {
        max_health_samples: 100,
        max_bytes: 2 * completion_bytes + completion_bytes / 2,
    };
    let outbox = Outbox::open(dir.path().to_path_buf(), limits).await.unwrap();
    outbox.push(health(1)).await.unwrap();
    let first_id = outbox.push(completion("fj-1")).await.unwrap();
    let second_id = outbox.push(completion("fj-2")).await.unwrap();
    assert_eq!(outbox.health_pending(), 0, "the health sample made room");

    assert!(outbox.results_full(), "no room for another result of this size");
    let refused = outbox.push(completion("fj-3")).await;
    assert!(matches!(refused, Err(OutboxError::Full { .. })), "{refused:?}");
    outbox.push(health(2)).await.unwrap();
    assert_eq!(outbox.health_pending(), 0, "no room for health either");
    let pending_ids: Vec<ItemId> = outbox.pending().into_iter().map(|(id, _)| id).collect();
    assert_eq!(pending_ids, vec![first_id, second_id]);

    outbox.ack(first_id).await.unwrap();
    assert!(!outbox.results_full());
    outbox.push(completion("fj-3")).await.unwrap();
    assert_eq!(outbox.results_pending(), 2);
}

/// A truncated item file and a leftover temporary file are skipped on reopen, not fatal.
#[tokio::test]
async fn corrupt_and_unfinished_files_are_skipped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let good_id = outbox.push(completion("fj-1")).await.unwrap();
    let damaged_id = outbox.push(failure("fj-2")).await.unwrap();
    drop(outbox);

    let damaged_path = dir.path().join(format!("{damaged_id}.failure.json"));
    let damaged_contents = fs::read(&damaged_path).unwrap();
    fs::write(&damaged_path, &damaged_contents[..damaged_contents.len() / 2]).unwrap();
    fs::write(
        dir.path().join("00000000000000000099.completion.json.tmp"),
        b"{\"format_ver",
    )
    .unwrap();
    fs::write(dir.path().join("00000000000000000050.health.json"), b"").unwrap();
    fs::write(
        dir.path().join("00000000000000000051.health.json"),
        b"\xff\xfe not json",
    )
    .unwrap();

    let reopened = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let pending_ids: Vec<ItemId> = reopened.pending().into_iter().map(|(id, _)| id).collect();
    assert_eq!(pending_ids, vec![good_id]);
    let names = file_names(dir.path());
    assert!(!names.iter().any(|name| name.ends_with(".tmp")), "{names:?}");
    assert_eq!(
        names.iter().filter(|name| name.ends_with(".corrupt")).count(),
        3,
        "{names:?}"
    );
    let new_id = reopened.push(completion("fj-3")).await.unwrap();
    assert!(new_id.get() > 99, "new ids never reuse a damaged file's id");
    drop(reopened);
    let reopened_again = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    assert_eq!(reopened_again.len(), 2);
}

/// Pushes from many tasks at once all land, with distinct ids, and survive a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    let mut tasks = Vec::new();
    for task_index in 0..8 {
        let task_outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for item_index in 0..10 {
                let item = completion(&format!("fj-{task_index}-{item_index}"));
                ids.push(task_outbox.push(item).await.unwrap());
            }
            ids
        }));
    }
    let mut all_ids = Vec::new();
    for task in tasks {
        all_ids.extend(task.await.unwrap());
    }
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), 80);
    assert_eq!(outbox.len(), 80);
    drop(outbox);
    let reopened = Outbox::open(dir.path().to_path_buf(), ROOMY).await.unwrap();
    assert_eq!(reopened.results_pending(), 80);
    for (id, _) in reopened.pending() {
        reopened.ack(id).await.unwrap();
    }
    assert!(reopened.is_empty());
}

/// Items convert to the wire requests the agent sends and back.
#[test]
fn records_round_trip_through_the_wire_types() {
    let OutboxItem::Completion(chunk_completion) = completion("fj-1") else {
        unreachable!()
    };
    assert_eq!(ChunkCompletion::from(chunk_completion.to_pb()), chunk_completion);
    let OutboxItem::Failure(chunk_failure) = failure("fj-2") else {
        unreachable!()
    };
    let wire_failure = chunk_failure.to_pb();
    assert_eq!(wire_failure.exit_code, Some(1));
    assert_eq!(ChunkFailure::from(wire_failure), chunk_failure);
}

/// A generous bound for the stall test: reached only when the runtime really was blocked.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// File descriptors of this process open on `path`.
fn fds_open_on(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|entry| fs::read_link(entry.path()).is_ok_and(|target| target == path))
        .count()
}

/// A write stalled on the disk blocks no async thread: on a current-thread runtime (the worst
/// case), timers keep firing and the outbox's queries answer while a push waits for its file.
/// The stall is real: the push's temporary file is a FIFO nobody reads, so its write blocks.
/// Before pushes ran on blocking threads, the push stalled the only runtime thread; and the
/// index lock was held across the IO, so `results_full` (asked before every acquire) stalled too.
#[test]
fn a_stalled_write_blocks_no_async_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outbox = runtime.block_on(Outbox::open(dir.path().to_path_buf(), ROOMY)).unwrap();
    // The first item of a fresh outbox is id 1.
    let fifo = dir.path().join("00000000000000000001.failure.json.tmp");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
    // The reader end is open (so the writer's open succeeds) but unread until released, or
    // until WAIT_LIMIT passes, so a broken build fails instead of hanging.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (reader_open, reader_opened) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut pipe = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&reader_path)
            .unwrap();
        reader_open.send(()).unwrap();
        let released_in_time = released.recv_timeout(WAIT_LIMIT).is_ok();
        // Blocking reads from here: the writer is connected, so end of file means it is done.
        nix::fcntl::fcntl(&pipe, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty())).unwrap();
        let mut contents = Vec::new();
        pipe.read_to_end(&mut contents).unwrap();
        released_in_time
    });
    reader_opened.recv().unwrap();
    // Larger than a pipe's buffer: the write cannot finish until the reader reads.
    let OutboxItem::Failure(mut big) = failure("fj-stalled") else {
        unreachable!()
    };
    big.log_tail = "x".repeat(1 << 20);

    let push_result = runtime.block_on(async {
        let push = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push(OutboxItem::Failure(big)).await }
        });
        // The push's writer has the FIFO open (a second descriptor next to the reader's).
        let stalled = wait_for(|| fds_open_on(&fifo) == 2).await;
        assert!(stalled, "the push never reached its file");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!outbox.results_full());
        assert!(
            outbox.pending().is_empty(),
            "an item is pending only once it is durable"
        );
        assert!(!push.is_finished(), "the write is still stalled");
        release.send(()).unwrap();
        push.await.unwrap()
    });
    assert!(
        reader.join().unwrap(),
        "the runtime was blocked until the stall timed out"
    );
    // fsync of a FIFO is refused: the push fails cleanly, and the outbox still works.
    assert!(matches!(push_result, Err(OutboxError::Io { .. })), "{push_result:?}");
    fs::remove_file(&fifo).ok();
    let id = runtime.block_on(outbox.push(completion("fj-after"))).unwrap();
    assert_eq!(outbox.pending(), vec![(id, completion("fj-after"))]);
}

/// Polls `check` every 10 ms until true or WAIT_LIMIT passes.
async fn wait_for(check: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}
