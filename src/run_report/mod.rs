//! Run reports for people: self-contained HTML pages of a run, one for the whole run and one
//! per tenant, with the IOC scans' evidence beside them. Rendered from the run journal only
//! ([`view::ViewBuilder`] over each host's steps and [`crate::journal::RunContext`]): at
//! the end of a run with `--report-dir` ([`HtmlReporter`], after the journal has written its
//! last row) and at any later time with `salve runs report` ([`load`] then [`write`]), so both
//! give the same bytes.
//!
//! Layout of a report directory:
//!
//! ```text
//! DIR/report.html                      the whole run (or one tenant's, with --tenant)
//! DIR/evidence/HOST-ioc.json           each IOC scan's result
//! DIR/tenants/TENANT/report.html       one tenant's page: its hosts only
//! DIR/tenants/TENANT/evidence/…        its hosts' evidence only
//! ```
//!
//! Layering: above [`crate::journal`] and [`crate::report`] (it is one more reporter), below
//! [`crate::launch`] and the commands.

pub mod charts;
pub mod page;
pub mod view;

use std::io;
use std::path::{Path, PathBuf};

use crate::events::Event;
use crate::journal::{Journal, JournalError};
use crate::report::Reporter;
use crate::report::files::write_atomic;

pub use page::Scope;
pub use view::RunView;

/// Why a run report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunReportError {
    #[error("cannot read the run from the journal")]
    Journal(#[source] JournalError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the run has no tenant `{tenant}` (its tenants: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NoSuchTenant { tenant: String, known: Vec<String> },
}

/// The pages written, for the caller to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// `DIR/report.html`.
    pub page: PathBuf,
    /// Each tenant's page (empty with `--tenant`).
    pub tenants: Vec<(String, PathBuf)>,
}

/// Read run `id` from the journal as a report sees it, one host's steps at a time: a large
/// run's steps and their results, parsed all at once, took far more memory than the pages
/// made from them.
pub async fn load(journal: &Journal, id: &str) -> Result<RunView, RunReportError> {
    let run = journal
        .run_record(id)
        .await
        .map_err(RunReportError::Journal)?;
    let context = journal
        .run_context(id)
        .await
        .map_err(RunReportError::Journal)?;
    let mut builder = view::ViewBuilder::new(&run, &context);
    for host in journal
        .step_hosts(id)
        .await
        .map_err(RunReportError::Journal)?
    {
        let steps = journal
            .host_steps(id, &host)
            .await
            .map_err(RunReportError::Journal)?;
        builder.host(&host, &steps);
    }
    Ok(builder.finish(run))
}

/// Write the pages of `view` into `dir`: the whole run and each tenant's, or only `tenant`'s.
pub fn write(dir: &Path, view: &RunView, tenant: Option<&str>) -> Result<Written, RunReportError> {
    match tenant {
        Some(t) => {
            let tenants = view.tenants();
            if !tenants.iter().any(|k| k == t) {
                return Err(RunReportError::NoSuchTenant {
                    tenant: t.to_string(),
                    known: tenants,
                });
            }
            let page = write_page(dir, &view.for_tenant(t), Scope::Tenant(t))?;
            Ok(Written {
                page,
                tenants: Vec::new(),
            })
        }
        None => {
            let written = layout(dir, &view.tenants());
            write_page(dir, view, Scope::Whole)?;
            for (t, page) in &written.tenants {
                let sub = page.parent().unwrap_or(dir);
                write_page(sub, &view.for_tenant(t), Scope::Tenant(t))?;
            }
            Ok(written)
        }
    }
}

/// Where the pages of a run with `tenants` go in `dir` (see the module docs).
pub fn layout(dir: &Path, tenants: &[String]) -> Written {
    Written {
        page: dir.join("report.html"),
        tenants: tenants
            .iter()
            .map(|t| {
                let page = dir.join("tenants").join(safe_name(t)).join("report.html");
                (t.clone(), page)
            })
            .collect(),
    }
}

/// `dir/report.html` and `dir/evidence/*` for `view`.
fn write_page(dir: &Path, view: &RunView, scope: Scope<'_>) -> Result<PathBuf, RunReportError> {
    let html = page::render(view, scope)?;
    for h in &view.hosts {
        if let Some(result) = &h.scan_result {
            let path = dir.join(page::evidence_file(&h.name));
            let mut text = serde_json::to_vec_pretty(result).map_err(|e| RunReportError::Io {
                path: path.clone(),
                source: io::Error::other(e),
            })?;
            text.push(b'\n');
            create(&path)?;
            write_atomic(&path, &text).map_err(|source| RunReportError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    let path = dir.join("report.html");
    create(&path)?;
    write_atomic(&path, html.as_bytes()).map_err(|source| RunReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Create the folder `path` goes in.
fn create(path: &Path) -> Result<(), RunReportError> {
    match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|source| RunReportError::Io {
            path: parent.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

/// A tenant's name as a folder name: letters, digits, `.`, `-` and `_` kept, the rest `_`.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the run's pages into the report directory when the run ends, from the journal. Add
/// it after the journal's reporter, so the journal has written the run's last row first.
pub struct HtmlReporter {
    dir: PathBuf,
    journal: Journal,
    runtime: tokio::runtime::Handle,
    run_id: Option<String>,
}

impl HtmlReporter {
    pub fn new(dir: PathBuf, journal: Journal, runtime: tokio::runtime::Handle) -> Self {
        HtmlReporter {
            dir,
            journal,
            runtime,
            run_id: None,
        }
    }
}

impl Reporter for HtmlReporter {
    fn event(&mut self, event: &Event) {
        if let Event::RunStarted { run_id, .. } = event {
            self.run_id = Some(run_id.clone());
        }
    }

    /// Called on the reporters' blocking thread (see [`crate::report::spawn_reporters`]), where
    /// waiting on the runtime is allowed.
    fn finish(&mut self) -> io::Result<()> {
        let Some(id) = self.run_id.take() else {
            return Ok(());
        };
        let view = self
            .runtime
            .block_on(load(&self.journal, &id))
            .map_err(io::Error::other)?;
        write(&self.dir, &view, None).map_err(io::Error::other)?;
        Ok(())
    }
}
