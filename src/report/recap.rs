//! The end-of-run recap: one row per host with its counts (like Ansible's PLAY RECAP), then a
//! line per tenant and a closing line. Both human modes print it; `render_recap` is the
//! colourless form (for logs, mails and tests).

use std::collections::BTreeMap;

use crate::events::{HostCounts, HostOutcome, HostSummary, RunSummary};

use super::style::Palette;
use super::words::{duration, plural};

/// The recap without colour.
pub fn render_recap(summary: &RunSummary) -> String {
    render(summary, &Palette::plain())
}

/// The recap, styled with `palette`.
pub fn render(summary: &RunSummary, palette: &Palette) -> String {
    let mut out = palette.bold("PLAY RECAP");
    out.push('\n');
    if summary.hosts.is_empty() {
        out.push_str("no hosts ran\n");
    }
    let any_tenant = summary.hosts.iter().any(|h| h.tenant.is_some());
    let host_w = width(summary.hosts.iter().map(|h| h.host.as_str()));
    let tenant_w = width(
        summary
            .hosts
            .iter()
            .map(|h| h.tenant.as_deref().unwrap_or("")),
    );
    let columns: Vec<Vec<String>> = summary
        .hosts
        .iter()
        .map(|h| count_cells(&h.counts))
        .collect();
    let cell_w: Vec<usize> = (0..COUNT_KEYS.len())
        .map(|i| columns.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    for (host, cells) in summary.hosts.iter().zip(&columns) {
        let mut row = format!("{:<host_w$}", host.host);
        if any_tenant {
            row.push_str(&format!(
                "  {:<tenant_w$}",
                host.tenant.as_deref().unwrap_or("")
            ));
        }
        row.push_str(" :");
        for (cell, w) in cells.iter().zip(&cell_w) {
            row.push_str(&format!("  {cell:<w$}"));
        }
        row.push_str("  ");
        row.push_str(&outcome_text(host, palette));
        out.push_str(row.trim_end());
        out.push('\n');
    }
    if !summary.tenants.is_empty() && any_tenant {
        out.push('\n');
        out.push_str(&palette.bold("TENANTS"));
        out.push('\n');
        out.push_str(&tenant_lines(&summary.tenants, palette));
    }
    out.push('\n');
    out.push_str(&closing_line(summary, palette));
    out.push('\n');
    out
}

const COUNT_KEYS: [&str; 7] = [
    "ok",
    "changed",
    "unreachable",
    "failed",
    "skipped",
    "ignored",
    "interrupted",
];

fn count_cells(c: &HostCounts) -> Vec<String> {
    let values = [
        c.ok,
        c.changed,
        c.unreachable,
        c.failed,
        c.skipped,
        c.ignored,
        c.interrupted,
    ];
    COUNT_KEYS
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(console::measure_text_width).max().unwrap_or(0)
}

pub(super) fn outcome_word(outcome: HostOutcome) -> &'static str {
    match outcome {
        HostOutcome::Ok => "ok",
        HostOutcome::Failed => "failed",
        HostOutcome::Unreachable => "unreachable",
        HostOutcome::Interrupted => "interrupted",
        HostOutcome::NotRun => "not run",
        HostOutcome::Drifted => "drifted",
    }
}

fn outcome_text(host: &HostSummary, palette: &Palette) -> String {
    let word = palette.outcome(host.outcome, outcome_word(host.outcome));
    match &host.left_in {
        Some(task) => format!("{word} (left in \"{task}\")"),
        None => word,
    }
}

/// `acme     2 hosts: 1 ok, 1 failed`
fn tenant_lines(tenants: &BTreeMap<String, BTreeMap<HostOutcome, usize>>, p: &Palette) -> String {
    let names: Vec<&str> = tenants
        .keys()
        .map(|t| if t.is_empty() { "(none)" } else { t.as_str() })
        .collect();
    let w = width(names.iter().copied());
    let mut out = String::new();
    for (name, outcomes) in names.iter().zip(tenants.values()) {
        let total: usize = outcomes.values().sum();
        out.push_str(&format!(
            "{name:<w$}  {}: {}\n",
            plural(total, "host"),
            outcome_list(outcomes, p)
        ));
    }
    out
}

fn outcome_list(outcomes: &BTreeMap<HostOutcome, usize>, p: &Palette) -> String {
    let parts: Vec<String> = outcomes
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(o, n)| format!("{n} {}", p.outcome(*o, outcome_word(*o))))
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn closing_line(summary: &RunSummary, p: &Palette) -> String {
    let mut outcomes = BTreeMap::new();
    for host in &summary.hosts {
        *outcomes.entry(host.outcome).or_insert(0) += 1;
    }
    let took = duration(summary.duration_ms);
    let head = if summary.interrupted {
        p.error(&format!("Run interrupted after {took}"))
    } else {
        p.bold(&format!("Run finished in {took}"))
    };
    format!(
        "{head}: {} ({}), exit code {}",
        plural(summary.hosts.len(), "host"),
        outcome_list(&outcomes, p),
        summary.exit_code
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, tenant: Option<&str>, outcome: HostOutcome) -> HostSummary {
        HostSummary {
            host: name.into(),
            tenant: tenant.map(Into::into),
            counts: HostCounts {
                ok: 12,
                changed: 1,
                ..Default::default()
            },
            outcome,
            left_in: None,
        }
    }

    #[test]
    fn columns_line_up_and_tenants_are_listed() {
        let mut tenants = BTreeMap::new();
        tenants.insert("acme".to_string(), BTreeMap::from([(HostOutcome::Ok, 1)]));
        tenants.insert("".to_string(), BTreeMap::from([(HostOutcome::Failed, 1)]));
        let summary = RunSummary {
            hosts: vec![
                host("ex01.acme.local", Some("acme"), HostOutcome::Ok),
                host("ex2", None, HostOutcome::Failed),
            ],
            tenants,
            interrupted: false,
            duration_ms: 61_000,
            exit_code: 2,
        };
        let text = render_recap(&summary);
        let rows: Vec<&str> = text.lines().skip(1).take(2).collect();
        assert_eq!(rows[0].find(':'), rows[1].find(':'), "{text}");
        assert_eq!(rows[0].find("changed="), rows[1].find("changed="), "{text}");
        assert!(text.contains("(none)  1 host: 1 failed"), "{text}");
        assert!(text.contains("Run finished in 1m01s: 2 hosts (1 ok, 1 failed), exit code 2"));
    }
}
