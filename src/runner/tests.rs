//! Runner behaviour against the scripted fake transport, with paused tokio time: forks,
//! serial batches, max_fail_percentage, retries/until, timeouts, unreachable hosts, handlers,
//! check mode and Ctrl-C escalation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::diag::Location;
use crate::events::{HostOutcome, TaskStatus};
use crate::model::settings::DAG_VAR;
use crate::model::{
    BatchSize, Expr, Group, HostPattern, HostSettings, LoopSpec, ModuleCall, Play, Rolling, Task,
};
use crate::transport::fake::{FakeConnector, FakeFleet, FakeReply};

fn loc() -> Location {
    Location::new(&Arc::new(PathBuf::from("test.yml")), 1, 1)
}

fn task(name: &str, module: &str, args: Value) -> Task {
    Task {
        name: name.into(),
        call: ModuleCall {
            module: module.into(),
            args,
            location: loc(),
        },
        when: Vec::new(),
        register: None,
        loop_spec: None,
        retries: 0,
        delay: Duration::from_secs(1),
        until: None,
        timeout: None,
        poll: None,
        ignore_errors: false,
        changed_when: None,
        failed_when: None,
        notify: Vec::new(),
        listen: Vec::new(),
        tags: Vec::new(),
        loop_control: Default::default(),
        run_once: false,
        ignore_unreachable: false,
        on_controller: false,
        become_: Default::default(),
        location: loc(),
    }
}

fn ps(name: &str, script: &str) -> Task {
    task(name, "powershell", json!({ "script": script }))
}

fn expr(source: &str) -> Expr {
    Expr {
        source: source.into(),
        location: loc(),
    }
}

fn play(tasks: Vec<Task>) -> Play {
    Play {
        name: "play".into(),
        hosts: HostPattern {
            source: "all".into(),
            terms: Vec::new(),
        },
        vars: Default::default(),
        serial: Vec::new(),
        rolling: Rolling::Serial,
        max_fail_percentage: None,
        forks: None,
        body: (0..tasks.len()).map(crate::model::Step::Task).collect(),
        tasks,
        rescue: Vec::new(),
        handlers: Vec::new(),
        gather_facts: false,
        any_errors_fatal: false,
        location: loc(),
    }
}

fn inventory(n: usize) -> Inventory {
    inventory_with(n, |_| Vars::new())
}

/// `n` hosts ex01.., with variables from `vars(i)`.
fn inventory_with(n: usize, vars: impl Fn(usize) -> Vars) -> Inventory {
    let hosts: Vec<Host> = (1..=n)
        .map(|i| {
            let (name, vars) = (format!("ex{i:02}"), vars(i));
            Host {
                settings: HostSettings::read(&name, &vars).unwrap(),
                name,
                groups: vec!["all".into()],
                tenant: Some(if i % 2 == 0 { "contoso" } else { "fabrikam" }.into()),
                vars: vars.into(),
                location: None,
            }
        })
        .collect();
    let all = Group {
        name: "all".into(),
        children: Vec::new(),
        hosts: hosts.iter().map(|h| h.name.clone()).collect(),
        vars: Default::default(),
        tenant: None,
        location: None,
    };
    Inventory::new(
        hosts,
        [("all".to_string(), all)].into(),
        Vec::new(),
        String::new(),
    )
}

struct Outcome {
    summary: RunSummary,
    events: Vec<Event>,
}

async fn run_with(
    plays: Vec<Play>,
    hosts: usize,
    options: RunOptions,
    fleet: Arc<FakeFleet>,
    interrupt: Interrupt,
) -> Outcome {
    run_on(plays, inventory(hosts), options, fleet, interrupt).await
}

async fn run_on(
    plays: Vec<Play>,
    inventory: Inventory,
    options: RunOptions,
    fleet: Arc<FakeFleet>,
    interrupt: Interrupt,
) -> Outcome {
    run_playbook_on(plays, true, inventory, options, fleet, interrupt).await
}

