//! Human reporters rendered into buffers from a scripted run: plain output and the progress
//! reporter's permanent lines (snapshots), and reporters adding nothing the events lack.

use std::collections::BTreeMap;

use indicatif::ProgressDrawTarget;
use salve::events::{
    Event, HostCounts, HostOutcome, HostSummary, InterruptStage, PlayStop, RunSummary, Stream,
    TaskStatus,
};
use salve::report::{
    JsonLinesReporter, Palette, PlainReporter, ProgressReporter, ReportDirReporter, Reporter,
    render_recap,
};
use serde_json::json;

fn started(host: &str, tenant: &str, task: &str, index: usize) -> Event {
    Event::TaskStarted {
        play_index: 0,
        host: host.into(),
        tenant: Some(tenant.into()),
        task: task.into(),
        task_index: index,
        item: None,
    }
}

/// `at` is `(host, tenant)`.
fn finished(
    (host, tenant): (&str, &str),
    task: &str,
    index: usize,
    status: TaskStatus,
    msg: Option<&str>,
    ms: u64,
    result: serde_json::Value,
) -> Event {
    Event::TaskFinished {
        play_index: 0,
        host: host.into(),
        tenant: Some(tenant.into()),
        task: task.into(),
        task_index: index,
        status,
        msg: msg.map(Into::into),
        duration_ms: ms,
        result,
    }
}

fn summary_host(host: &str, tenant: &str, counts: HostCounts, outcome: HostOutcome) -> HostSummary {
    HostSummary {
        host: host.into(),
        tenant: Some(tenant.into()),
        counts,
        outcome,
        left_in: None,
    }
}

