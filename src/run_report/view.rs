//! What a run report shows, read from the journal: per host its posture before and after
//! (from the first and last `exchange_facts` results), what changed and when, failures with
//! their reason and a fix, whether the run left it out, the IOC scan's evidence, and the DAG
//! members' maintenance spans. Built only from journal rows (the steps and [`RunContext`]),
//! whose results are already redacted, so a page can never show more than the
//! journal kept, and a page rendered later says exactly what the first one said.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::exchange::path::Step as PathStep;
#[cfg(test)]
use crate::journal::RunDetail;
use crate::journal::{RunContext, RunRecord, StepRecord};
use crate::modules::{Action, ModuleSpec, Provides};

/// A host's exposure, as a chart and a table count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PostureState {
    /// The IOC scan found signs of exploitation (whatever the build).
    Compromised,
    /// Tracked CVEs open, no mitigation.
    Vulnerable,
    /// Tracked CVEs open, EOMT's rewrite rules in place.
    Mitigated,
    /// No tracked CVE open.
    Fixed,
    /// No facts read (unreachable, left out, or a build the catalogue does not know).
    Unknown,
}

impl PostureState {
    pub const ALL: [PostureState; 5] = [
        PostureState::Compromised,
        PostureState::Vulnerable,
        PostureState::Mitigated,
        PostureState::Fixed,
        PostureState::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PostureState::Compromised => "compromised",
            PostureState::Vulnerable => "vulnerable",
            PostureState::Mitigated => "mitigated",
            PostureState::Fixed => "fixed",
            PostureState::Unknown => "unknown",
        }
    }
}

/// What one `exchange_facts` read said.
#[derive(Debug, Clone, PartialEq)]
pub struct Posture {
    pub build: String,
    /// `Exchange 2019 CU10`, or the family alone.
    pub line: String,
    /// Whether the build is one Microsoft still ships security updates for (the catalogue's
    /// March 2021 support flag), if known.
    pub supported: Option<bool>,
    pub open_cves: Vec<String>,
    pub mitigated: bool,
    pub state: PostureState,
}

/// One change made on a host.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// When the step finished (RFC 3339, UTC).
    pub at: Option<String>,
    pub task: String,
    pub what: String,
}

/// A step that failed or a host that could not be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub task: String,
    pub status: String,
    pub reason: String,
    /// Lines of the installer's log, where the step has them.
    pub log: Vec<String>,
    pub fix: String,
}

/// One piece of IOC evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub cve: String,
    pub kind: String,
    pub path: String,
    pub sha256: Option<String>,
}

/// A span of maintenance (entered → left), in seconds since the run started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub from: f64,
    pub to: f64,
}

/// Everything the report says about one host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub name: String,
    pub tenant: Option<String>,
    pub dag: Option<String>,
    pub time_zone: Option<String>,
    /// `ok`, `failed`, `unreachable`, `left out` or `not run`.
    pub ended: String,
    pub before: Option<Posture>,
    pub after: Option<Posture>,
    /// The catalogue version of the last assessment read.
    pub catalogue_version: Option<String>,
    pub changes: Vec<Change>,
    pub failures: Vec<Failure>,
    /// Why the run left the host out.
    pub left_out: Option<String>,
    /// `Some` once the IOC scan ran: whether it found anything, and what.
    pub scanned: Option<bool>,
    pub evidence: Vec<Evidence>,
    /// The IOC scan's full result, as the evidence file holds it.
    pub scan_result: Option<Value>,
    pub maintenance: Vec<Span>,
    /// Restarts the run made.
    pub restarts: usize,
    pub duration_ms: u64,
    /// What a plan books for the changes this host got.
    pub estimate_s: u64,
}

impl HostView {
    /// The state after the run (the last facts, or the first when not re-read); compromise
    /// found by the scan wins.
    pub fn state_after(&self) -> PostureState {
        self.state_of(self.after.as_ref().or(self.before.as_ref()))
    }

    pub fn state_before(&self) -> PostureState {
        self.state_of(self.before.as_ref())
    }