/// [`run_on`], for a playbook whose files do or do not mention `hostvars`.
async fn run_playbook_on(
    plays: Vec<Play>,
    mentions_hostvars: bool,
    inventory: Inventory,
    options: RunOptions,
    fleet: Arc<FakeFleet>,
    interrupt: Interrupt,
) -> Outcome {
    let inventory = Arc::new(inventory);
    let names: Vec<String> = inventory.hosts.iter().map(|h| h.name.clone()).collect();
    let play_hosts = plays.iter().map(|_| names.clone()).collect();
    let playbook = Arc::new(Playbook {
        path: PathBuf::from("pb.yml"),
        digest: String::new(),
        plays,
        mentions_hostvars,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let summary = run(
        RunInput {
            playbook,
            inventory,
            play_hosts,
        },
        options,
        Arc::new(FakeConnector(fleet)),
        tx,
        interrupt,
    )
    .await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Outcome { summary, events }
}

async fn run_simple(plays: Vec<Play>, hosts: usize, fleet: Arc<FakeFleet>) -> Outcome {
    run_with(
        plays,
        hosts,
        RunOptions::default(),
        fleet,
        Interrupt::default(),
    )
    .await
}

fn statuses(events: &[Event], host: &str) -> Vec<(String, TaskStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskFinished {
                host: h,
                task,
                status,
                ..
            } if h == host => Some((task.clone(), *status)),
            _ => None,
        })
        .collect()
}

fn outcome(summary: &RunSummary, host: &str) -> HostOutcome {
    summary
        .hosts
        .iter()
        .find(|h| h.host == host)
        .map(|h| h.outcome)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn forks_bound_concurrency() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("done").after(Duration::from_secs(10)));
    let mut options = RunOptions {
        forks: 3,
        ..RunOptions::default()
    };
    options.run_id = "t".into();
    let start = tokio::time::Instant::now();
    let out = run_with(
        vec![play(vec![ps("work", "x")])],
        10,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    // 10 hosts, 3 at a time, 10 s each: four waves.
    assert_eq!(start.elapsed().as_secs(), 40);
    assert_eq!(out.summary.exit_code, exit::OK);
    assert!((1..=10).all(|i| fleet.connects(&format!("ex{i:02}")) == 1));
}

/// A host's connection is closed once the host has finished its last play, so a run holds
/// connections for the hosts in flight, not for every host it has worked on (issue 19).
#[tokio::test(start_paused = true)]
async fn connections_are_bounded_by_the_hosts_in_flight() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("").after(Duration::from_secs(1)));
    let mut options = RunOptions {
        forks: 3,
        ..RunOptions::default()
    };
    options.run_id = "t".into();
    let out = run_with(
        vec![play(vec![ps("a", "1"), ps("b", "2")])],
        10,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    assert_eq!(out.summary.exit_code, exit::OK);
    assert!((1..=10).all(|i| fleet.connects(&format!("ex{i:02}")) == 1));
    assert_eq!(fleet.peak_open(), 3);
}

#[tokio::test(start_paused = true)]
async fn one_connection_per_host_across_tasks_and_plays() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let plays = vec![
        play(vec![ps("a", "1"), ps("b", "2")]),
        play(vec![ps("c", "3")]),
    ];
    let out = run_simple(plays, 2, Arc::clone(&fleet)).await;
    assert_eq!(out.summary.exit_code, exit::OK);
    assert_eq!((fleet.connects("ex01"), fleet.count("ex01")), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn serial_batches_run_in_order() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let mut p = play(vec![ps("a", "1")]);
    p.serial = vec![BatchSize::Count(1), BatchSize::Percent(50.0)];
    let out = run_simple(vec![p], 5, fleet).await;
    let batches: Vec<usize> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::BatchStarted { hosts, .. } => Some(hosts.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![1, 2, 2]);
    // Batch 1 finishes before batch 2 starts.
    let first_finish = out
        .events
        .iter()
        .position(|e| matches!(e, Event::TaskFinished { .. }))
        .unwrap();
    let second_batch = out
        .events
        .iter()
        .rposition(|e| matches!(e, Event::BatchStarted { batch: 2, .. }))
        .unwrap();
    assert!(first_finish < second_batch);
}

