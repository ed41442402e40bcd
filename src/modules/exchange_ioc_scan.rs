//! `exchange_ioc_scan`: look for signs of ProxyLogon exploitation with Test-ProxyLogon's checks
//! (shipped script `exchange_ioc_scan`). Read-only on the host ([`ReadOnlyModule`]), so check
//! mode runs it too; the evidence file is written on the controller.
//!
//! ```yaml
//! - exchange_ioc_scan:
//!     evidence_dir: evidence     # optional: also write <dir>/<host>-ioc.json on the
//!                                # controller; a relative dir is inside salve's state
//!                                # directory, never beside the playbook
//!   register: ioc
//!   failed_when: ioc.compromised
//! ```
//!
//! Without `evidence_dir` the result is still kept: in the run journal, and in the report
//! directory's `evidence/` when the run writes reports (see [`crate::run_report`]).
//!
//! The result holds `compromised`, `findings` (per CVE and kind, with evidence: path, SHA-256,
//! log line) and `log_age_days` (how far back each log folder reaches). A compromised server is
//! reported as such however well patched it is: patching does not evict an attacker. The task
//! itself does not fail on findings, so the playbook decides (`failed_when: ioc.compromised`).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::exchange_script::{self as shipped, Fail};
use super::spec::{ModuleSpec, Provides};
use super::{CheckCtx, ModuleError, Outcome, ReadOnlyModule};
use crate::contract::{IocScanAnswer, ReadOnlyId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    evidence_dir: Option<String>,
}

pub struct ExchangeIocScan;

/// What `exchange_ioc_scan` is, for the module table: read-only, and its results are the
/// run report's evidence.
pub const SPEC: ModuleSpec = ModuleSpec {
    provides: Provides::IocFindings,
    ..ModuleSpec::read_only(
        "exchange_ioc_scan",
        &ExchangeIocScan,
        super::args::validator::<Args>,
    )
};

#[async_trait::async_trait]
impl ReadOnlyModule for ExchangeIocScan {
    async fn run(&self, args: &Value, ctx: &CheckCtx<'_>) -> Result<Outcome, ModuleError> {
        let args: Args = shipped::args(args)?;
        shipped::finish(scan(&args, ctx).await)
    }
}

async fn scan(args: &Args, ctx: &CheckCtx<'_>) -> Result<Outcome, Fail> {
    let reply =
        shipped::read::<IocScanAnswer>(ctx, ReadOnlyId::ExchangeIocScan, &json!({})).await?;
    let a = reply.answer;
    let msg = if a.compromised {
        let kinds: Vec<String> = a
            .findings
            .iter()
            .map(|f| format!("{} {} ({})", f.cve, f.kind, f.evidence.len()))
            .collect();
        format!("COMPROMISED: {}", kinds.join(", "))
    } else {
        let shortest = a.log_age_days.values().min().copied();
        match shortest {
            Some(days) => format!("nothing suspicious detected; logs reach back {days} day(s)"),
            None => "nothing suspicious detected; no logs found to scan".to_string(),
        }
    };
    let mut outcome = Outcome::ok().with_msg(msg);
    let data = serde_json::to_value(&a).map_err(|e| {
        Fail::Module(ModuleError::Args(format!(
            "cannot encode the scan result: {e}"
        )))
    })?;
    if let Some(dir) = &args.evidence_dir {
        let path = write_evidence(ctx, dir, &data).map_err(|e| {
            Fail::failed(format!(
                "scan done (compromised: {}), but the evidence could not be written: {e}",
                a.compromised
            ))
        })?;
        outcome = outcome.with("evidence_file", path.display().to_string());
    }
    if let Value::Object(map) = data {
        outcome.data.extend(map);
    }
    Ok(outcome)
}

/// Write the scan result to `<dir>/<host>-ioc.json`, a relative `dir` inside salve's state
/// directory ([`crate::state`]).
fn write_evidence(ctx: &CheckCtx<'_>, dir: &str, data: &Value) -> std::io::Result<PathBuf> {
    let dir = if std::path::Path::new(dir).is_absolute() {
        PathBuf::from(dir)
    } else {
        let state = crate::state::dir().ok_or_else(|| {
            std::io::Error::other(
                "no state directory for the evidence (set SALVE_STATE_DIR, XDG_STATE_HOME or \
                 HOME, or give an absolute evidence_dir)",
            )
        })?;
        state.join(dir)
    };
    std::fs::create_dir_all(&dir)?;
    let safe: String = ctx
        .host
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}-ioc.json"));
    let text = serde_json::to_string_pretty(data).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::exchange_script::testing::*;
    use super::*;
    use crate::contract::{Evidence, IocFinding};
    use crate::modules::Module;
    use crate::transport::fake::FakeFleet;

    #[tokio::test(start_paused = true)]
    async fn a_compromised_host_is_reported_with_its_evidence_and_the_task_decides() {
        let f = FakeFleet::new(|_, _| {
            answer(
                &IocScanAnswer {
                    findings: vec![IocFinding {
                        cve: "other".into(),
                        kind: "web_shell".into(),
                        evidence: vec![Evidence {
                            path: Some("C:\\inetpub\\wwwroot\\aspnet_client\\x.aspx".into()),
                            sha256: Some("ab".repeat(32)),
                            excerpt: None,
                        }],
                    }],
                    log_age_days: [("HttpProxy\\Owa".to_string(), 30)].into_iter().collect(),
                    compromised: true,
                },
                0,
            )
        });
        let link = FakeLink::new(&f);
        let dir = tempfile::tempdir().unwrap();
        let playbook_dir = tempfile::tempdir().unwrap();
        let evidence = dir.path().join("evidence");
        let o = with_check_ctx(&link, json!({}), async |ctx| {
            let ctx = CheckCtx {
                host: ctx.host,
                run_as: ctx.run_as,
                probe: ctx.probe,
                vars: ctx.vars,
                timeout: ctx.timeout,
                cancel: ctx.cancel.clone(),
                output: ctx.output.clone(),
                base_dir: playbook_dir.path().to_path_buf(),
            };
            ExchangeIocScan
                .check(&json!({"evidence_dir": evidence}), &ctx)
                .await
                .unwrap()
        })
        .await;
        assert!(!o.status.failed() && !o.status.changed(), "{o:?}");
        assert_eq!(o.data["compromised"], true);
        assert!(
            o.msg
                .unwrap()
                .starts_with("COMPROMISED: other web_shell (1)")
        );
        let written = std::fs::read_to_string(evidence.join("ex01-ioc.json")).unwrap();
        assert!(written.contains("\"sha256\""));
        assert_eq!(
            std::fs::read_dir(playbook_dir.path()).unwrap().count(),
            0,
            "nothing beside the playbook"
        );
    }
}
