//! `salve plan`: connect, gather facts and ask every module what it would change (check mode:
//! nothing is changed), then write the plan a change board approves — `plan.json` (canonical,
//! with its digest) and Markdown and HTML renderings, whole and per tenant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Selection;
use crate::exit;
use crate::plan::collect::PlanCollector;
use crate::plan::render::{self, Scope};
use crate::plan::{FileRef, InventoryRef, Plan, PlanSelection};
use crate::runner::RunOptions;

/// Arguments of `salve plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The playbook to plan.
    #[arg(value_name = "PLAYBOOK")]
    pub playbook: PathBuf,
    #[command(flatten)]
    pub selection: Selection,
    /// Where to write the plan; `.md` and `.html` renderings go beside it.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "FILE",
        default_value = "plan.json"
    )]
    pub out: PathBuf,
    /// Hosts inspected at once.
    #[arg(short = 'f', long, default_value_t = 50, value_name = "N")]
    pub forks: usize,
    /// One JSON event per line on stdout instead of human output.
    #[arg(long)]
    pub json: bool,
    /// Plain lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

pub fn run(args: PlanArgs) -> u8 {
    let prepared = match super::run::prepare(&args.playbook, &args.selection) {
        Ok(p) => p,
        Err(diags) => {
            eprint!("{}", diags.render());
            return exit::INVALID_INPUT;
        }
    };
    let runtime = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let selection = PlanSelection {
        limit: args.selection.limit.clone(),
        tenant: args.selection.tenant.clone(),
        all_tenants: args.selection.all_tenants,
    };
    let report = crate::report::Options {
        json: args.json,
        no_progress: args.no_progress,
        report_dir: None,
    };
    let plan = runtime.block_on(make_plan(prepared, selection, args.forks, &report));
    let plan = match plan {
        Ok((p, _)) => p,
        Err(code) => return code,
    };
    match write_plan(&plan, &args.out) {
        Ok(written) => {
            eprintln!(
                "\nplan written: {} ({} hosts with steps, {} steps, {} reboots, about {}; {} left out)\ndigest {}",
                written.join(", "),
                plan.totals.hosts_with_steps,
                plan.totals.steps,
                plan.totals.reboots,
                render::duration(plan.totals.estimated_seconds),
                plan.totals.left_out,
                plan.digest()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write the plan: {e}");
            exit::INTERNAL
        }
    }
}

/// Run the playbook in check mode and collect the plan. Also used by `salve run --check`.
pub(super) async fn make_plan(
    prepared: super::run::Prepared,
    selection: PlanSelection,
    forks: usize,
    report: &crate::report::Options,
) -> Result<(Plan, u8), u8> {
    let playbook = Arc::clone(&prepared.input.playbook);
    let inventory = Arc::clone(&prepared.input.inventory);
    let (collector, collected) = PlanCollector::new(Arc::clone(&playbook), Arc::clone(&inventory));
    let options = RunOptions {
        forks: forks.max(1),
        check_mode: true,
        extra_vars: prepared.extra_vars,
        run_id: super::run::run_id(),
        ..RunOptions::default()
    };
    let connector = Arc::new(super::run::standard_connector());
    let code = super::run::execute_with(
        prepared.input,
        options,
        connector,
        report,
        vec![Box::new(collector)],
    )
    .await;
    if code == exit::INTERNAL {
        return Err(code);
    }
    let collected = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
    let (hosts, left_out) = collected.into_parts();
    let plan = Plan::new(
        created_at(),
        FileRef {
            path: playbook.path.display().to_string(),
            sha256: playbook.digest.clone(),
        },
        InventoryRef {
            sources: inventory
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            sha256: inventory.digest.clone(),
        },
        selection,
        hosts,
        left_out,
    );
    Ok((plan, code))
}

/// Now, or `SOURCE_DATE_EPOCH` when set, so the same inputs can give a byte-identical plan.
fn created_at() -> jiff::Timestamp {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

/// Write `plan.json` and its renderings (whole, and per tenant); returns the paths written.
fn write_plan(plan: &Plan, out: &Path) -> std::io::Result<Vec<String>> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    plan.save(out)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut written = vec![out.display().to_string()];
    let stem = out.with_extension("");
    let mut write = |path: PathBuf, text: String| -> std::io::Result<()> {
        std::fs::write(&path, text)?;
        written.push(path.display().to_string());
        Ok(())
    };
    write(
        stem.with_extension("md"),
        render::markdown(plan, Scope::Whole),
    )?;
    write(
        stem.with_extension("html"),
        render::html(plan, Scope::Whole),
    )?;
    for tenant in render::tenants(plan) {
        let base = format!(
            "{}.{}",
            stem.display(),
            if tenant.is_empty() {
                "no-tenant"
            } else {
                &tenant
            }
        );
        write(
            PathBuf::from(format!("{base}.md")),
            render::markdown(plan, Scope::Tenant(&tenant)),
        )?;
        write(
            PathBuf::from(format!("{base}.html")),
            render::html(plan, Scope::Tenant(&tenant)),
        )?;
    }
    Ok(written)
}