#[tokio::test(start_paused = true)]
async fn max_fail_percentage_stops_after_the_failing_batch() {
    let fleet = FakeFleet::new(|host, _| {
        if host == "ex02" {
            FakeReply::exit(1, "boom")
        } else {
            FakeReply::ok("")
        }
    });
    let mut p = play(vec![ps("a", "1")]);
    p.serial = vec![BatchSize::Count(2)];
    p.max_fail_percentage = Some(40.0);
    let out = run_simple(vec![p], 6, Arc::clone(&fleet)).await;
    assert_eq!(outcome(&out.summary, "ex01"), HostOutcome::Ok);
    assert_eq!(outcome(&out.summary, "ex02"), HostOutcome::Failed);
    assert_eq!(outcome(&out.summary, "ex03"), HostOutcome::NotRun);
    assert_eq!(fleet.count("ex03"), 0);
    assert_eq!(out.summary.exit_code, exit::HOSTS_FAILED);
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::PlayFinished {
            stopped: Some(PlayStop::MaxFailPercentage {
                batch: 1,
                failed: 1,
                hosts: 2,
                ..
            }),
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn failed_and_unreachable_hosts_drop_out_others_go_on() {
    let fleet = FakeFleet::new(|host, _| {
        if host == "ex02" {
            FakeReply::exit(3, "no")
        } else {
            FakeReply::ok("")
        }
    });
    fleet.set_unreachable("ex03", true);
    let out = run_simple(
        vec![play(vec![ps("a", "1"), ps("b", "2")])],
        4,
        Arc::clone(&fleet),
    )
    .await;
    assert_eq!(statuses(&out.events, "ex01").len(), 2);
    assert_eq!(
        statuses(&out.events, "ex02"),
        vec![("a".into(), TaskStatus::Failed)]
    );
    assert_eq!(
        statuses(&out.events, "ex03"),
        vec![("a".into(), TaskStatus::Unreachable)]
    );
    assert_eq!(outcome(&out.summary, "ex03"), HostOutcome::Unreachable);
    assert_eq!(
        out.summary.tenants["fabrikam"][&HostOutcome::Unreachable],
        1
    );
    assert_eq!(out.summary.exit_code, exit::HOSTS_FAILED);
}

#[tokio::test(start_paused = true)]
async fn retries_until_the_condition_holds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let fleet = FakeFleet::new(move |_, _| {
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        FakeReply::ok(&format!("{n}"))
    });
    let mut t = ps("poll", "x");
    t.register = Some("r".into());
    t.until = Some(expr("r.stdout | trim == '3'"));
    t.retries = 5;
    t.delay = Duration::from_secs(10);
    let start = tokio::time::Instant::now();
    let out = run_simple(vec![play(vec![t])], 1, fleet).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed().as_secs(), 20);
    let retries = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::TaskRetry { .. }))
        .count();
    assert_eq!(retries, 2);
    assert_eq!(out.summary.exit_code, exit::OK);
}

#[tokio::test(start_paused = true)]
async fn retries_without_until_retry_failures_then_give_up() {
    let fleet = FakeFleet::new(|_, _| FakeReply::exit(1, "still broken"));
    let mut t = ps("flaky", "x");
    t.retries = 2;
    let out = run_simple(vec![play(vec![t])], 1, Arc::clone(&fleet)).await;
    assert_eq!(fleet.count("ex01"), 3);
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![("flaky".into(), TaskStatus::Failed)]
    );
}

#[tokio::test(start_paused = true)]
async fn task_timeout_stops_the_command() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("").after(Duration::from_secs(3600)));
    let mut t = ps("slow", "x");
    t.timeout = Some(Duration::from_secs(60));
    let options = RunOptions {
        slow_step: Duration::from_secs(25),
        ..RunOptions::default()
    };
    let out = run_with(
        vec![play(vec![t])],
        1,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![("slow".into(), TaskStatus::Failed)]
    );
    assert_eq!(fleet.cancelled(), vec!["ex01".to_string()]);
    let slow = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::SlowStep { .. }))
        .count();
    assert_eq!(slow, 2, "warned at 25 s and 50 s");
    let msg = out.events.iter().find_map(|e| match e {
        Event::TaskFinished { msg, .. } => msg.clone(),
        _ => None,
    });
    assert!(msg.unwrap().contains("timed out after 60s"));
}

#[tokio::test(start_paused = true)]
async fn handlers_run_once_when_notified_by_a_change() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let mut a = ps("change it", "x");
    a.notify = vec!["restart".into()];
    let mut b = task("no change", "debug", json!({"msg": "hi"}));
    b.notify = vec!["never".into()];
    let mut c = ps("change again", "y");
    c.notify = vec!["restart".into()];
    let mut p = play(vec![a, b, c]);
    p.handlers = vec![ps("restart", "restart"), ps("never", "never")];
    let out = run_simple(vec![p], 1, Arc::clone(&fleet)).await;
    let names: Vec<String> = statuses(&out.events, "ex01")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        names,
        vec!["change it", "no change", "change again", "restart"]
    );
}