/// Two plays, three hosts in two tenants; every task status; a loop, streamed output, a retry, a
/// slow step, a dropped host, a stopped play, an interrupt and a warning.
pub fn scripted_run() -> Vec<Event> {
    let read = "Read Exchange build";
    let rewrite = "Apply URL rewrite mitigation";
    let su = "Install security update";
    let mut ex02_counts = HostCounts {
        ok: 2,
        changed: 1,
        interrupted: 1,
        ..Default::default()
    };
    ex02_counts.skipped = 0;
    let mut ex02 = summary_host(
        "ex02.acme.local",
        "acme",
        ex02_counts,
        HostOutcome::Interrupted,
    );
    ex02.left_in = Some(su.into());
    let summary = RunSummary {
        hosts: vec![
            summary_host(
                "ex01.acme.local",
                "acme",
                HostCounts {
                    ok: 1,
                    skipped: 1,
                    failed: 1,
                    ..Default::default()
                },
                HostOutcome::Failed,
            ),
            ex02,
            summary_host(
                "mail.globex.test",
                "globex",
                HostCounts {
                    unreachable: 1,
                    ..Default::default()
                },
                HostOutcome::Unreachable,
            ),
        ],
        tenants: BTreeMap::from([
            (
                "acme".to_string(),
                BTreeMap::from([(HostOutcome::Failed, 1), (HostOutcome::Interrupted, 1)]),
            ),
            (
                "globex".to_string(),
                BTreeMap::from([(HostOutcome::Unreachable, 1)]),
            ),
        ]),
        interrupted: true,
        duration_ms: 754_321,
        exit_code: 4,
    };
    let all = vec![
        "ex01.acme.local".to_string(),
        "ex02.acme.local".into(),
        "mail.globex.test".into(),
    ];
    let events = vec![
        Event::RunStarted {
            run_id: "r-0001".into(),
            playbook: "playbooks/patch.yml".into(),
            hosts: all.clone(),
            tenants: vec!["acme".into(), "globex".into()],
            check_mode: false,
            started_at: "2024-03-01T10:00:00Z".into(),
        },
        Event::PlayStarted {
            play_index: 0,
            play: "Assess".into(),
            hosts: all.clone(),
            tasks: 2,
            batches: vec![all.clone()],
        },
        Event::BatchStarted {
            play: "Assess".into(),
            batch: 1,
            hosts: all.clone(),
        },
        started("ex01.acme.local", "acme", read, 0),
        started("ex02.acme.local", "acme", read, 0),
        started("mail.globex.test", "globex", read, 0),
        finished(
            ("ex01.acme.local", "acme"),
            read,
            0,
            TaskStatus::Ok,
            None,
            1_200,
            json!({"build": "15.1.2507.6"}),
        ),
        finished(
            ("ex02.acme.local", "acme"),
            read,
            0,
            TaskStatus::Ok,
            None,
            1_350,
            json!({"build": "15.2.1118.7"}),
        ),
        finished(
            ("mail.globex.test", "globex"),
            read,
            0,
            TaskStatus::Unreachable,
            Some("winrm: connection refused (127.0.0.1:5986)"),
            3_001,
            serde_json::Value::Null,
        ),
        Event::HostDropped {
            host: "mail.globex.test".into(),
            tenant: Some("globex".into()),
            status: TaskStatus::Unreachable,
            task: read.into(),
            msg: "winrm: connection refused (127.0.0.1:5986)".into(),
        },
        started("ex01.acme.local", "acme", rewrite, 1),
        finished(
            ("ex01.acme.local", "acme"),
            rewrite,
            1,
            TaskStatus::Skipped,
            Some("already mitigated"),
            10,
            json!({}),
        ),
        Event::TaskStarted {
            play_index: 0,
            host: "ex02.acme.local".into(),
            tenant: Some("acme".into()),
            task: rewrite.into(),
            task_index: 1,
            item: Some(json!("autodiscover")),
        },
        finished(
            ("ex02.acme.local", "acme"),
            rewrite,
            1,
            TaskStatus::Changed,
            None,
            2_500,
            json!({"rule": "added"}),
        ),
        Event::TaskStarted {
            play_index: 0,
            host: "ex02.acme.local".into(),
            tenant: Some("acme".into()),
            task: rewrite.into(),
            task_index: 1,
            item: Some(json!({"site": "ecp", "mode": "block"})),
        },
        finished(
            ("ex02.acme.local", "acme"),
            rewrite,
            1,
            TaskStatus::Ok,
            None,
            900,
            json!({"rule": "present"}),
        ),
        Event::PlayFinished {
            play_index: 0,
            play: "Assess".into(),
            stopped: None,
        },
        Event::PlayStarted {
            play_index: 1,
            play: "Install SU".into(),
            hosts: all[..2].to_vec(),
            tasks: 1,
            batches: vec![vec![all[0].clone()], vec![all[1].clone()]],
        },
        Event::BatchStarted {
            play: "Install SU".into(),
            batch: 1,
            hosts: vec![all[0].clone()],
        },
        started("ex01.acme.local", "acme", su, 0),
        Event::TaskOutput {
            host: "ex01.acme.local".into(),
            task: su.into(),
            stream: Stream::Stdout,
            text: "Extracting KB5049233...".into(),
        },
        Event::TaskOutput {
            host: "ex01.acme.local".into(),
            task: su.into(),
            stream: Stream::Stdout,
            text: "Installing: 40%".into(),
        },
        Event::TaskOutput {
            host: "ex01.acme.local".into(),
            task: su.into(),
            stream: Stream::Stdout,
            text: "\u{1b}[33mWaiting for services\u{1b}[0m".into(),
        },
        Event::SlowStep {
            host: "ex01.acme.local".into(),
            task: su.into(),
            elapsed_ms: 600_000,
        },
        Event::TaskRetry {
            host: "ex01.acme.local".into(),
            task: su.into(),
            attempt: 2,
            of: 3,
            msg: "another installation is in progress".into(),
        },
        Event::TaskOutput {
            host: "ex01.acme.local".into(),
            task: su.into(),
            stream: Stream::Stderr,
            text: "msiexec returned 1603".into(),
        },
        finished(
            ("ex01.acme.local", "acme"),
            su,
            0,
            TaskStatus::Failed,
            Some("setup exited with 1603 <see ExchangeSetup.log>"),
            912_345,
            json!({"exit_code": 1603, "log": "C:\\ExchangeSetupLogs\\ExchangeSetup.log"}),
        ),
        Event::HostDropped {
            host: "ex01.acme.local".into(),
            tenant: Some("acme".into()),
            status: TaskStatus::Failed,
            task: su.into(),
            msg: "setup exited with 1603".into(),
        },
        Event::BatchStarted {
            play: "Install SU".into(),
            batch: 2,
            hosts: vec![all[1].clone()],
        },
        started("ex02.acme.local", "acme", su, 0),
        Event::Interrupt {
            stage: InterruptStage::Draining,
            in_flight: vec![("ex02.acme.local".into(), su.into())],
        },
        Event::Interrupt {
            stage: InterruptStage::Aborting,
            in_flight: vec![("ex02.acme.local".into(), su.into())],
        },
        finished(
            ("ex02.acme.local", "acme"),
            su,
            0,
            TaskStatus::Interrupted,
            Some("cancelled by Ctrl-C"),
            45_000,
            serde_json::Value::Null,
        ),
        Event::PlayFinished {
            play_index: 1,
            play: "Install SU".into(),
            stopped: Some(PlayStop::Interrupted),
        },
        Event::Warning {
            message: "ex02.acme.local may be left mid-update; run the playbook again".into(),
        },
        Event::RunFinished { summary },
    ];
    in_plays(events)
}