    fn state_of(&self, posture: Option<&Posture>) -> PostureState {
        if self.scanned == Some(true) {
            return PostureState::Compromised;
        }
        posture.map_or(PostureState::Unknown, |p| p.state)
    }
}

/// A run as a report shows it. Hosts are ordered by tenant, then name.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub run: RunRecord,
    pub hosts: Vec<HostView>,
    /// Catalogue versions the assessments came from (normally one).
    pub catalogue_versions: Vec<String>,
    /// Whether the journal knows the module behind each step: a run recorded by an older
    /// salve does not, and its page can show only steps and their messages.
    pub steps_known: bool,
}

impl RunView {
    /// A view of `hosts`, with the catalogue versions their assessments name.
    fn new(run: RunRecord, hosts: Vec<HostView>, steps_known: bool) -> RunView {
        let mut catalogue_versions: Vec<String> = Vec::new();
        for v in hosts.iter().filter_map(|h| h.catalogue_version.as_ref()) {
            if !catalogue_versions.contains(v) {
                catalogue_versions.push(v.clone());
            }
        }
        RunView {
            run,
            hosts,
            catalogue_versions,
            steps_known,
        }
    }

    /// The tenants, in order (hosts without one are not listed here).
    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: Vec<String> = self.hosts.iter().filter_map(|h| h.tenant.clone()).collect();
        tenants.dedup();
        tenants
    }

    /// The same run with only `tenant`'s hosts: nothing of another tenant is left.
    pub fn for_tenant(&self, tenant: &str) -> RunView {
        let hosts: Vec<HostView> = self
            .hosts
            .iter()
            .filter(|h| h.tenant.as_deref() == Some(tenant))
            .cloned()
            .collect();
        let mut run = self.run.clone();
        run.hosts = hosts.len() as u64;
        RunView::new(run, hosts, self.steps_known)
    }

    /// The time zone every host's window names, if they all name the same one.
    pub fn common_time_zone(&self) -> Option<&str> {
        let first = self.hosts.first()?.time_zone.as_deref()?;
        self.hosts
            .iter()
            .all(|h| h.time_zone.as_deref() == Some(first))
            .then_some(first)
    }

    /// DAGs with their members, in name order.
    pub fn dags(&self) -> BTreeMap<&str, Vec<&HostView>> {
        let mut dags: BTreeMap<&str, Vec<&HostView>> = BTreeMap::new();
        for h in &self.hosts {
            if let Some(d) = &h.dag {
                dags.entry(d).or_default().push(h);
            }
        }
        dags
    }
}

/// The most of `members` in maintenance at the same moment (spans that only touch do not
/// overlap: one member leaves as the next enters).
pub fn most_at_once(members: &[&HostView]) -> usize {
    let mut edges: Vec<(f64, i32)> = members
        .iter()
        .flat_map(|h| h.maintenance.iter().flat_map(|s| [(s.from, 1), (s.to, -1)]))
        .collect();
    // Leaving sorts before entering at the same instant.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Builds a [`RunView`] one host at a time from the journal's rows, so a report of a large run
/// holds one host's steps at once, not the whole run's (see [`crate::run_report::load`]).
pub struct ViewBuilder<'a> {
    context: &'a RunContext,
    modules: BTreeMap<(usize, usize), &'a str>,
    start: Option<jiff::Timestamp>,
    hosts: Vec<HostView>,
}

impl<'a> ViewBuilder<'a> {
    pub fn new(run: &RunRecord, context: &'a RunContext) -> Self {
        ViewBuilder {
            context,
            modules: context
                .tasks
                .iter()
                .map(|t| ((t.play, t.task_index), t.module.as_str()))
                .collect(),
            start: parse_ts(&run.started_at),
            hosts: Vec::new(),
        }
    }

