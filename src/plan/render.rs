//! Human renderings of a plan: Markdown and a self-contained HTML page (inline CSS, no script),
//! for the whole plan or one tenant, readable by a change board that does not run salve.
//!
//! Both come from one document outline (`Block`s built by `outline`), so the two formats
//! always say the same thing: a header with the sources and the digest, a summary table, each
//! host's facts, window, risks and steps with reasons, the hosts left out, and the approvals.
//! A tenant's view lists only that tenant's hosts; its digest is still the whole plan's, since
//! approvals cover the whole plan.

use std::fmt::Write as _;

use super::{HostPlan, Plan, Totals};

/// Which part of a plan to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Whole,
    /// One tenant's hosts; `""` selects hosts without a tenant.
    Tenant(&'a str),
}

/// The plan as Markdown.
pub fn markdown(plan: &Plan, scope: Scope<'_>) -> String {
    let mut out = String::new();
    for block in outline(plan, scope) {
        block.markdown(&mut out);
    }
    out
}

/// The plan as one HTML page.
pub fn html(plan: &Plan, scope: Scope<'_>) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape_html(&title(plan, scope)));
    out.push_str(STYLE);
    out.push_str("</head>\n<body>\n");
    for block in outline(plan, scope) {
        block.html(&mut out);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The tenants that have hosts in the plan (planned or left out), sorted; `""` stands for hosts
/// without a tenant.
pub fn tenants(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .hosts
        .iter()
        .map(|h| h.tenant.clone().unwrap_or_default())
        .chain(
            plan.left_out
                .iter()
                .map(|h| h.tenant.clone().unwrap_or_default()),
        )
        .collect();
    out.sort();
    out.dedup();
    out
}

const STYLE: &str = "<style>
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:70rem;\
padding:0 1rem;color:#1b1f24;line-height:1.4}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}h3{margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-family:ui-monospace,Consolas,monospace;font-size:.9em;\
background:#f6f8fa;padding:0 .2em;word-break:break-all}
strong{color:#9a3412}p.note{color:#57606a}
@media print{body{margin:0;max-width:none}}
</style>
";

/// A piece of inline text.
enum Inline {
    Text(String),
    Code(String),
    /// Something a reviewer must not miss (reboots, non-idempotent steps, risks).
    Strong(String),
}

type Cell = Vec<Inline>;

/// A block of the document outline.
enum Block {
    Heading(u8, String),
    Para(Vec<Inline>),
    Note(String),
    List(Vec<Cell>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Cell>>,
    },
}

fn text(s: impl Into<String>) -> Cell {
    vec![Inline::Text(s.into())]
}

fn code(s: impl Into<String>) -> Cell {
    vec![Inline::Code(s.into())]
}

fn title(plan: &Plan, scope: Scope<'_>) -> String {
    match scope {
        Scope::Whole => format!("Change plan: {}", plan.playbook.path),
        Scope::Tenant(t) => format!("Change plan: {} (tenant {})", plan.playbook.path, shown(t)),
    }
}

fn shown(tenant: &str) -> &str {
    if tenant.is_empty() { "none" } else { tenant }
}

/// Seconds as `1h 05m`, `45m` or `30s`.
pub fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m"),
        _ => format!("{h}h {m:02}m"),
    }
}

fn yes_no(flag: bool) -> Cell {
    if flag {
        vec![Inline::Strong("yes".into())]
    } else {
        text("no")
    }
}

/// Everything a rendering says, in order.
fn outline(plan: &Plan, scope: Scope<'_>) -> Vec<Block> {
    let in_scope = |tenant: &Option<String>| match scope {
        Scope::Whole => true,
        Scope::Tenant(t) => tenant.as_deref().unwrap_or_default() == t,
    };
    let hosts: Vec<&HostPlan> = plan.hosts.iter().filter(|h| in_scope(&h.tenant)).collect();
    let left_out: Vec<_> = plan
        .left_out
        .iter()
        .filter(|h| in_scope(&h.tenant))
        .collect();
    let totals = Totals::of(&hosts, left_out.len());
    let digest = plan.digest();
    let mut out = vec![Block::Heading(1, title(plan, scope))];
    if let Scope::Tenant(_) = scope {
        out.push(Block::Note(
            "This view shows one tenant's hosts. Approvals and the digest cover the whole plan."
                .into(),
        ));
    }
    let selection = &plan.selection;
    let mut picked = vec![Inline::Text("limit ".into())];
    picked.push(Inline::Code(
        selection.limit.clone().unwrap_or("none".into()),
    ));
    picked.push(Inline::Text(", tenant ".into()));
    picked.push(Inline::Code(
        selection.tenant.clone().unwrap_or("any".into()),
    ));
    if selection.all_tenants {
        picked.push(Inline::Text(", all tenants allowed".into()));
    }
    let mut created = text(format!(
        "{} by salve {}",
        plan.created_at, plan.salve_version
    ));
    created.push(Inline::Text(format!(" (plan format {})", plan.format)));
    if !plan.catalogue_version.is_empty() {
        created.push(Inline::Text(format!(
            ", build catalogue {}",
            plan.catalogue_version
        )));
    }
    out.push(Block::Table {
        head: vec!["", ""],
        rows: vec![
            vec![text("Created"), created],
            vec![
                text("Playbook"),
                vec![
                    Inline::Code(plan.playbook.path.clone()),
                    Inline::Text(" sha256 ".into()),
                    Inline::Code(plan.playbook.sha256.clone()),
                ],
            ],
            vec![text("Inventory"), {
                let mut cell: Cell = Vec::new();
                for source in &plan.inventory.sources {
                    cell.push(Inline::Code(source.clone()));
                    cell.push(Inline::Text(" ".into()));
                }
                cell.push(Inline::Text("sha256 ".into()));
                cell.push(Inline::Code(plan.inventory.sha256.clone()));
                cell
            }],
            vec![text("Selection"), picked],
            vec![text("Plan digest (SHA-256)"), code(digest.clone())],
        ],
    });

    out.push(Block::Heading(2, "Summary".into()));
    out.push(Block::Para(vec![Inline::Text(format!(
        "{} host(s), {} with steps; {} step(s), {} expected reboot(s), about {} of work in \
         total; {} host(s) left out.",
        totals.hosts,
        totals.hosts_with_steps,
        totals.steps,
        totals.reboots,
        duration(totals.estimated_seconds),
        totals.left_out
    ))]));
    out.push(Block::Table {
        head: vec![
            "Host",
            "Tenant",
            "Steps",
            "Reboots",
            "Estimated",
            "Risks",
            "Window",
        ],
        rows: hosts
            .iter()
            .map(|h| {
                vec![
                    code(h.name.clone()),
                    text(h.tenant.clone().unwrap_or_default()),
                    text(h.steps.len().to_string()),
                    if h.reboots() > 0 {
                        vec![Inline::Strong(h.reboots().to_string())]
                    } else {
                        text("0")
                    },
                    text(duration(h.estimated_seconds())),
                    text(h.risks.len().to_string()),
                    text(h.window.join("; ")),
                ]
            })
            .collect(),
    });

    out.push(Block::Heading(2, "Hosts".into()));
    for host in &hosts {
        host_blocks(host, &mut out);
    }

    out.push(Block::Heading(2, "Hosts left out".into()));
    if left_out.is_empty() {
        out.push(Block::Para(text("None.")));
    } else {
        out.push(Block::Table {
            head: vec!["Host", "Tenant", "Reason"],
            rows: left_out
                .iter()
                .map(|h| {
                    vec![
                        code(h.name.clone()),
                        text(h.tenant.clone().unwrap_or_default()),
                        text(h.reason.clone()),
                    ]
                })
                .collect(),
        });
    }

    out.push(Block::Heading(2, "Approvals".into()));
    if plan.approvals.is_empty() {
        out.push(Block::Para(text("None yet.")));
    } else {
        out.push(Block::Table {
            head: vec!["Name", "Key", "Signed at", "For this plan"],
            rows: plan
                .approvals
                .iter()
                .map(|a| {
                    vec![
                        text(a.name.clone()),
                        code(
                            super::sign::fingerprint_of(&a.public_key)
                                .unwrap_or_else(|| "invalid key".into()),
                        ),
                        text(a.signed_at.to_string()),
                        if a.plan_digest == digest {
                            text("yes")
                        } else {
                            vec![Inline::Strong("no: signed another version".into())]
                        },
                    ]
                })
                .collect(),
        });
        out.push(Block::Note(
            "Signatures are checked against the trusted keys when the plan is applied.".into(),
        ));
    }
    out
}

fn host_blocks(host: &HostPlan, out: &mut Vec<Block>) {
    let heading = match &host.tenant {
        Some(t) => format!("{} ({t})", host.name),
        None => host.name.clone(),
    };
    out.push(Block::Heading(3, heading));
    if let Some(facts) = host.facts.as_object().filter(|f| !f.is_empty()) {
        let mut line = vec![Inline::Text("Facts seen: ".into())];
        for (i, (key, value)) in facts.iter().enumerate() {
            if i > 0 {
                line.push(Inline::Text(", ".into()));
            }
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            line.push(Inline::Text(format!("{key} ")));
            line.push(Inline::Code(value));
        }
        out.push(Block::Para(line));
    }
    if !host.window.is_empty() {
        out.push(Block::Para(text(format!(
            "Maintenance window: {}",
            host.window.join("; ")
        ))));
    }
    if !host.risks.is_empty() {
        out.push(Block::Para(text("Risks:")));
        out.push(Block::List(
            host.risks
                .iter()
                .map(|r| vec![Inline::Strong(r.to_string())])
                .collect(),
        ));
    }
    if host.steps.is_empty() {
        out.push(Block::Para(text("No steps: nothing to change.")));
        return;
    }
    out.push(Block::Table {
        head: vec![
            "#",
            "Task",
            "Action",
            "Why",
            "Reboot",
            "Estimated",
            "Idempotent",
        ],
        rows: host
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                vec![
                    text((i + 1).to_string()),
                    vec![
                        Inline::Text(format!("{} ", s.task)),
                        Inline::Code(s.module.clone()),
                    ],
                    text(s.action.clone()),
                    text(s.reason.clone()),
                    yes_no(s.reboot),
                    text(duration(s.estimated_seconds)),
                    if s.non_idempotent {
                        vec![Inline::Strong("no: do not repeat blindly".into())]
                    } else {
                        text("yes")
                    },
                ]
            })
            .collect(),
    });
}