/// Give each task event the index of the play it falls in, as the runner does.
fn in_plays(mut events: Vec<Event>) -> Vec<Event> {
    let mut current = 0;
    for event in &mut events {
        match event {
            Event::PlayStarted { play_index, .. } => current = *play_index,
            Event::TaskStarted { play_index, .. } | Event::TaskFinished { play_index, .. } => {
                *play_index = current
            }
            _ => {}
        }
    }
    events
}

/// Durations vary with the run; the snapshot shows where they are, not what they are.
fn duration_filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"\b\d+(\.\d)?s\b|\b\d+m\d\ds\b|\b\d+h\d\dm\b", "[DUR]")]
}

fn render<R: Reporter>(mut reporter: R, events: &[Event]) -> R {
    for e in events {
        reporter.event(e);
    }
    reporter.finish().unwrap();
    reporter
}

#[test]
fn plain_output_of_a_scripted_run() {
    let reporter = render(
        PlainReporter::new(Vec::new(), Palette::plain()),
        &scripted_run(),
    );
    let text = String::from_utf8(reporter.into_inner()).unwrap();
    insta::with_settings!({ filters => duration_filters() }, {
        insta::assert_snapshot!(text);
    });
}

#[test]
fn progress_reporter_prints_only_notable_lines() {
    let reporter =
        ProgressReporter::new(ProgressDrawTarget::hidden(), Vec::new(), Palette::plain());
    let text = String::from_utf8(render(reporter, &scripted_run()).into_inner()).unwrap();
    assert!(
        !text.contains("ok: ["),
        "ok results belong in the bars: {text}"
    );
    assert!(!text.contains("skipped: ["), "{text}");
    insta::with_settings!({ filters => duration_filters() }, {
        insta::assert_snapshot!(text);
    });
}

#[test]
fn plain_output_is_coloured_only_when_asked() {
    let coloured = render(
        PlainReporter::new(Vec::new(), Palette::new(true)),
        &scripted_run(),
    );
    let plain = render(
        PlainReporter::new(Vec::new(), Palette::plain()),
        &scripted_run(),
    );
    let coloured = String::from_utf8(coloured.into_inner()).unwrap();
    let plain = String::from_utf8(plain.into_inner()).unwrap();
    assert!(coloured.contains("\u{1b}["));
    // Remote escape sequences are stripped in both.
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert_eq!(console::strip_ansi_codes(&coloured), plain);
}

#[test]
fn both_human_modes_end_with_the_recap() {
    let events = scripted_run();
    let Some(Event::RunFinished { summary }) = events.last() else {
        panic!("no summary")
    };
    let recap = render_recap(summary);
    let plain = render(PlainReporter::new(Vec::new(), Palette::plain()), &events);
    let progress =
        ProgressReporter::new(ProgressDrawTarget::hidden(), Vec::new(), Palette::plain());
    let progress = render(progress, &events);
    for out in [plain.into_inner(), progress.into_inner()] {
        assert!(String::from_utf8(out).unwrap().ends_with(&recap));
    }
    insta::assert_snapshot!(recap);
}

/// Reporters print only what events carry: a secret kept out of the events (the runner hands
/// them redacted) stays out of every output, while the redaction marker gets through intact.
#[test]
fn reporters_add_no_secrets() {
    let secret = salve::secret::Secret::new("hunter2-Sup3r".into());
    let mut events = scripted_run();
    events.insert(
        3,
        Event::Warning {
            message: format!("clear-text password in inventory for ex01: {secret}"),
        },
    );
    events.insert(
        4,
        finished(
            ("ex01.acme.local", "acme"),
            "Connect",
            0,
            TaskStatus::Failed,
            Some(&format!("logged on with {secret}")),
            5,
            json!({"password": secret.to_string()}),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = render(PlainReporter::new(Vec::new(), Palette::new(true)), &events).into_inner();
    let progress = render(
        ProgressReporter::new(ProgressDrawTarget::hidden(), Vec::new(), Palette::new(true)),
        &events,
    )
    .into_inner();
    let json = render(JsonLinesReporter::new(Vec::new()), &events).into_inner();
    render(ReportDirReporter::new(dir.path()), &events);
    let mut outputs = vec![plain, progress, json];
    for name in ["report.json", "junit.xml"] {
        outputs.push(std::fs::read(dir.path().join(name)).unwrap());
    }
    for out in outputs {
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("redacted"),
            "the redacted message should be shown: {text}"
        );
    }
}