#[tokio::test(start_paused = true)]
async fn when_loop_register_and_set_fact_flow() {
    let fleet = FakeFleet::new(|_, script| {
        let item = script
            .args
            .as_ref()
            .and_then(|a| a.get("n"))
            .cloned()
            .unwrap_or_default();
        FakeReply::ok(&format!("got {item}"))
    });
    let mut fact = task("fact", "set_fact", json!({"limit": 2}));
    fact.when = vec![expr("inventory_hostname == 'ex01'")];
    let mut looped = task(
        "each",
        "powershell",
        json!({"script": "x", "args": {"n": "{{ item }}"}}),
    );
    looped.loop_spec = Some(LoopSpec::Items(vec![json!(1), json!(2), json!(3)]));
    looped.when = vec![expr("item <= limit")];
    looped.register = Some("each".into());
    let check = task(
        "check",
        "assert",
        json!({"that": ["each.results | length == 3", "each.results[1].stdout == 'got 2'", "each.results[2].skipped"]}),
    );
    let out = run_simple(vec![play(vec![fact, looped, check])], 2, Arc::clone(&fleet)).await;
    assert_eq!(
        fleet.count("ex01"),
        2,
        "items 1 and 2 ran, item 3 was skipped"
    );
    // ex02 never got the fact, so its `when` cannot be evaluated: a clear failure.
    assert_eq!(
        statuses(&out.events, "ex02")[0],
        ("fact".into(), TaskStatus::Skipped)
    );
    assert_eq!(
        statuses(&out.events, "ex02")[1],
        ("each".into(), TaskStatus::Failed)
    );
    assert_eq!(
        statuses(&out.events, "ex01")[2],
        ("check".into(), TaskStatus::Ok)
    );
}

#[tokio::test(start_paused = true)]
async fn ignore_errors_keeps_the_host_going() {
    let fleet = FakeFleet::new(|_, _| FakeReply::exit(2, "meh"));
    let mut t = ps("may fail", "x");
    t.ignore_errors = true;
    let out = run_simple(
        vec![play(vec![t, task("next", "debug", json!({"msg": "on"}))])],
        1,
        fleet,
    )
    .await;
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![
            ("may fail".into(), TaskStatus::Ignored),
            ("next".into(), TaskStatus::Ok)
        ]
    );
    assert_eq!(out.summary.exit_code, exit::OK);
}

#[tokio::test(start_paused = true)]
async fn check_mode_runs_no_scripts() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let options = RunOptions {
        check_mode: true,
        ..RunOptions::default()
    };
    let out = run_with(
        vec![play(vec![ps("a", "1")])],
        2,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    assert!(fleet.commands().is_empty());
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![("a".into(), TaskStatus::Skipped)]
    );
}

/// An intent log that records every intent and refuses those on `refuse`.
#[derive(Debug, Default)]
struct Intents {
    refuse: String,
    begun: std::sync::Mutex<Vec<(String, usize)>>,
    completed: AtomicUsize,
}

#[async_trait::async_trait]
impl IntentLog for Intents {
    async fn begin(
        &self,
        host: &str,
        _play: usize,
        task_index: usize,
        _action: &str,
    ) -> Result<Option<String>, Refused> {
        if host == self.refuse {
            return Err(Refused("claim lost".into()));
        }
        let mut begun = self.begun.lock().unwrap();
        begun.push((host.to_string(), task_index));
        Ok(Some(begun.len().to_string()))
    }

    async fn complete(&self, _id: &str, _outcome: &Value) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn changes_are_announced_first_and_a_refused_one_never_starts() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("done"));
    let intents = Arc::new(Intents {
        refuse: "ex02".into(),
        ..Intents::default()
    });
    let options = RunOptions {
        intents: Some(Arc::clone(&intents) as Arc<dyn IntentLog>),
        ..RunOptions::default()
    };
    let tasks = vec![
        task("note", "debug", json!({"msg": "read-only: no intent"})),
        ps("change", "1"),
    ];
    let out = run_with(
        vec![play(tasks)],
        2,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    assert_eq!(*intents.begun.lock().unwrap(), [("ex01".to_string(), 1)]);
    assert_eq!(intents.completed.load(Ordering::SeqCst), 1);
    assert_eq!(fleet.count("ex01"), 1);
    assert_eq!(
        fleet.count("ex02"),
        0,
        "a refused change must not reach the host"
    );
    assert_eq!(outcome(&out.summary, "ex02"), HostOutcome::Failed);
    let msg = out.events.iter().find_map(|e| match e {
        Event::TaskFinished {
            host,
            task,
            msg: Some(m),
            ..
        } if host == "ex02" && task == "change" => Some(m.clone()),
        _ => None,
    });
    assert_eq!(msg.as_deref(), Some("not started: claim lost"));
}

