//! `frctl crashes list [--node] [--class] [--since]`: recorded render failures, newest first.

use chrono::{DateTime, Utc};
use flatrender_proto::{pb, types::CrashClass};
use serde::Serialize;

use crate::{
    args::{CrashesCommand, OutputFormat},
    connect::{Answer, Client},
    nodes::resolve,
    output::{Table, emit, or_dash, short_id, time_cell},
    views::{CrashJson, crash_class, recovery_action},
};

#[derive(Serialize)]
struct CrashListJson {
    crashes: Vec<CrashJson>,
}

/// Runs a `crashes` subcommand.
pub async fn run(client: &Client, format: OutputFormat, command: CrashesCommand) -> anyhow::Result<()> {
    let CrashesCommand::List {
        node,
        class,
        since,
        limit,
    } = command;
    let node_id = match &node {
        Some(node) => resolve(client, node).await?,
        None => String::new(),
    };
    let crashes = list(client, node_id, class, since, limit as usize).await?;
    let json = CrashListJson {
        crashes: crashes.iter().map(CrashJson::from).collect(),
    };
    emit(format, &json, || {
        let mut table = Table::new(&["WHEN", "NODE", "CLASS", "ERROR", "EXIT", "ACTION", "JOB", "LOG TAIL"]);
        for crash in &crashes {
            let tail = crash
                .log_tail
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect::<String>();
            table.row(vec![
                time_cell(crash.occurred_at.as_ref()),
                crash.node_name.clone(),
                crash_class(crash.crash_class).to_owned(),
                or_dash(&crash.error_class),
                crash.exit_code.map_or_else(|| "-".to_owned(), |code| code.to_string()),
                recovery_action(crash.recovery_action).to_owned(),
                or_dash(&short_id(&crash.job_id)),
                or_dash(&tail),
            ]);
        }
        table.print_or("no crashes");
    })
}

async fn list(
    client: &Client,
    node_id: String,
    class: Option<CrashClass>,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> anyhow::Result<Vec<pb::Crash>> {
    let since = since.map(|at| prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    });
    let mut crashes = Vec::new();
    let mut page_token = String::new();
    while crashes.len() < limit {
        let page = client
            .admin()
            .list_crashes(client.request(pb::ListCrashesRequest {
                node_id: node_id.clone(),
                crash_class: class.map_or(0, CrashClass::to_wire),
                since,
                page_size: i32::try_from((limit - crashes.len()).min(1000)).unwrap_or(1000),
                page_token: page_token.clone(),
            }))
            .await
            .answer(client)?;
        crashes.extend(page.crashes);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    crashes.truncate(limit);
    Ok(crashes)
}
