//! `salve plan`: connect, gather facts and ask every module what it would change (check mode:
//! nothing is changed), then write the plan a change board approves — `plan.json` (canonical,
//! with its digest) and Markdown and HTML renderings, whole and per tenant.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AppError, Console, Selection};
use crate::launch::RunBuilder;
use crate::plan::collect::PlanCollector;
use crate::plan::render::{self, Scope};
use crate::plan::{FileRef, InventoryRef, Plan, PlanSelection};

/// What `salve plan` was asked to do.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub playbook: PathBuf,
    pub selection: Selection,
    /// Where to write `plan.json`; the renderings go beside it.
    pub out: PathBuf,
    pub forks: usize,
    pub report: crate::report::Options,
}

/// A written plan.
#[derive(Debug)]
pub struct PlanWritten {
    pub plan: Plan,
    /// Every file written, `plan.json` first.
    pub files: Vec<String>,
}

/// Make the plan and write it with its renderings.
pub fn plan(request: PlanRequest, console: &dyn Console) -> Result<PlanWritten, AppError> {
    let prepared = super::prepare(&request.playbook, &request.selection, console)?;
    super::exchange_access::check(
        &prepared.input.inventory,
        &prepared.input.playbook,
        &prepared.input.play_hosts,
    )?;
    let runtime = super::runtime()?;
    let selection = PlanSelection {
        limit: request.selection.limit.clone(),
        tenant: request.selection.tenant.clone(),
        all_tenants: request.selection.all_tenants,
    };
    let builder = RunBuilder::new(prepared.input, prepared.extra_vars).forks(request.forks);
    let (plan, _) = runtime.block_on(make_plan(builder, selection, &request.report))?;
    let files = write_plan(&plan, &request.out)
        .map_err(|e| AppError::internal("cannot write the plan", e))?;
    Ok(PlanWritten { plan, files })
}

/// Run `builder`'s run in check mode and collect the plan; also the exit code of that run.
/// Used by `salve plan` and by `salve run --check`.
pub async fn make_plan(
    builder: RunBuilder,
    selection: PlanSelection,
    report: &crate::report::Options,
) -> Result<(Plan, u8), AppError> {
    let playbook = Arc::clone(&builder.input().playbook);
    let inventory = Arc::clone(&builder.input().inventory);
    let (collector, collected) = PlanCollector::new(Arc::clone(&playbook), Arc::clone(&inventory));
    let summary = builder
        .check_mode(true)
        .reporter(Box::new(collector))
        .execute(Arc::new(crate::launch::standard_connector()), report)
        .await?;
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
    Ok((plan, summary.exit_code))
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
