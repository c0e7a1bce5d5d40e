//! `frctl frames requeue`: a dry run first to learn what matches; `--dry-run` stops there; a
//! move over `--confirm-over` chunks needs `--yes` or a "yes" typed at a terminal (exit 7
//! otherwise); then the real move, printing what moved.

use std::io::{BufRead, IsTerminal, Write};

use flatrender_proto::pb;
use serde::Serialize;

use crate::{
    args::{OutputFormat, RequeueArgs},
    connect::{Answer, Client, Failure, exit},
    nodes::resolve,
    output::{Table, emit, or_dash},
    views::{ChunkJson, chunk_state},
};

#[derive(Serialize)]
struct RequeueJson {
    /// True when nothing was moved (`--dry-run`).
    dry_run: bool,
    /// How many chunks moved, or would move.
    count: usize,
    /// The chunks that moved, or would move.
    chunks: Vec<ChunkJson>,
}

/// Runs `frames requeue`.
pub async fn requeue(client: &Client, format: OutputFormat, args: RequeueArgs) -> anyhow::Result<()> {
    let node_id = match &args.node {
        Some(node) => resolve(client, node).await?,
        None => String::new(),
    };
    let selector = pb::FrameSelector {
        job_id: args.job.clone().unwrap_or_default(),
        node_id,
        tenant_id: args.tenant.clone().unwrap_or_default(),
        states: args.states.iter().map(|state| state.to_wire()).collect(),
        error_class: args.error_class.clone().unwrap_or_default(),
    };
    let limit = i32::try_from(args.limit).unwrap_or(i32::MAX);
    let matching = call(client, &selector, true, limit).await?;
    if args.dry_run || matching.is_empty() {
        return report(format, args.dry_run, &matching);
    }
    let count = matching.len();
    if count > args.confirm_over as usize && !args.yes {
        confirm(format, count, &matching, args.confirm_over)?;
    }
    // The move may take no more than the dry run showed: if more chunks match by now, the
    // control plane refuses and nothing moves, rather than moving chunks nobody reviewed.
    let reviewed = i32::try_from(count).unwrap_or(i32::MAX);
    let moved = call(client, &selector, false, reviewed).await.map_err(|failure| {
        if failure.code == exit::CONFLICT {
            Failure::new(
                exit::CONFLICT,
                format!("more than the {count} reviewed chunk(s) match now; nothing moved; run the command again"),
            )
        } else {
            failure
        }
    })?;
    report(format, false, &moved)
}

async fn call(
    client: &Client,
    selector: &pb::FrameSelector,
    dry_run: bool,
    limit: i32,
) -> Result<Vec<pb::FrameJob>, Failure> {
    let response = client
        .admin()
        .requeue_frames(client.request(pb::RequeueFramesRequest {
            selector: Some(selector.clone()),
            dry_run,
            limit,
        }))
        .await
        .answer(client)?;
    Ok(response.frame_jobs)
}

/// Asks at a terminal; anything but yes (or no terminal) is exit 7.
fn confirm(format: OutputFormat, count: usize, matching: &[pb::FrameJob], threshold: u32) -> Result<(), Failure> {
    let refuse = |why: &str| {
        Failure::new(
            exit::NOT_CONFIRMED,
            format!(
                "{count} chunks would move (more than --confirm-over {threshold}) and {why}; \
                 review with --dry-run, then re-run with --yes"
            ),
        )
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(refuse("stdin is not a terminal to confirm on"));
    }
    if format == OutputFormat::Table {
        out!("{}", chunk_table(matching).render());
    }
    eprint!("move these {count} chunks back to the queue? type yes to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|error| Failure::new(exit::NOT_CONFIRMED, format!("could not read the answer: {error}")))?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y") {
        Ok(())
    } else {
        Err(refuse("the answer was not yes"))
    }
}

fn chunk_table(chunks: &[pb::FrameJob]) -> Table {
    let mut table = Table::new(&["JOB", "CHUNK", "FRAMES", "STATE", "NODE", "ATTEMPT", "LAST ERROR", "ID"]);
    for chunk in chunks {
        let range = chunk.frame_range.unwrap_or_default();
        table.row(vec![
            chunk.job_id.clone(),
            chunk.chunk_index.to_string(),
            format!("{}-{}", range.start, range.end),
            chunk_state(chunk.state).to_owned(),
            node_cell(chunk),
            chunk.attempt.to_string(),
            or_dash(&chunk.last_error_class),
            chunk.id.clone(),
        ]);
    }
    table
}

fn report(format: OutputFormat, dry_run: bool, chunks: &[pb::FrameJob]) -> anyhow::Result<()> {
    let json = RequeueJson {
        dry_run,
        count: chunks.len(),
        chunks: chunks.iter().map(ChunkJson::new).collect(),
    };
    emit(format, &json, || {
        if chunks.is_empty() {
            outln!("no chunk matches; nothing to move");
            return;
        }
        out!("{}", chunk_table(chunks).render());
        if dry_run {
            outln!("dry run: {} chunk(s) would move; nothing was moved", chunks.len());
        } else {
            outln!("{} chunk(s) moved back to the queue", chunks.len());
        }
    })
}

/// The node holding a chunk: its name, else its id, else `-`.
pub fn node_cell(chunk: &pb::FrameJob) -> String {
    if chunk.node_name.is_empty() {
        or_dash(&chunk.node_id)
    } else {
        chunk.node_name.clone()
    }
}