impl Block {
    fn markdown(&self, out: &mut String) {
        match self {
            Block::Heading(level, t) => {
                let _ = writeln!(
                    out,
                    "{} {}\n",
                    "#".repeat(usize::from(*level)),
                    escape_md(t)
                );
            }
            Block::Para(inlines) => {
                let _ = writeln!(out, "{}\n", md_inlines(inlines));
            }
            Block::Note(t) => {
                let _ = writeln!(out, "> {}\n", escape_md(t));
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md_inlines(item));
                }
                out.push('\n');
            }
            Block::Table { head, rows } => {
                let _ = writeln!(out, "| {} |", head.join(" | "));
                let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
                for row in rows {
                    let cells: Vec<String> = row.iter().map(|c| md_inlines(c)).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
        }
    }

    fn html(&self, out: &mut String) {
        match self {
            Block::Heading(level, t) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", escape_html(t));
            }
            Block::Para(inlines) => {
                let _ = writeln!(out, "<p>{}</p>", html_inlines(inlines));
            }
            Block::Note(t) => {
                let _ = writeln!(out, "<p class=\"note\">{}</p>", escape_html(t));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_inlines(item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                out.push_str("<table>\n");
                if head.iter().any(|h| !h.is_empty()) {
                    out.push_str("<tr>");
                    for h in head {
                        let _ = write!(out, "<th>{}</th>", escape_html(h));
                    }
                    out.push_str("</tr>\n");
                }
                for row in rows {
                    out.push_str("<tr>");
                    for cell in row {
                        let _ = write!(out, "<td>{}</td>", html_inlines(cell));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
        }
    }
}

fn md_inlines(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|i| match i {
            Inline::Text(t) => escape_md(t),
            Inline::Code(t) => md_code(t),
            Inline::Strong(t) => format!("**{}**", escape_md(t)),
        })
        .collect()
}

fn html_inlines(inlines: &[Inline]) -> String {
    inlines
        .iter()
        .map(|i| match i {
            Inline::Text(t) => escape_html(t),
            Inline::Code(t) => format!("<code>{}</code>", escape_html(t)),
            Inline::Strong(t) => format!("<strong>{}</strong>", escape_html(t)),
        })
        .collect()
}

/// Markdown text: punctuation that would start markup is backslash-escaped, `<` becomes an
/// entity (no raw HTML gets through), line breaks become spaces (tables are one line a row).
fn escape_md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// A code span that holds any text: fenced with more backticks than the text's longest run.
/// Pipes are escaped so a span never splits a table cell.
fn md_code(text: &str) -> String {
    let text = text.replace(['\n', '\r'], " ").replace('|', "\\|");
    let longest = text
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or_default();
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Text made safe for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample;
    use crate::plan::{KeyPair, approve};

    fn approved() -> Plan {
        let mut plan = sample();
        // A fixed seed keeps the public key, and so the snapshot, stable.
        let key = KeyPair::from_seed([7; 32]);
        approve(
            &mut plan,
            &key,
            "Jane Doe",
            "2024-03-02T11:00:00Z".parse().unwrap(),
        )
        .unwrap();
        plan
    }

    #[test]
    fn markdown_of_the_whole_plan() {
        insta::assert_snapshot!(markdown(&approved(), Scope::Whole));
    }

    #[test]
    fn markdown_of_one_tenant_lists_only_its_hosts() {
        let md = markdown(&approved(), Scope::Tenant("globex"));
        assert!(md.contains("mail.globex.test"));
        assert!(!md.contains("ex01.acme.local"), "{md}");
        assert!(!md.contains("ex09.acme.local"), "{md}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn html_page_is_self_contained_and_escaped() {
        let page = html(&approved(), Scope::Whole);
        assert!(!page.contains("<script"), "no script needed");
        assert!(!page.contains("<link"), "no external style sheet");
        assert!(
            page.contains("&lt;X-AnonResource&gt;"),
            "step text is escaped"
        );
        assert!(!page.contains("<X-AnonResource>"));
        insta::assert_snapshot!(page);
    }

    #[test]
    fn markdown_never_lets_markup_through() {
        assert_eq!(escape_md("a|b <i>*x*</i>"), "a\\|b &lt;i>\\*x\\*&lt;/i>");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(duration(5460), "1h 31m");
        assert_eq!(duration(60), "1m");
        assert_eq!(duration(59), "59s");
    }

    #[test]
    fn tenants_include_left_out_hosts() {
        assert_eq!(tenants(&sample()), ["acme", "globex"]);
    }
}
