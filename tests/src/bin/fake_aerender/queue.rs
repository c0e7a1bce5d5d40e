//! Choosing what to render, as the script does: the queue item for `-comp`/`-rqindex` (or the
//! whole queue), template and output checks, and the frame range from `-s`/`-e`/`-i` (§2.1).

use super::args::{self, ScriptArgs};
use super::flow::{Invocation, with_user_log};
use super::project::{Comp, Project, RqItem, RqStatus};
use super::render::ItemPlan;

pub(super) type Fatal = (String, i32);

fn fatal(message: &str, code: i32) -> Fatal {
    (format!("aerender ERROR: {message}"), code)
}

/// Finds the queue item(s) to render and applies templates, output and frame range.
pub(super) fn select_items(
    invocation: &mut Invocation,
    parsed: &ScriptArgs,
    project: &Project,
) -> Result<Vec<ItemPlan>, Fatal> {
    let mut target: Option<RqItem> = None;
    if let Some(comp_name) = &parsed.comp {
        for item in project.render_queue.iter().filter(|item| &item.comp == comp_name) {
            if item.status == RqStatus::WillContinue {
                invocation.sink.script("INFO: Skipping render queue item with correct comp name but marked to continue from a partly complete render.");
            }
            if matches!(item.status, RqStatus::Queued | RqStatus::NeedsOutput) {
                target = Some(item.clone());
                break;
            }
        }
    } else if let Some(index) = &parsed.rqindex {
        let position = args::parse_int(index).unwrap_or(0);
        let in_range = position >= 1 && position <= project.render_queue.len() as i64;
        if !in_range || invocation.forced("rqindex_not_found") {
            return Err(fatal("No render queue item was found with the given index.", 7));
        }
        target = project.render_queue.get(position as usize - 1).cloned();
    }
    if let Some(comp_name) = &parsed.comp {
        let comp_exists = project.comp(comp_name).is_some() && !invocation.forced("comp_not_found");
        if !comp_exists {
            return Err(fatal("No comp was found with the given name.", 7));
        }
        if target.is_none() {
            invocation
                .sink
                .script("PROGRESS: Adding specified comp to Render Queue");
            target = Some(RqItem {
                comp: comp_name.clone(),
                output: None,
                status: RqStatus::NeedsOutput,
            });
        }
    }
    let has_target = target.is_some();
    if let Some(template) = &parsed.rs_template {
        if !has_target {
            invocation
                .sink
                .script("WARNING: -RStemplate argument ignored since no -comp or -rqindex provided.");
        } else if !project.has_rs_template(template) || invocation.forced("rs_template") {
            return Err(fatal("No render settings template was found with the given name.", 7));
        }
    }
    if parsed.render_settings.is_some() && !has_target {
        return Err(fatal(
            "Can't use -renderSettings because no render queue item was specified.",
            7,
        ));
    }
    if let Some(template) = &parsed.om_template {
        if !has_target {
            invocation
                .sink
                .script("WARNING: -OMtemplate argument ignored since no -comp  or -rqindex provided.");
        } else if !project.has_om_template(template) || invocation.forced("om_template") {
            return Err(fatal("No output module template was found with the given name.", 7));
        }
    }
    if parsed.output_settings.is_some() && !has_target {
        return Err(fatal(
            "Can't use -outputSettings because no render queue item was specified.",
            7,
        ));
    }
    let Some(target) = target else {
        return whole_queue(invocation, parsed, project);
    };
    let needs_output = target.status == RqStatus::NeedsOutput || invocation.forced("needs_output");
    let Some(output) = parsed
        .output
        .clone()
        .or(target.output.clone())
        .filter(|_| !(needs_output && parsed.output.is_none()))
    else {
        return Err(fatal(
            "Specified render queue item needs output file but none provided.",
            7,
        ));
    };
    let comp = project
        .comp(&target.comp)
        .unwrap_or_else(|| Comp::with_defaults(&target.comp));
    let first_frame = project.display_start_frame + comp.start;
    let last_frame = first_frame + comp.frames - 1;
    let start = parsed
        .start_frame
        .as_deref()
        .and_then(args::parse_int)
        .unwrap_or(first_frame);
    let end = parsed
        .end_frame
        .as_deref()
        .and_then(args::parse_int)
        .unwrap_or(last_frame)
        .min(last_frame);
    let increment = match parsed.increment.as_deref() {
        None => 1,
        Some(value) => match args::parse_int(value).filter(|increment| (1..=100).contains(increment)) {
            Some(increment) => increment,
            None => {
                let code = with_user_log(3, invocation.sink.has_log_file());
                return Err((
                    "aerender SYNTAX ERROR: Bad value for -increment. Must be between 1 and 100, inclusive.".to_owned(),
                    code,
                ));
            }
        },
    };
    let plan = ItemPlan {
        frames: (start..=end).step_by(increment as usize).collect(),
        comp,
        first: start,
        last: end,
        custom_span: parsed.start_frame.is_some() || parsed.end_frame.is_some(),
        before_comp_start: start < first_frame,
        output,
        rs_template: parsed.rs_template.clone().unwrap_or_else(|| "Best Settings".to_owned()),
        om_template: parsed.om_template.clone().unwrap_or_else(|| "Lossless".to_owned()),
        display_start_frame: project.display_start_frame,
    };
    Ok(vec![plan])
}

/// No `-comp`/`-rqindex`: warn about ignored flags and render every queued item as saved.
fn whole_queue(invocation: &mut Invocation, parsed: &ScriptArgs, project: &Project) -> Result<Vec<ItemPlan>, Fatal> {
    if parsed.output.is_some() {
        invocation
            .sink
            .script("WARNING: -output argument ignored since no -comp  or -rqindex provided.");
    }
    if parsed.start_frame.is_some() || parsed.end_frame.is_some() {
        invocation
            .sink
            .script("WARNING: -s and/or -e arguments ignored since no -comp  or -rqindex provided.");
    }
    if let Some(value) = &parsed.increment {
        if !args::parse_int(value).is_some_and(|increment| (1..=100).contains(&increment)) {
            let code = with_user_log(3, invocation.sink.has_log_file());
            return Err((
                "aerender SYNTAX ERROR: Bad value for -increment. Must be between 1 and 100, inclusive.".to_owned(),
                code,
            ));
        }
        invocation
            .sink
            .script("WARNING: -i argument ignored since no -comp  or -rqindex provided.");
    }
    let plans = project
        .render_queue
        .iter()
        .filter(|item| item.status == RqStatus::Queued)
        .filter_map(|item| Some((item, project.comp(&item.comp)?, item.output.clone()?)))
        .map(|(_, comp, output)| {
            let first = project.display_start_frame + comp.start;
            let last = first + comp.frames - 1;
            ItemPlan {
                frames: (first..=last).collect(),
                comp,
                first,
                last,
                custom_span: false,
                before_comp_start: false,
                output,
                rs_template: "Best Settings".to_owned(),
                om_template: "Lossless".to_owned(),
                display_start_frame: project.display_start_frame,
            }
        })
        .collect();
    Ok(plans)
}