    /// Add host `name` from its steps: all of them, once.
    pub fn host(&mut self, name: &str, steps: &[StepRecord]) {
        let ctx = self.context.hosts.iter().find(|h| h.host == name);
        let mut steps: Vec<&StepRecord> = steps.iter().collect();
        // In the order they happened (as instants: RFC 3339 texts with different fractions do
        // not sort as text).
        steps.sort_by_key(|s| s.finished_at.as_deref().and_then(parse_ts));
        let view = host_view(name, ctx, &steps, &self.modules, self.start);
        self.hosts.push(view);
    }

    /// The view of `run`: the hosts added, and each host of the run's context that had no step.
    pub fn finish(mut self, run: RunRecord) -> RunView {
        let added: std::collections::BTreeSet<String> =
            self.hosts.iter().map(|h| h.name.clone()).collect();
        for ctx in &self.context.hosts {
            if !added.contains(&ctx.host) {
                let view = host_view(&ctx.host, Some(ctx), &[], &self.modules, self.start);
                self.hosts.push(view);
            }
        }
        self.hosts
            .sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        RunView::new(run, self.hosts, !self.context.tasks.is_empty())
    }
}

/// Build the view of a run from its journal rows, all held at once.
#[cfg(test)]
pub fn build(detail: &RunDetail, context: &RunContext) -> RunView {
    let mut by_host: BTreeMap<&str, Vec<StepRecord>> = BTreeMap::new();
    for step in &detail.steps {
        by_host.entry(&step.host).or_default().push(step.clone());
    }
    let mut builder = ViewBuilder::new(&detail.run, context);
    for (host, steps) in &by_host {
        builder.host(host, steps);
    }
    builder.finish(detail.run.clone())
}

fn parse_ts(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok()
}

/// Seconds from `start` to `at`.
fn offset(start: Option<jiff::Timestamp>, at: Option<&str>) -> Option<f64> {
    let at = parse_ts(at?)?;
    let span = at.duration_since(start?);
    Some(span.as_secs_f64())
}

/// The spec of the module behind `step`, if the journal says which it was.
fn module(
    step: &StepRecord,
    modules: &BTreeMap<(usize, usize), &str>,
) -> Option<&'static ModuleSpec> {
    modules
        .get(&(step.play, step.task_index))
        .and_then(|name| crate::modules::spec(name))
}

/// Whether `spec`'s results give report readers `what`.
fn provides(spec: Option<&ModuleSpec>, what: Provides) -> bool {
    spec.is_some_and(|s| s.provides == what)
}

