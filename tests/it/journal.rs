//! The run journal: scripted run events through the journal reporter become rows; intents are
//! durable before `begin_intent` returns (read back through a second connection); `salve runs
//! list` and `salve runs show` print what was recorded (snapshots).

use std::path::Path;
use std::process::Command;

use salve::journal::{Journal, JournalReporter, RunMeta, StepKey, StepState};
use salve::report::Reporter;
use serde_json::json;

/// Feed the scripted run of the report tests through a journal reporter, as `salve run` would
/// (events on a blocking thread, the writer on the runtime).
async fn record_scripted_run(dir: &Path) -> Journal {
    let journal = Journal::open(dir).await.unwrap();
    let meta = RunMeta {
        playbook_digest: Some("ab".repeat(32)),
        inventory_digest: Some("cd".repeat(32)),
        plan_digest: None,
        ..RunMeta::default()
    };
    let mut reporter =
        JournalReporter::spawn(journal.clone(), meta, &tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        for event in crate::report::scripted_run() {
            reporter.event(&event);
        }
        reporter.finish()
    })
    .await
    .unwrap()
    .unwrap();
    journal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_become_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = record_scripted_run(tmp.path()).await;
    let runs = journal.runs().await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.id, "r-0001");
    assert_eq!(run.status, "interrupted");
    assert_eq!(run.exit_code, Some(4));
    assert!(run.finished_at.is_some());
    assert_eq!(run.playbook_digest.as_deref(), Some(&*"ab".repeat(32)));

    let detail = journal.run("r-0001").await.unwrap();
    assert!(!detail.steps.is_empty());
    // Every step that finished has an outcome with its status.
    for step in &detail.steps {
        if step.state != StepState::Started {
            let status = step.outcome.as_ref().and_then(|o| o.get("status"));
            assert!(status.is_some(), "{step:?}");
        }
    }
    // Two plays: the second play's steps carry play index 1.
    assert!(
        detail.steps.iter().any(|s| s.play == 1),
        "{:#?}",
        detail.steps
    );
    // Streamed output is kept with its step.
    assert!(
        detail.steps.iter().any(|s| s.output.is_some()),
        "{:#?}",
        detail.steps
    );
    let states: Vec<StepState> = detail.steps.iter().map(|s| s.state).collect();
    for wanted in [StepState::Done, StepState::Failed, StepState::Interrupted] {
        assert!(
            states.contains(&wanted),
            "{wanted:?} missing from {states:?}"
        );
    }
    let host = &detail.steps[0].host;
    let completed = journal.completed_steps("r-0001", host).await.unwrap();
    let done_here = detail
        .steps
        .iter()
        .filter(|s| &s.host == host && matches!(s.state, StepState::Done | StepState::Skipped))
        .count();
    assert_eq!(completed.len(), done_here);
}

#[tokio::test]
async fn an_intent_is_on_disk_before_begin_intent_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = Journal::open(tmp.path()).await.unwrap();
    let step = StepKey {
        play: 0,
        task_index: 3,
    };
    let id = writer
        .begin_intent("r-7", "ex01.acme.local", step, "install KB5000871")
        .await
        .unwrap();
    // A second, independent connection (as after a crash and restart) sees it.
    let reader = Journal::open(tmp.path()).await.unwrap();
    let open = reader.open_intents("r-7").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, id);
    assert_eq!(open[0].action, "install KB5000871");
    assert_eq!((open[0].play, open[0].task_index), (0, 3));
    writer
        .complete_intent(&id, &json!({"rc": 0, "admin_password": "hunter2"}))
        .await
        .unwrap();
    assert!(reader.open_intents("r-7").await.unwrap().is_empty());
    let detail = reader.run("r-7").await.err();
    assert!(detail.is_some(), "no run row was recorded for r-7");
    let text = std::fs::read(tmp.path().join("journal.sqlite-wal"))
        .into_iter()
        .chain(std::fs::read(tmp.path().join("journal.sqlite")))
        .flatten()
        .collect::<Vec<u8>>();
    assert!(
        !text.windows(7).any(|w| w == b"hunter2"),
        "secrets are redacted before they reach the journal"
    );
}

fn salve_runs(state: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .arg("runs")
        .args(args)
        .env("SALVE_STATE_DIR", state)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = record_scripted_run(tmp.path()).await;
    journal
        .begin_intent(
            "r-0001",
            "ex02.acme.local",
            StepKey {
                play: 1,
                task_index: 1,
            },
            "install SU",
        )
        .await
        .unwrap();
    journal.close().await;
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    settings.add_filter(r#""id": "[0-9a-f-]{36}""#, r#""id": "[uuid]""#);
    let (code, list) = salve_runs(tmp.path(), &["list"]);
    assert_eq!(code, 0, "{list}");
    let (code, show) = salve_runs(tmp.path(), &["show", "r-00"]);
    assert_eq!(code, 0, "{show}");
    let (code, json) = salve_runs(tmp.path(), &["show", "r-0001", "--json"]);
    assert_eq!(code, 0, "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["run"]["id"], "r-0001");
    let (code, missing) = salve_runs(tmp.path(), &["show", "nope"]);
    assert_eq!(code, 3, "{missing}");
    assert!(missing.contains("no run `nope`"), "{missing}");
    settings.bind(|| {
        insta::assert_snapshot!("runs_list", list);
        insta::assert_snapshot!("runs_show", show);
    });
}
