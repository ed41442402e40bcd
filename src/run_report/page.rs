//! One run report as a self-contained HTML page: inline CSS and inline SVG charts, no scripts,
//! no external assets, a print stylesheet. Every number a chart shows is also in a table with
//! headers (numbers right-aligned), and states are words, so the page reads without colour.
//! Times are shown in each host's maintenance-window time zone when it names one, else UTC.

use std::fmt::Write as _;

use super::charts::{self, ChartError};
use super::view::{self, HostView, Posture, PostureState, RunView};
use crate::plan::render::escape_html as esc;

const STYLE: &str = "<style>
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#111;max-width:70rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #999}
h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}
th,td{border:1px solid #bbb;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#eee}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.meta td:first-child{font-weight:bold}code{font-size:.85em;word-break:break-all}
.chart{margin:.5rem 0}.chart svg{max-width:100%;height:auto}
.none{color:#444;font-style:italic}td.cves{font-size:.8em;min-width:8.5rem}.cve{white-space:nowrap}
td:first-child{white-space:nowrap}table.hosts{font-size:.78rem}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,.chart{break-inside:avoid}}
</style>
";

/// Which page: the whole run, or one tenant's.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Whole,
    Tenant(&'a str),
}

/// Render `view` (already narrowed to the tenant for a tenant page) as a page.
pub fn render(view: &RunView, scope: Scope<'_>) -> Result<String, ChartError> {
    let r = &view.run;
    let title = match scope {
        Scope::Whole => format!("Run report: {}", r.playbook),
        Scope::Tenant(t) => format!("Run report for {t}: {}", r.playbook),
    };
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>{}</title>", esc(&title));
    out.push_str(STYLE);
    out.push_str("</head>\n<body>\n");
    let _ = writeln!(out, "<h1>{}</h1>", esc(&title));
    meta(&mut out, view, scope);
    if !view.steps_known {
        out.push_str(
            "<p class=\"none\">This run was recorded by an older salve, which did not journal \
             the module behind each step: posture, changes and evidence cannot be read from it. \
             Steps and failures are shown as recorded.</p>\n",
        );
    }
    posture_section(&mut out, view)?;
    hosts_section(&mut out, view, scope);
    changes_section(&mut out, view);
    dag_section(&mut out, view)?;
    failures_section(&mut out, view);
    left_out_section(&mut out, view);
    evidence_section(&mut out, view);
    duration_section(&mut out, view)?;
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

/// The run's facts. On a tenant's page the outcome is the tenant's own (its hosts' ends), never
/// the run's exit code, which other tenants' hosts decide.
fn meta(out: &mut String, view: &RunView, scope: Scope<'_>) {
    let r = &view.run;
    let zone = view.common_time_zone();
    out.push_str("<table class=\"meta\">\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    };
    row("run", r.id.clone());
    row("started", local(&r.started_at, zone));
    row(
        "finished",
        r.finished_at
            .as_deref()
            .map_or("not finished".to_string(), |t| local(t, zone)),
    );
    let mut ends: Vec<(&str, usize)> = Vec::new();
    for h in &view.hosts {
        match ends.iter_mut().find(|(e, _)| *e == h.ended) {
            Some((_, n)) => *n += 1,
            None => ends.push((&h.ended, 1)),
        }
    }
    ends.sort();
    let ends: Vec<String> = ends.iter().map(|(e, n)| format!("{n} {e}")).collect();
    let mut outcome = format!("{} hosts: {}", view.hosts.len(), ends.join(", "));
    if let Scope::Whole = scope {
        let status = match r.status.as_str() {
            "running" => "unfinished",
            s => s,
        };
        let code = r.exit_code.map_or("-".to_string(), |c| c.to_string());
        let _ = write!(outcome, "; run {status}, exit code {code}");
    }
    if r.check_mode {
        outcome.push_str(" (check mode: nothing changed)");
    }
    row("outcome", outcome);
    row(
        "catalogue",
        if view.catalogue_versions.is_empty() {
            "no assessment was read".to_string()
        } else {
            view.catalogue_versions.join(", ")
        },
    );
    out.push_str("</table>\n");
}

/// `ts` (RFC 3339) in `zone` (IANA; UTC when none or unknown), to the second.
fn local(ts: &str, zone: Option<&str>) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return ts.to_string();
    };
    let tz = zone
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let zoned = t.to_zoned_datetime(tz);
    let name = zone.unwrap_or("UTC");
    format!("{} {name}", zoned.strftime("%Y-%m-%d %H:%M:%S"))
}

fn posture_section(out: &mut String, view: &RunView) -> Result<(), ChartError> {
    out.push_str("<h2>Posture before and after</h2>\n");
    let _ = writeln!(
        out,
        "<div class=\"chart\" role=\"img\" aria-label=\"hosts by state before and after the run\">{}</div>",
        charts::posture(view)?
    );
    out.push_str("<table>\n<thead><tr><th>tenant</th><th>when</th>");
    for s in PostureState::ALL {
        let _ = write!(out, "<th class=\"num\">{}</th>", s.label());
    }
    out.push_str("<th class=\"num\">hosts</th></tr></thead>\n<tbody>\n");
    let mut groups: Vec<Option<String>> = view.tenants().into_iter().map(Some).collect();
    if view.hosts.iter().any(|h| h.tenant.is_none()) {
        groups.push(None);
    }
    for g in groups {
        let hosts: Vec<&HostView> = view.hosts.iter().filter(|h| h.tenant == g).collect();
        for (when, state) in [
            (
                "before",
                HostView::state_before as fn(&HostView) -> PostureState,
            ),
            ("after", HostView::state_after),
        ] {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{when}</td>",
                esc(g.as_deref().unwrap_or("(no tenant)"))
            );
            for s in PostureState::ALL {
                let n = hosts.iter().filter(|h| state(h) == s).count();
                let _ = write!(out, "<td class=\"num\">{n}</td>");
            }
            let _ = writeln!(out, "<td class=\"num\">{}</td></tr>", hosts.len());
        }
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

fn build_cell(p: Option<&Posture>) -> String {
    p.map_or("-".to_string(), |p| format!("{} ({})", p.build, p.line))
}

/// One row per host; a tenant's page leaves out the tenant column (it is the page's).
fn hosts_section(out: &mut String, view: &RunView, scope: Scope<'_>) {
    let whole = matches!(scope, Scope::Whole);
    out.push_str("<h2>Hosts</h2>\n<table class=\"hosts\">\n<thead><tr><th>host</th>");
    if whole {
        out.push_str("<th>tenant</th>");
    }
    out.push_str(
        "<th>DAG</th>\
         <th>before</th><th>after</th><th>supported</th>\
         <th class=\"num\">open CVEs</th>\
         <th>still open</th><th>mitigated</th><th>compromise indicators</th>\
         <th>state</th><th>ended</th></tr></thead>\n<tbody>\n",
    );
    for h in &view.hosts {
        let last = h.after.as_ref().or(h.before.as_ref());
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let supported = last.and_then(|p| p.supported).map_or("-", yes_no);
        let count =
            |p: Option<&Posture>| p.map_or("-".to_string(), |p| p.open_cves.len().to_string());
        let still = last.map_or("-".to_string(), |p| {
            if p.open_cves.is_empty() {
                "none".to_string()
            } else {
                let cves: Vec<String> = p
                    .open_cves
                    .iter()
                    .map(|c| format!("<span class=\"cve\">{}</span>", esc(c)))
                    .collect();
                cves.join(" ")
            }
        });
        let ioc = match h.scanned {
            None => "not scanned".to_string(),
            Some(false) => "none found".to_string(),
            Some(true) => match h.evidence.len() {
                1 => "FOUND (1 piece of evidence)".to_string(),
                n => format!("FOUND ({n} pieces of evidence)"),
            },
        };
        let _ = write!(out, "<tr><td>{}</td>", esc(&h.name));
        if whole {
            let _ = write!(out, "<td>{}</td>", esc(h.tenant.as_deref().unwrap_or("-")));
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td><td>{supported}</td>\
             <td class=\"num\">{} → {}</td><td class=\"cves\">{still}</td>\
             <td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            esc(h.dag.as_deref().unwrap_or("-")),
            esc(&build_cell(h.before.as_ref())),
            esc(&build_cell(h.after.as_ref())),
            count(h.before.as_ref()),
            count(h.after.as_ref()),
            last.map_or("-", |p| yes_no(p.mitigated)),
            esc(&ioc),
            h.state_before().label(),
            h.state_after().label(),
            esc(&h.ended),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn changes_section(out: &mut String, view: &RunView) {
    out.push_str("<h2>What changed</h2>\n");
    let changed: Vec<&HostView> = view
        .hosts
        .iter()
        .filter(|h| !h.changes.is_empty())
        .collect();
    if changed.is_empty() {
        out.push_str("<p class=\"none\">Nothing was changed.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th>host</th><th>when</th><th>task</th><th>what</th></tr></thead>\n<tbody>\n");
    for h in changed {
        for c in &h.changes {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&h.name),
                esc(&c
                    .at
                    .as_deref()
                    .map_or("-".to_string(), |t| local(t, h.time_zone.as_deref()))),
                esc(&c.task),
                esc(&c.what)
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn dag_section(out: &mut String, view: &RunView) -> Result<(), ChartError> {
    let dags = view.dags();
    if dags.is_empty() {
        return Ok(());
    }
    out.push_str("<h2>DAG maintenance, member by member</h2>\n");
    for (dag, members) in dags {
        let _ = writeln!(
            out,
            "<div class=\"chart\" role=\"img\" aria-label=\"maintenance timeline of DAG {}\">{}</div>",
            esc(dag),
            charts::dag_timeline(dag, &members)?
        );
        let most = view::most_at_once(&members);
        let _ = writeln!(
            out,
            "<p>DAG {}: at most {most} member{} in maintenance at a time.</p>",
            esc(dag),
            if most == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "<table>\n<caption>DAG {}: maintenance spans</caption>\n<thead><tr><th>member</th>\
             <th class=\"num\">entered (min)</th><th class=\"num\">left (min)</th>\
             <th class=\"num\">minutes</th></tr></thead>\n<tbody>",
            esc(dag)
        );
        for h in &members {
            if h.maintenance.is_empty() {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td colspan=\"3\">not in maintenance</td></tr>",
                    esc(&h.name)
                );
            }
            for s in &h.maintenance {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2}</td>\
                     <td class=\"num\">{:.2}</td></tr>",
                    esc(&h.name),
                    s.from / 60.0,
                    s.to / 60.0,
                    (s.to - s.from) / 60.0
                );
            }
        }
        out.push_str("</tbody>\n</table>\n");
    }
    Ok(())
}

fn failures_section(out: &mut String, view: &RunView) {
    out.push_str("<h2>Failures</h2>\n");
    let failed: Vec<&HostView> = view
        .hosts
        .iter()
        .filter(|h| !h.failures.is_empty())
        .collect();
    if failed.is_empty() {
        out.push_str("<p class=\"none\">No step failed.</p>\n");
        return;
    }
    out.push_str("<table>\n<thead><tr><th>host</th><th>task</th><th>how</th><th>reason</th><th>fix</th></tr></thead>\n<tbody>\n");
    for h in failed {
        for f in &h.failures {
            let mut reason = esc(&f.reason);
            for line in &f.log {
                let _ = write!(reason, "<br><code>{}</code>", esc(line));
            }
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{reason}</td><td>{}</td></tr>",
                esc(&h.name),
                esc(&f.task),
                esc(&f.status),
                esc(&f.fix)
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn left_out_section(out: &mut String, view: &RunView) {
    let left: Vec<&HostView> = view
        .hosts
        .iter()
        .filter(|h| h.left_out.is_some() || h.ended == "not run")
        .collect();
    if left.is_empty() {
        return;
    }
    out.push_str("<h2>Hosts left out</h2>\n<table>\n<thead><tr><th>host</th><th>why</th></tr></thead>\n<tbody>\n");
    for h in left {
        let why = h
            .left_out
            .clone()
            .unwrap_or_else(|| "no step of the run reached it".to_string());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&h.name),
            esc(&why)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The file an IOC scan's result is written to in the report directory.
pub fn evidence_file(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("evidence/{safe}-ioc.json")
}

fn evidence_section(out: &mut String, view: &RunView) {
    let scanned: Vec<&HostView> = view.hosts.iter().filter(|h| h.scanned.is_some()).collect();
    if scanned.is_empty() {
        return;
    }
    out.push_str("<h2>IOC scan evidence</h2>\n");
    let found: Vec<&HostView> = scanned
        .iter()
        .copied()
        .filter(|h| h.scanned == Some(true))
        .collect();
    let _ = writeln!(
        out,
        "<p>{} host(s) scanned, {} with signs of exploitation. Each scan's full result is in \
         <code>evidence/&lt;host&gt;-ioc.json</code> beside this page.</p>",
        scanned.len(),
        found.len()
    );
    if found.is_empty() {
        return;
    }
    out.push_str("<table>\n<thead><tr><th>host</th><th>CVE</th><th>kind</th><th>path</th><th>SHA-256</th></tr></thead>\n<tbody>\n");
    for h in found {
        for e in &h.evidence {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(&evidence_file(&h.name)),
                esc(&h.name),
                esc(&e.cve),
                esc(&e.kind),
                esc(&e.path),
                esc(e.sha256.as_deref().unwrap_or("-"))
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
}

fn duration_section(out: &mut String, view: &RunView) -> Result<(), ChartError> {
    let worked: Vec<HostView> = view
        .hosts
        .iter()
        .filter(|h| h.duration_ms > 0 || h.estimate_s > 0)
        .cloned()
        .collect();
    if worked.is_empty() {
        return Ok(());
    }
    out.push_str("<h2>Time per host against the plan</h2>\n");
    let _ = writeln!(
        out,
        "<div class=\"chart\" role=\"img\" aria-label=\"time per host against the plan's booking\">{}</div>",
        charts::durations(&worked)?
    );
    out.push_str(
        "<table>\n<thead><tr><th>host</th><th class=\"num\">took (s)</th>\
         <th class=\"num\">booked (s)</th><th class=\"num\">in maintenance (s)</th>\
         <th class=\"num\">restarts</th></tr></thead>\n<tbody>\n",
    );
    for h in &worked {
        // A fold from +0.0: an empty f64 sum is -0.0, printed "-0.0".
        let maintenance = h
            .maintenance
            .iter()
            .fold(0.0, |all, s| all + (s.to - s.from));
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{maintenance:.1}</td><td class=\"num\">{}</td></tr>",
            esc(&h.name),
            h.duration_ms as f64 / 1000.0,
            h.estimate_s,
            h.restarts
        );
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page with each chart's SVG replaced by its caption (the charts have tests of their
    /// own, through Chromium).
    fn without_svg(page: &str) -> String {
        let mut out = String::new();
        let mut rest = page;
        while let Some(start) = rest.find("<svg") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find("</svg>")
                .map_or(rest.len(), |e| start + e + 6);
            out.push_str("<svg …/>");
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn the_whole_run_page() {
        let (detail, context) = view::tests::sample();
        let page = render(&view::build(&detail, &context), Scope::Whole).unwrap();
        insta::assert_snapshot!(without_svg(&page));
    }

    #[test]
    fn times_are_shown_in_the_window_zone() {
        assert_eq!(
            local("2026-07-01T04:00:00Z", Some("Europe/Brussels")),
            "2026-07-01 06:00:00 Europe/Brussels"
        );
        assert_eq!(
            local("2026-12-07T04:00:00Z", None),
            "2026-12-07 04:00:00 UTC"
        );
    }

    #[test]
    fn a_tenant_page_names_no_other_tenant_and_not_the_run_exit_code() {
        let (detail, context) = view::tests::sample();
        let whole = view::build(&detail, &context);
        let page = render(&whole.for_tenant("b"), Scope::Tenant("b")).unwrap();
        assert!(page.contains("b-ex01"));
        assert!(!page.contains("a-ex0"), "no host of tenant a");
        assert!(
            !page.contains("exit code"),
            "the run's exit code is decided by other tenants"
        );
        assert!(page.contains("1 hosts: 1 drifted"));
        let page = render(&whole, Scope::Whole).unwrap();
        assert!(
            page.contains("3 hosts: 1 drifted, 1 failed, 1 unreachable; run failed, exit code 2")
        );
        assert!(!page.contains("<script"), "nothing to run");
        for asset in ["src=", "<link", "url(", "href=\"http"] {
            assert!(!page.contains(asset), "no external asset ({asset})");
        }
    }
}