fn status(step: &StepRecord) -> &str {
    step.outcome
        .as_ref()
        .and_then(|o| o.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn result(step: &StepRecord) -> Option<&Value> {
    step.outcome.as_ref().and_then(|o| o.get("result"))
}

fn msg(step: &StepRecord) -> String {
    step.outcome
        .as_ref()
        .and_then(|o| o.get("msg"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The `exchange` fact of a successful `exchange_facts` step.
fn facts<'a>(step: &'a StepRecord, modules: &BTreeMap<(usize, usize), &str>) -> Option<&'a Value> {
    if !provides(module(step, modules), Provides::ExchangeFacts)
        || !matches!(status(step), "ok" | "changed")
    {
        return None;
    }
    result(step)?.get("exchange").filter(|e| e.is_object())
}

fn posture(exchange: &Value) -> Posture {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let assessment = exchange.get("assessment").filter(|a| a.is_object());
    let open_cves: Vec<String> = assessment
        .and_then(|a| a.get("open_cves"))
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mitigated = exchange.get("mitigated").and_then(Value::as_bool) == Some(true);
    let known = assessment
        .and_then(|a| a.get("known"))
        .and_then(Value::as_bool)
        == Some(true);
    let state = if !known {
        PostureState::Unknown
    } else if open_cves.is_empty() {
        PostureState::Fixed
    } else if mitigated {
        PostureState::Mitigated
    } else {
        PostureState::Vulnerable
    };
    let family = text(exchange.get("family"));
    let cu = text(assessment.and_then(|a| a.get("cu")));
    Posture {
        build: text(exchange.get("build")),
        line: if cu.is_empty() {
            family
        } else {
            format!("{family} {cu}")
        },
        supported: assessment
            .and_then(|a| a.get("mar21_supported"))
            .and_then(Value::as_bool),
        open_cves,
        mitigated,
        state,
    }
}

/// What a changed step did, in a few words: the update it installed, a restart, or the
/// module's own message.
fn change_text(spec: Option<&ModuleSpec>, step: &StepRecord) -> String {
    let r = result(step);
    let field = |name: &str| r.and_then(|r| r.get(name)).and_then(Value::as_str);
    match spec {
        Some(s) if s.action == Action::InstallStep => {
            match (field("step"), field("target_build")) {
                (Some(kb), Some(target)) => format!("installed {kb} (to build {target})"),
                _ => msg(step),
            }
        }
        Some(s) if s.reboots => "restarted".to_string(),
        _ => msg(step),
    }
}

/// What to do about a failure, by how it failed and what failed.
fn fix(spec: Option<&ModuleSpec>, status: &str) -> String {
    if status == "unreachable" {
        return "check the connection with `salve doctor` for this host, then re-run: the \
                playbook resumes where the server stands"
            .to_string();
    }
    match spec {
        Some(s) if s.provides == Provides::IocFindings => "treat as an incident: keep the \
             evidence below, isolate the server and investigate before trusting it again \
             (patching does not evict an attacker)"
            .to_string(),
        Some(s) if s.action == Action::InstallStep => "read the installer's log lines, fix the \
             cause on the server (services left Disabled must be re-enabled), then re-run: the \
             next step is re-read from the server"
            .to_string(),
        _ => "fix the cause named in the reason, then re-run the playbook".to_string(),
    }
}

fn host_view(
    name: &str,
    ctx: Option<&crate::journal::HostContext>,
    steps: &[&StepRecord],
    modules: &BTreeMap<(usize, usize), &str>,
    start: Option<jiff::Timestamp>,
) -> HostView {
    let mut view = HostView {
        name: name.to_string(),
        tenant: ctx
            .and_then(|c| c.tenant.clone())
            .or_else(|| steps.iter().find_map(|s| s.tenant.clone())),
        dag: ctx.and_then(|c| c.dag.clone()),
        time_zone: ctx.and_then(|c| c.time_zone.clone()),
        ended: "ok".to_string(),
        before: None,
        after: None,
        catalogue_version: None,
        changes: Vec::new(),
        failures: Vec::new(),
        left_out: ctx.and_then(left_out),
        scanned: None,
        evidence: Vec::new(),
        scan_result: None,
        maintenance: Vec::new(),
        restarts: 0,
        duration_ms: 0,
        estimate_s: 0,
    };
    let mut in_maintenance: Option<f64> = None;
    for step in steps {
        let module = module(step, modules);
        let status = status(step);
        view.duration_ms += step
            .outcome
            .as_ref()
            .and_then(|o| o.get("duration_ms"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if let Some(e) = facts(step, modules) {
            if let Some(v) = e
                .pointer("/assessment/catalogue_version")
                .and_then(Value::as_str)
            {
                view.catalogue_version = Some(v.to_string());
            }
            let p = posture(e);
            if view.before.is_none() {
                view.before = Some(p);
            } else {
                view.after = Some(p);
            }
        }
        if provides(module, Provides::IocFindings)
            && let Some(r) = result(step).filter(|r| r.get("compromised").is_some())
        {
            view.scanned = Some(r.get("compromised").and_then(Value::as_bool) == Some(true));
            view.evidence = evidence(r);
            view.scan_result = Some(r.clone());
        }
        if provides(module, Provides::MaintenanceState)
            && matches!(status, "changed" | "ok")
            && let Some(r) = result(step)
        {
            let at = offset(start, step.finished_at.as_deref());
            match (server_wide_offline(r), in_maintenance, at) {
                (Some(true), None, Some(at)) => in_maintenance = Some(at),
                (Some(false), Some(from), Some(to)) => {
                    view.maintenance.push(Span { from, to });
                    in_maintenance = None;
                }
                _ => {}
            }
        }
        if status == "changed" {
            if module.is_some_and(|s| s.reboots) {
                view.restarts += 1;
            }
            view.changes.push(Change {
                at: step.finished_at.clone(),
                task: step.task.clone(),
                what: change_text(module, step),
            });
            if let Some(spec) = module {
                let update: Option<PathStep> = result(step)
                    .and_then(|r| r.pointer("/steps/0"))
                    .and_then(|s| serde_json::from_value(s.clone()).ok());
                view.estimate_s += spec.estimate.seconds(update.as_ref());
            }
        }
        if matches!(status, "failed" | "unreachable") {
            view.ended = status.to_string();
            let r = result(step);
            let reason = r
                .and_then(|r| r.get("reason"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && !msg(step).contains(*s))
                .map(|reason| format!("{}: {reason}", msg(step)))
                .unwrap_or_else(|| msg(step));
            view.failures.push(Failure {
                task: step.task.clone(),
                status: status.to_string(),
                reason,
                log: r
                    .and_then(|r| r.get("log_excerpt"))
                    .and_then(Value::as_array)
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
                fix: fix(module, status),
            });
        }
    }
    // Still in maintenance when the run ended (or the host failed there): the span runs to the
    // host's last step.
    if let Some(from) = in_maintenance {
        let to = steps
            .iter()
            .filter_map(|s| offset(start, s.finished_at.as_deref()))
            .fold(from, f64::max);
        view.maintenance.push(Span { from, to });
    }
    // How the run itself said the host ended, when it finished; else what the steps show.
    match ctx.and_then(|c| c.outcome.as_deref()) {
        Some(outcome) => view.ended = outcome.replace('_', " "),
        None if steps.is_empty() => view.ended = "not run".to_string(),
        None => {}
    }
    view
}

/// Why the run left a host (or the rest of its work) out; `None` for a host that ran to its
/// end or failed (its failure says why).
fn left_out(ctx: &crate::journal::HostContext) -> Option<String> {
    let drifted = || {
        ctx.dropped
            .as_ref()
            .filter(|d| d.status == "skipped")
            .map(|d| format!("left alone at \"{}\": {}", d.task, d.msg))
    };
    match ctx.outcome.as_deref() {
        Some("not_run") => Some(
            "not run: the run stopped before this host's turn (max_fail_percentage, a failed \
             DAG member, or Ctrl-C)"
                .to_string(),
        ),
        Some("interrupted") => Some(match &ctx.left_in {
            Some(task) => format!("interrupted by Ctrl-C in \"{task}\""),
            None => "interrupted by Ctrl-C".to_string(),
        }),
        Some("drifted") | None => drifted(),
        Some(_) => None,
    }
}

/// Whether a maintenance step's result leaves the server in maintenance: Microsoft's
/// procedure sets the `ServerWideOffline` component Inactive on entering and Active on leaving.
fn server_wide_offline(result: &Value) -> Option<bool> {
    result
        .get("component_states")?
        .as_array()?
        .iter()
        .find(|c| c.get("component").and_then(Value::as_str) == Some("ServerWideOffline"))
        .and_then(|c| c.get("state"))
        .and_then(Value::as_str)
        .map(|s| s != "Active")
}

fn evidence(result: &Value) -> Vec<Evidence> {
    let mut out = Vec::new();
    for f in result
        .get("findings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        for e in f
            .get("evidence")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push(Evidence {
                cve: text(f, "cve"),
                kind: text(f, "kind"),
                path: text(e, "path"),
                sha256: e.get("sha256").and_then(Value::as_str).map(String::from),
            });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::journal::{Dropped, HostContext, StepState, TaskContext};

    const MODULES: [&str; 6] = [
        "exchange_facts",
        "exchange_maintenance",
        "exchange_update",
        "exchange_maintenance",
        "exchange_facts",
        "exchange_ioc_scan",
    ];

    fn facts(build: &str, open: &[&str], mitigated: bool) -> Value {
        json!({"exchange": {"build": build, "family": "Exchange 2019", "mitigated": mitigated,
            "assessment": {"known": true, "cu": "CU8", "open_cves": open,
                "mar21_supported": true, "catalogue_version": "2021-07-14.1"}}})
    }

    fn maintenance(offline: &str) -> Value {
        json!({"component_states": [{"component": "ServerWideOffline", "state": offline}]})
    }

    fn step(host: &str, task_index: usize, minute: u32, status: &str, result: Value) -> StepRecord {
        StepRecord {
            host: host.into(),
            tenant: Some(host.split('-').next().unwrap_or_default().into()),
            play: 0,
            task_index,
            task: format!("task {task_index}"),
            state: StepState::Done,
            started_at: None,
            finished_at: Some(format!("2026-12-07T04:{minute:02}:00Z")),
            outcome: Some(json!({"status": status, "msg": format!("{status} msg"),
                "duration_ms": 60_000, "result": result})),
            output: None,
        }
    }

    /// A run of three hosts: `a-ex01` (DAG `a-dag`) patched through maintenance and found
    /// compromised, `a-ex02` unreachable, `b-ex01` left out by the run.
    pub(crate) fn sample() -> (RunDetail, RunContext) {
        let open = ["CVE-2021-26855", "CVE-2021-34473"];
        let steps = vec![
            step("a-ex01", 0, 1, "ok", facts("15.2.792.3", &open, false)),
            step("a-ex01", 1, 2, "changed", maintenance("Inactive")),
            step(
                "a-ex01",
                2,
                3,
                "changed",
                json!({"step": "KB5003435", "target_build": "15.2.792.15",
                       "steps": [{"display": "KB5003435", "kind": "SU", "label": "KB5003435",
                                  "target": "15.2.792.15", "kb": "KB5003435"}]}),
            ),
            step("a-ex01", 3, 5, "changed", maintenance("Active")),
            step("a-ex01", 4, 6, "ok", facts("15.2.792.15", &[], false)),
            step(
                "a-ex01",
                5,
                7,
                "failed",
                json!({"compromised": true, "findings": [{"cve": "other", "kind": "web_shell",
                    "evidence": [{"path": "C:\\inetpub\\x.aspx", "sha256": "ab12"}]}]}),
            ),
            step("a-ex02", 0, 1, "unreachable", json!({"unreachable": true})),
        ];
        let run = RunRecord {
            id: "r1".into(),
            playbook: "playbooks/proxylogon.yml".into(),
            playbook_digest: None,
            inventory_digest: None,
            plan_digest: None,
            check_mode: false,
            hosts: 3,
            started_at: "2026-12-07T04:00:00Z".into(),
            finished_at: Some("2026-12-07T04:10:00Z".into()),
            status: "failed".into(),
            exit_code: Some(2),
        };
        let host = |name: &str, tenant: &str, dag: Option<&str>| HostContext {
            host: name.into(),
            tenant: Some(tenant.into()),
            dag: dag.map(String::from),
            time_zone: Some("Europe/Brussels".into()),
            ..HostContext::default()
        };
        let mut left = host("b-ex01", "b", None);
        left.dropped = Some(Dropped {
            status: "skipped".into(),
            task: "task 0".into(),
            msg: "the build changed since the plan; nothing was changed: plan again".into(),
        });
        left.outcome = Some("drifted".into());
        let context = RunContext {
            hosts: vec![
                host("a-ex01", "a", Some("a-dag")),
                host("a-ex02", "a", None),
                left,
            ],
            tasks: MODULES
                .iter()
                .enumerate()
                .map(|(task_index, m)| TaskContext {
                    play: 0,
                    task_index,
                    module: m.to_string(),
                })
                .collect(),
        };
        (
            RunDetail {
                run,
                steps,
                intents: Vec::new(),
            },
            context,
        )
    }

    #[test]
    fn posture_changes_spans_and_evidence_come_from_the_steps() {
        let (detail, context) = sample();
        let view = build(&detail, &context);
        let h = &view.hosts[0];
        assert_eq!(h.name, "a-ex01");
        let before = h.before.as_ref().unwrap();
        assert_eq!(
            (before.state, before.open_cves.len(), before.line.as_str()),
            (PostureState::Vulnerable, 2, "Exchange 2019 CU8")
        );
        assert_eq!(h.after.as_ref().unwrap().state, PostureState::Fixed);
        // The scan found a web shell: compromised before and after, whatever the build says.
        assert_eq!(
            (h.state_before(), h.state_after()),
            (PostureState::Compromised, PostureState::Compromised)
        );
        assert_eq!(h.evidence.len(), 1);
        assert_eq!(h.evidence[0].sha256.as_deref(), Some("ab12"));
        assert_eq!(
            h.maintenance,
            vec![Span {
                from: 120.0,
                to: 300.0
            }]
        );
        let what: Vec<&str> = h.changes.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "changed msg",
                "installed KB5003435 (to build 15.2.792.15)",
                "changed msg"
            ]
        );
        // Two maintenance steps (900 s each) and an SU (the plan's booking for them).
        let update = crate::modules::spec("exchange_update").unwrap();
        assert_eq!(h.estimate_s, 1800 + update.estimate.seconds(None));
        assert_eq!(h.duration_ms, 6 * 60_000);
        assert_eq!(h.ended, "failed");
        assert!(h.failures[0].fix.contains("incident"), "{:?}", h.failures);
        assert_eq!(view.catalogue_versions, ["2021-07-14.1"]);
    }

    #[test]
    fn unreachable_and_left_out_hosts_say_why() {
        let (detail, context) = sample();
        let view = build(&detail, &context);
        let unreachable = &view.hosts[1];
        assert_eq!(
            (unreachable.ended.as_str(), unreachable.state_after()),
            ("unreachable", PostureState::Unknown)
        );
        assert!(unreachable.failures[0].fix.contains("salve doctor"));
        let left = &view.hosts[2];
        assert_eq!(left.ended, "drifted");
        assert_eq!(
            left.left_out.as_deref(),
            Some(
                "left alone at \"task 0\": the build changed since the plan; nothing was \
                 changed: plan again"
            )
        );
        let mut not_run = context.clone();
        not_run.hosts[2].outcome = Some("not_run".into());
        not_run.hosts[2].dropped = None;
        let view = build(&detail, &not_run);
        assert_eq!(view.hosts[2].ended, "not run");
        assert!(
            view.hosts[2]
                .left_out
                .as_deref()
                .unwrap()
                .contains("max_fail_percentage")
        );
    }

    #[test]
    fn a_tenant_view_holds_only_its_hosts() {
        let (detail, context) = sample();
        let view = build(&detail, &context);
        assert_eq!(view.tenants(), ["a", "b"]);
        let b = view.for_tenant("b");
        assert_eq!(b.hosts.len(), 1);
        assert_eq!(b.run.hosts, 1);
        assert!(b.dags().is_empty());
        assert_eq!(view.dags()["a-dag"].len(), 1);
        assert_eq!(view.common_time_zone(), Some("Europe/Brussels"));
    }

    #[test]
    fn a_run_journaled_without_its_context_still_lists_its_hosts() {
        let (detail, _) = sample();
        let view = build(&detail, &RunContext::default());
        assert!(!view.steps_known);
        assert_eq!(view.hosts.len(), 2, "the hosts that have steps");
        assert_eq!(view.hosts[1].ended, "unreachable");
        assert!(view.hosts[0].before.is_none(), "no module, no posture");
    }

    #[test]
    fn members_at_once_counts_overlaps_not_hand_overs() {
        let member = |spans: &[(f64, f64)]| {
            let (detail, context) = sample();
            let mut h = build(&detail, &context).hosts.remove(0);
            h.maintenance = spans.iter().map(|&(from, to)| Span { from, to }).collect();
            h
        };
        let (a, b, c) = (
            member(&[(0.0, 10.0)]),
            member(&[(10.0, 20.0)]),
            member(&[(15.0, 30.0)]),
        );
        assert_eq!(most_at_once(&[&a, &b]), 1, "one hands over to the next");
        assert_eq!(most_at_once(&[&a, &b, &c]), 2);
        assert_eq!(most_at_once(&[]), 0);
    }
}