#[tokio::test(start_paused = true)]
async fn first_interrupt_drains_second_aborts() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("").after(Duration::from_secs(100)));
    let interrupt = Interrupt::default();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(trigger.escalate(), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(trigger.escalate(), 2);
    });
    let options = RunOptions {
        forks: 1,
        ..RunOptions::default()
    };
    let out = run_with(
        vec![play(vec![ps("a", "1"), ps("b", "2")])],
        2,
        options,
        Arc::clone(&fleet),
        interrupt,
    )
    .await;
    // ex01 was in `a` when both interrupts came; ex02 never started.
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![("a".into(), TaskStatus::Interrupted)]
    );
    assert!(statuses(&out.events, "ex02").is_empty());
    let ex01 = out.summary.hosts.iter().find(|h| h.host == "ex01").unwrap();
    assert_eq!(
        (ex01.outcome, ex01.left_in.as_deref()),
        (HostOutcome::Interrupted, Some("a"))
    );
    assert_eq!(outcome(&out.summary, "ex02"), HostOutcome::Interrupted);
    assert_eq!(out.summary.exit_code, exit::INTERRUPTED);
    let stages: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Interrupt { stage, in_flight } => Some((*stage, in_flight.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages[0],
        (InterruptStage::Draining, vec![("ex01".into(), "a".into())])
    );
    assert_eq!(stages[1].0, InterruptStage::Aborting);
}

#[tokio::test(start_paused = true)]
async fn draining_lets_running_steps_finish() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok("").after(Duration::from_secs(100)));
    let interrupt = Interrupt::default();
    let trigger = interrupt.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        trigger.escalate();
    });
    let out = run_with(
        vec![play(vec![ps("a", "1"), ps("b", "2")])],
        1,
        RunOptions::default(),
        fleet,
        interrupt,
    )
    .await;
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![("a".into(), TaskStatus::Changed)]
    );
    let ex01 = &out.summary.hosts[0];
    assert_eq!(
        (ex01.outcome, ex01.left_in.as_deref()),
        (HostOutcome::Interrupted, Some("before `b`"))
    );
}

#[test]
fn tags_select_tasks() {
    let o = RunOptions {
        tags: vec!["patch".into()],
        skip_tags: vec!["slow".into()],
        ..RunOptions::default()
    };
    let t = |tags: &[&str]| tags.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(o.selects(&t(&["patch"])));
    assert!(o.selects(&t(&["always"])));
    assert!(!o.selects(&t(&["patch", "slow"])));
    assert!(!o.selects(&t(&[])));
    assert!(!RunOptions::default().selects(&t(&["never"])));
}

/// ex01-ex03 in DAG A, ex04-ex06 in DAG B, ex07-ex08 standalone.
fn dag_inventory() -> Inventory {
    inventory_with(8, |i| {
        let mut v = Vars::new();
        match i {
            1..=3 => v.insert(DAG_VAR.into(), json!("DAG-A")),
            4..=6 => v.insert(DAG_VAR.into(), json!("DAG-B")),
            _ => None,
        };
        v
    })
}

#[tokio::test(start_paused = true)]
async fn dag_members_go_one_at_a_time_dags_side_by_side() {
    let (out, elapsed, spans) = roll_by_dag(dag_inventory()).await;
    assert_eq!(out.summary.exit_code, exit::OK);
    // Three members per DAG in turn, the DAGs and the standalone hosts at the same time.
    assert_eq!(elapsed.as_secs(), 30);
    for dag in [["ex01", "ex02", "ex03"], ["ex04", "ex05", "ex06"]] {
        assert_one_at_a_time(&spans, &dag);
    }
}

/// When each host's task ran: `(host, start, end)`.
type Spans = Vec<(String, tokio::time::Instant, tokio::time::Instant)>;

/// One play of one ten-second task on every host, with `rolling: dag`: the run, how long it
/// took, and when each host's task ran.
async fn roll_by_dag(inventory: Inventory) -> (Outcome, Duration, Spans) {
    let spans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&spans);
    let fleet = FakeFleet::new(move |host, _| {
        let start = tokio::time::Instant::now();
        log.lock()
            .unwrap()
            .push((host.to_string(), start, start + Duration::from_secs(10)));
        FakeReply::ok("").after(Duration::from_secs(10))
    });
    let mut p = play(vec![ps("patch", "x")]);
    p.rolling = Rolling::Dag;
    let begin = tokio::time::Instant::now();
    let out = run_on(
        vec![p],
        inventory,
        RunOptions::default(),
        fleet,
        Interrupt::default(),
    )
    .await;
    let spans = std::mem::take(&mut *spans.lock().unwrap());
    (out, begin.elapsed(), spans)
}

