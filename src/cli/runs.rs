//! `salve runs list`, `salve runs show RUN` and `salve runs report RUN -o DIR`: what the
//! journal recorded. `RUN` is a run id or a unique prefix of one. `report` renders the run's
//! HTML pages ([`crate::run_report`]) from the journal, the same bytes the run wrote. `--json` prints the records as one JSON document (an array of runs,
//! or one run with its `steps` and `intents`); the field names are those of
//! [`crate::journal::RunRecord`], [`crate::journal::StepRecord`] and [`crate::journal::Intent`].

use std::fmt::Write as _;

use crate::exit;
use crate::journal::{Journal, JournalError, RunDetail, RunRecord, StepState};
use crate::run_report::RunReportError;

/// Arguments of `salve runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCommand {
    /// Every run in the journal, newest first.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One run: each host's steps, their states, and changes that were in flight.
    Show {
        /// Run id, or a unique prefix of one.
        #[arg(value_name = "RUN")]
        run: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Render the run's HTML report from the journal: the whole run and one page per tenant
    /// (or one tenant's page only), with the IOC scans' evidence.
    Report {
        /// Run id, or a unique prefix of one.
        #[arg(value_name = "RUN")]
        run: String,
        /// Only this tenant's page: none of another tenant's hosts, names or numbers.
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
        /// Folder to write `report.html` (and `evidence/`, `tenants/`) into.
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: std::path::PathBuf,
    },
}

/// Why `salve runs` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Report(#[from] RunReportError),
}

pub fn run(args: RunsArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::print_error(&e, exit::INTERNAL),
    };
    match runtime.block_on(query(&args.command)) {
        Ok(text) => {
            print!("{text}");
            exit::OK
        }
        Err(
            e @ (RunsError::Journal(JournalError::NoSuchRun(_) | JournalError::AmbiguousRun { .. })
            | RunsError::Report(RunReportError::NoSuchTenant { .. })),
        ) => super::print_error(&e, exit::INVALID_INPUT),
        Err(e) => super::print_error(&e, exit::INTERNAL),
    }
}

async fn query(command: &RunsCommand) -> Result<String, RunsError> {
    let journal = Journal::open_default().await?;
    let text = match command {
        RunsCommand::List { json } => {
            let runs = journal.runs().await?;
            if *json {
                to_json(&runs)
            } else {
                list_text(&runs)
            }
        }
        RunsCommand::Show { run, json } => {
            let id = journal.resolve_run(run).await?;
            let detail = journal.run(&id).await?;
            if *json {
                to_json(&detail)
            } else {
                show_text(&detail)
            }
        }
        RunsCommand::Report { run, tenant, out } => {
            let id = journal.resolve_run(run).await?;
            let view = crate::run_report::load(&journal, &id).await?;
            let written = crate::run_report::write(out, &view, tenant.as_deref())?;
            report_text(&written)
        }
    };
    journal.close().await;
    Ok(text)
}

/// The pages written, one path a line.
pub fn report_text(written: &crate::run_report::Written) -> String {
    let mut out = format!("report: {}\n", written.page.display());
    for (tenant, page) in &written.tenants {
        let _ = writeln!(out, "  {tenant}: {}", page.display());
    }
    out
}

fn to_json(value: &impl serde::Serialize) -> String {
    // Records of strings and numbers: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn status(run: &RunRecord) -> String {
    let mut s = match run.status.as_str() {
        "running" => "unfinished".to_string(),
        other => other.to_string(),
    };
    if run.check_mode {
        s.push_str(" (check)");
    }
    s
}

/// A table: id, start, status, exit code, host count, playbook.
fn list_text(runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return "no runs recorded yet\n".to_string();
    }
    let id_width = runs.iter().map(|r| r.id.len()).max().unwrap_or(0).max(3);
    let mut out = format!(
        "{:id_width$}  {:20}  {:18}  {:4}  {:5}  PLAYBOOK\n",
        "RUN", "STARTED", "STATUS", "EXIT", "HOSTS"
    );
    for r in runs {
        let exit = r.exit_code.map(|c| c.to_string()).unwrap_or("-".into());
        let _ = writeln!(
            out,
            "{:id_width$}  {:20}  {:18}  {:4}  {:5}  {}",
            r.id,
            r.started_at,
            status(r),
            exit,
            r.hosts,
            r.playbook
        );
    }
    out
}

/// A run's header, then per host its steps with state, and the intents left open.
fn show_text(detail: &RunDetail) -> String {
    let r = &detail.run;
    let mut out = format!("run {}  {}  {}\n", r.id, r.playbook, status(r));
    let _ = writeln!(
        out,
        "started {}  finished {}  exit {}",
        r.started_at,
        r.finished_at.as_deref().unwrap_or("-"),
        r.exit_code.map(|c| c.to_string()).unwrap_or("-".into())
    );
    for (label, digest) in [
        ("playbook", &r.playbook_digest),
        ("inventory", &r.inventory_digest),
        ("plan", &r.plan_digest),
    ] {
        if let Some(d) = digest {
            let _ = writeln!(out, "{label} sha256 {d}");
        }
    }
    let mut host: Option<&str> = None;
    for step in &detail.steps {
        if host != Some(step.host.as_str()) {
            host = Some(&step.host);
            match &step.tenant {
                Some(t) => {
                    let _ = writeln!(out, "\n{} ({t})", step.host);
                }
                None => {
                    let _ = writeln!(out, "\n{}", step.host);
                }
            }
        }
        let msg = step
            .outcome
            .as_ref()
            .and_then(|o| o.get("msg"))
            .and_then(|m| m.as_str())
            .map(|m| format!("  {m}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}.{:<3} {:11} {}{}",
            step.play + 1,
            step.task_index + 1,
            step.state.as_str(),
            if step.task.is_empty() {
                "(task not reported yet)"
            } else {
                &step.task
            },
            msg
        );
        if step.state == StepState::Intent {
            out.push_str("        (a change was announced and never confirmed: check the host)\n");
        }
    }
    let open: Vec<_> = detail
        .intents
        .iter()
        .filter(|i| i.outcome.is_none())
        .collect();
    if !open.is_empty() {
        out.push_str("\nchanges in flight (never confirmed):\n");
        for i in open {
            let _ = writeln!(
                out,
                "  {}  step {}.{}  {}  since {}",
                i.host,
                i.play + 1,
                i.task_index + 1,
                i.action,
                i.created_at
            );
        }
    }
    out
}