/// No two of `members` ran at the same time.
fn assert_one_at_a_time(spans: &Spans, members: &[&str]) {
    let members: Vec<_> = spans
        .iter()
        .filter(|(h, _, _)| members.contains(&h.as_str()))
        .collect();
    for a in &members {
        for b in &members {
            assert!(
                a.0 == b.0 || a.2 <= b.1 || b.2 <= a.1,
                "{} and {} overlapped",
                a.0,
                b.0
            );
        }
    }
}

/// YAML types a bare `salve_dag: 1` as a number: its members are still rolled one at a time.
#[tokio::test(start_paused = true)]
async fn a_dag_named_by_a_number_goes_one_member_at_a_time() {
    let inventory = inventory_with(5, |i| {
        let mut v = Vars::new();
        match i {
            1..=3 => v.insert(DAG_VAR.into(), json!(1)),
            _ => v.insert(DAG_VAR.into(), json!(2019)),
        };
        v
    });
    let (out, elapsed, spans) = roll_by_dag(inventory).await;
    assert_eq!(out.summary.exit_code, exit::OK);
    assert_eq!(elapsed.as_secs(), 30);
    assert_one_at_a_time(&spans, &["ex01", "ex02", "ex03"]);
    assert_one_at_a_time(&spans, &["ex04", "ex05"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_dag_member_stops_its_dag_only() {
    let fleet = FakeFleet::new(|host, _| {
        if host == "ex02" {
            FakeReply::exit(1, "setup failed")
        } else {
            FakeReply::ok("")
        }
    });
    let mut p = play(vec![ps("patch", "x")]);
    p.rolling = Rolling::Dag;
    let out = run_on(
        vec![p],
        dag_inventory(),
        RunOptions::default(),
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    assert_eq!(outcome(&out.summary, "ex01"), HostOutcome::Ok);
    assert_eq!(outcome(&out.summary, "ex02"), HostOutcome::Failed);
    assert_eq!(outcome(&out.summary, "ex03"), HostOutcome::NotRun);
    assert_eq!(fleet.count("ex03"), 0);
    assert!((4..=8).all(|i| outcome(&out.summary, &format!("ex{i:02}")) == HostOutcome::Ok));
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::Warning { message } if message.contains("DAG DAG-A")))
    );
}

#[tokio::test(start_paused = true)]
async fn rescue_tasks_run_after_a_failure_and_the_host_stays_failed() {
    let fleet = FakeFleet::new(|_, script| {
        if script.body == "install" {
            FakeReply::exit(1, "no")
        } else {
            FakeReply::ok("")
        }
    });
    let mut p = play(vec![
        ps("enter maintenance", "enter"),
        ps("install", "install"),
        ps("never", "never"),
    ]);
    p.rescue = vec![ps("leave maintenance", "leave")];
    let out = run_simple(vec![p], 1, Arc::clone(&fleet)).await;
    let ran: Vec<String> = fleet.commands().into_iter().map(|(_, s)| s.body).collect();
    assert_eq!(ran, vec!["enter", "install", "leave"]);
    assert_eq!(outcome(&out.summary, "ex01"), HostOutcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_set_max_fail_percentage_replaces_the_all_failed_rule() {
    let fleet = FakeFleet::new(|host, _| {
        if host == "ex01" {
            FakeReply::exit(1, "no")
        } else {
            FakeReply::ok("")
        }
    });
    let mut p = play(vec![ps("a", "1")]);
    p.serial = vec![BatchSize::Count(1)];
    let out = run_simple(vec![p.clone()], 3, Arc::clone(&fleet)).await;
    assert_eq!(
        outcome(&out.summary, "ex02"),
        HostOutcome::NotRun,
        "unset: a fully failed batch stops the play"
    );
    p.max_fail_percentage = Some(100.0);
    let out = run_simple(vec![p], 3, fleet).await;
    assert_eq!(
        outcome(&out.summary, "ex02"),
        HostOutcome::Ok,
        "set to 100: failures never stop it"
    );
    assert_eq!(outcome(&out.summary, "ex03"), HostOutcome::Ok);
}

fn block(body: Vec<usize>, rescue: Vec<usize>, always: Vec<usize>) -> crate::model::Step {
    use crate::model::{Block, Step};
    let steps = |v: Vec<usize>| v.into_iter().map(Step::Task).collect();
    Step::Block(Block {
        name: "block".into(),
        body: steps(body),
        rescue: steps(rescue),
        always: steps(always),
        location: loc(),
    })
}

#[tokio::test(start_paused = true)]
async fn a_rescued_block_lets_the_host_go_on_and_always_runs() {
    let fleet = FakeFleet::new(|_, script| match script.body.as_str() {
        "install" => FakeReply::exit(1, "1603"),
        _ => FakeReply::ok(""),
    });
    let mut p = play(vec![
        ps("enter", "enter"),
        ps("install", "install"),
        ps("skipped after failure", "never"),
        task(
            "rescue sees the failure",
            "assert",
            json!({"that": ["ansible_failed_task.name == 'install'", "ansible_failed_result.rc == 1"]}),
        ),
        ps("leave", "leave"),
        ps("after the block", "after"),
    ]);
    p.body = vec![
        block(vec![0, 1, 2], vec![3], vec![4]),
        crate::model::Step::Task(5),
    ];
    let out = run_simple(vec![p], 1, Arc::clone(&fleet)).await;
    let ran: Vec<String> = fleet.commands().into_iter().map(|(_, s)| s.body).collect();
    assert_eq!(ran, vec!["enter", "install", "leave", "after"]);
    assert_eq!(outcome(&out.summary, "ex01"), HostOutcome::Ok);
    assert_eq!(
        statuses(&out.events, "ex01")[2],
        ("rescue sees the failure".to_string(), TaskStatus::Ok)
    );
    let counts = &out.summary.hosts[0].counts;
    assert_eq!((counts.failed, counts.ignored), (0, 1), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unrescued_block_failure_runs_always_then_drops_the_host() {
    let fleet = FakeFleet::new(|_, script| match script.body.as_str() {
        "install" | "rollback" => FakeReply::exit(1, "no"),
        _ => FakeReply::ok(""),
    });
    let mut p = play(vec![
        ps("install", "install"),
        ps("rollback", "rollback"),
        ps("leave", "leave"),
        ps("after", "after"),
    ]);
    p.body = vec![
        block(vec![0], vec![1], vec![2]),
        crate::model::Step::Task(3),
    ];
    let out = run_simple(vec![p], 1, Arc::clone(&fleet)).await;
    let ran: Vec<String> = fleet.commands().into_iter().map(|(_, s)| s.body).collect();
    assert_eq!(ran, vec!["install", "rollback", "leave"]);
    assert_eq!(outcome(&out.summary, "ex01"), HostOutcome::Failed);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::HostDropped { task, .. } if task == "rollback"))
    );
}

#[tokio::test(start_paused = true)]
async fn any_errors_fatal_stops_every_host() {
    let fleet = FakeFleet::new(|host, script| match (host, script.body.as_str()) {
        ("ex02", "first") => FakeReply::exit(1, "no"),
        (_, "first") => FakeReply::ok("").after(Duration::from_secs(5)),
        _ => FakeReply::ok(""),
    });
    let mut p = play(vec![ps("first", "first"), ps("second", "second")]);
    p.any_errors_fatal = true;
    let out = run_simple(vec![p.clone()], 3, Arc::clone(&fleet)).await;
    for h in ["ex01", "ex02", "ex03"] {
        assert_eq!(outcome(&out.summary, h), HostOutcome::Failed, "{h}");
    }
    assert!(!fleet.commands().iter().any(|(_, s)| s.body == "second"));
    p.any_errors_fatal = false;
    let fleet2 = FakeFleet::new(|host, script| match (host, script.body.as_str()) {
        ("ex02", "first") => FakeReply::exit(1, "no"),
        _ => FakeReply::ok(""),
    });
    let out = run_simple(vec![p], 3, Arc::clone(&fleet2)).await;
    assert_eq!(
        outcome(&out.summary, "ex01"),
        HostOutcome::Ok,
        "without it the others go on"
    );
}

#[tokio::test(start_paused = true)]
async fn ignore_unreachable_goes_on_and_delegated_tasks_run_on_the_controller() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    fleet.set_unreachable("ex01", true);
    let mut unreachable = ps("unreachable", "one");
    unreachable.ignore_unreachable = true;
    let mut local = ps("on the controller", "local");
    local.on_controller = true;
    let out = run_simple(vec![play(vec![unreachable, local])], 1, Arc::clone(&fleet)).await;
    assert_eq!(
        statuses(&out.events, "ex01"),
        vec![
            ("unreachable".to_string(), TaskStatus::Unreachable),
            ("on the controller".to_string(), TaskStatus::Changed)
        ]
    );
    assert_eq!(
        fleet.commands(),
        vec![("localhost".to_string(), fleet.commands()[0].1.clone())]
    );
}

#[tokio::test(start_paused = true)]
async fn loop_items_are_announced_by_label_with_index_and_pause() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let mut t = task("each", "debug", json!({"msg": "{{ position }}: {{ db }}"}));
    t.loop_spec = Some(LoopSpec::Items(vec![
        json!("DB01"),
        json!("DB02"),
        json!("DB03"),
    ]));
    t.loop_control = crate::model::LoopControl {
        loop_var: Some("db".into()),
        index_var: Some("position".into()),
        label: Some("{{ db | lower }}".into()),
        pause: Some(Duration::from_secs(10)),
    };
    let started = tokio::time::Instant::now();
    let out = run_simple(vec![play(vec![t])], 1, fleet).await;
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "two pauses between three items"
    );
    let items: Vec<(Value, Option<String>)> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::LoopItem { item, msg, .. } => Some((item.clone(), msg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (json!("db01"), Some("0: DB01".into())),
            (json!("db02"), Some("1: DB02".into())),
            (json!("db03"), Some("2: DB03".into())),
        ]
    );
}

/// Templates look variables up through the layers (inventory < play vars < facts < extra
/// vars < loop variables < magic variables) without a merged copy; the fleet-sized magic
/// variables are shared by the play's hosts and `hostvars` finds a host's layers and facts.
#[tokio::test(start_paused = true)]
async fn templates_see_each_layer_by_precedence_and_the_fleet_variables() {
    let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
    let inventory = inventory_with(3, |i| {
        json!({"v": "inventory", "a": "inventory", "p": "inventory", "own": i})
            .as_object()
            .unwrap()
            .clone()
    });
    let fact = task("fact", "set_fact", json!({"v": "fact", "f": "fact"}));
    let mut looped = task(
        "check",
        "assert",
        json!({"that": [
            "v == 'fact' and a == 'inventory' and p == 'extra' and q == 'play'",
            "f == 'fact' and x == 'extra' and thing == 'looped' and n == 0",
            "hostvars['ex02'].own == 2 and hostvars['ex02'].inventory_hostname == 'ex02'",
            "hostvars[inventory_hostname].v == 'fact' and hostvars | list | length == 3",
            "groups['all'] | length == 3 and play_hosts == ansible_play_hosts",
            "inventory_hostname in play_hosts and group_names == []",
            "item is not defined",
        ]}),
    );
    looped.loop_spec = Some(LoopSpec::Items(vec![json!("looped")]));
    looped.loop_control.loop_var = Some("thing".into());
    looped.loop_control.index_var = Some("n".into());
    let mut p = play(vec![fact, looped]);
    p.vars = json!({"p": "play", "q": "play", "v": "play"})
        .as_object()
        .unwrap()
        .clone();
    let options = RunOptions {
        extra_vars: json!({"p": "extra", "x": "extra"})
            .as_object()
            .unwrap()
            .clone(),
        ..RunOptions::default()
    };
    let out = run_on(
        vec![p],
        inventory,
        options,
        Arc::clone(&fleet),
        Interrupt::default(),
    )
    .await;
    for host in ["ex01", "ex02", "ex03"] {
        assert_eq!(
            statuses(&out.events, host),
            [
                ("fact".into(), TaskStatus::Ok),
                ("check".into(), TaskStatus::Ok)
            ],
            "{:?}",
            out.events
        );
    }
}

/// A host's facts are let go once its last play is over, unless the playbook mentions
/// `hostvars`: a later batch's host then still reads them.
#[tokio::test(start_paused = true)]
async fn a_finished_hosts_facts_are_let_go_unless_hostvars_is_mentioned() {
    for (mentions, expected) in [(true, "fact"), (false, "gone")] {
        let fleet = FakeFleet::new(|_, _| FakeReply::ok(""));
        let fact = task("fact", "set_fact", json!({"f": "fact"}));
        let read = task(
            "read",
            "assert",
            json!({"that": [format!(
                "inventory_hostname == 'ex01' or hostvars['ex01'].f | default('gone') == '{expected}'"
            )]}),
        );
        let mut p = play(vec![fact, read]);
        p.serial = vec![BatchSize::Count(1)];
        let out = run_playbook_on(
            vec![p],
            mentions,
            inventory(2),
            RunOptions::default(),
            Arc::clone(&fleet),
            Interrupt::default(),
        )
        .await;
        assert_eq!(
            statuses(&out.events, "ex02"),
            [
                ("fact".into(), TaskStatus::Ok),
                ("read".into(), TaskStatus::Ok)
            ],
            "mentions_hostvars {mentions}: {:?}",
            out.events
        );
    }
}
