//! Detached steps against the lab: an update runs as a scheduled task on the host, so the
//! task's timeout only stops salve *waiting* — Setup is never killed — and the next run
//! re-attaches to the task and reads its result instead of installing a second time.

use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, salve_run};

// 2019 CU7 with a 60-minute CU to CU10 at 600 simulated seconds per second: 6 s of real time.
const ONE_HOST: &str =
    "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.721.2]\n";

fn playbook(timeout: &str) -> String {
    format!(
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{{{ salve_update_sources }}}}\"\n        license_switch: \"{{{{ salve_license_switch | default(none) }}}}\"\n        ad_prepared: true\n      register: step\n      timeout: {timeout}\n"
    )
}

fn finished<'a>(events: &'a [Value], task: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["event"] == "task_finished" && e["task"] == task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_leaves_setup_running_and_the_next_run_reattaches() {
    let lab = Lab::start(63, ONE_HOST).await;
    let inventory = lab.inventory().write();

    // The task gives up waiting after 2 s; Setup needs 6.
    let short = lab.write("short.yml", &playbook("2s"));
    let (_, events, all) = salve_run(&short, &inventory, &[]).await;
    let update = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(update["status"], "interrupted", "{all}");
    let msg = update["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("left alone"), "{msg}");
    assert!(msg.contains("re-attaches"), "{msg}");

    let log = || lab.fleet.log();
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        1
    );
    // Setup was not killed: it finishes on its own.
    let started = std::time::Instant::now();
    let update_job = |e: &LabEvent| matches!(e, LabEvent::JobFinished { script_id, .. } if script_id == "exchange_update");
    while log().count("t-ex01", update_job) == 0 {
        assert!(started.elapsed().as_secs() < 60, "the task never finished");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallFailed { .. })),
        0,
        "Setup was interrupted"
    );
    // Setup restarted WinRM half-way; the task, outside every WinRM shell, went on.
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::WinRmRestarted { .. })),
        1
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert!(
        state.services.iter().all(|s| s.start_type != "Disabled"),
        "services left disabled: {:?}",
        state.services
    );

    // The next run finds the finished task, reads its result and removes it; nothing is
    // installed a second time.
    let long = lab.write("long.yml", &playbook("2h"));
    let (code, events, all) = salve_run(&long, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    let update = finished(&events, "update").unwrap();
    assert_eq!(update["status"], "changed", "{all}");
    assert!(
        update["msg"].as_str().unwrap().contains("started earlier"),
        "{update}"
    );
    assert_eq!(
        log().count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        1,
        "a second install was started"
    );
    assert_eq!(
        log().count(
            "t-ex01",
            |e| matches!(e, LabEvent::JobRemoved { script_id, .. } if script_id == "exchange_update")
        ),
        1
    );
    assert!(lab.fleet.state("t-ex01").unwrap().jobs.is_empty());
}

/// Run shipped script `id` on `host` as salve delivers it; returns its answer.
async fn answer(host: &salve_lab::fleet::LabHost, id: &str, args: Value) -> Value {
    let (answer, stderr) = run(host, id, args).await;
    answer.unwrap_or_else(|| panic!("no answer from {id}: {stderr}"))
}

/// Run shipped script `id` on `host` as salve delivers it: its answer, if any, and stderr.
async fn run(host: &salve_lab::fleet::LabHost, id: &str, args: Value) -> (Option<Value>, String) {
    let script = salve::script::Script::shipped(id, "", args);
    let process = crate::lab_support::spawn_delivered(host, &script);
    let (out, err, _) = salve_lab::process::collect(process).await;
    let answer =
        salve::script::extract_result(&String::from_utf8(out).unwrap()).map(Result::unwrap);
    (answer, String::from_utf8_lossy(&err).into_owned())
}

/// Windows' double hop, as the lab models it: a WinRM (network) logon holds no credentials for
/// another machine, so a package on a share is out of its reach; a task registered with an
/// account's password has them; SYSTEM does not (the share does not admit the computer account);
/// and Register-ScheduledTask refuses a wrong password.
#[tokio::test(start_paused = true)]
async fn a_share_is_out_of_reach_of_a_network_logon_and_of_system_but_not_of_become() {
    use base64::Engine as _;
    let fleet = crate::lab_support::fleet(ONE_HOST);
    let host = fleet.host("t-ex01").unwrap();
    let su = serde_json::json!({"kind": "su", "source": "\\\\fs01\\exchange\\su.msp",
        "sha256": "ab".repeat(32), "kb": "KB5000871", "target_build": "15.2.721.13"});

    let in_shell = answer(host, "exchange_update", su.clone()).await;
    assert_eq!(in_shell["success"], false, "{in_shell}");
    assert!(
        in_shell["reason"].as_str().unwrap().contains("is denied"),
        "{in_shell}"
    );

    let script = base64::engine::general_purpose::STANDARD
        .encode(salve::script::Script::shipped("exchange_update", "", su).render());
    let start = |job: &str, user: Option<&str>, password: Option<&str>| {
        serde_json::json!({"action": "start", "job": job, "script_id": "exchange_update",
            "script": script, "become_user": user, "become_password": password})
    };
    let poll = async |job: &str| loop {
        let a = answer(
            host,
            "job_poll",
            serde_json::json!({"job": job, "offset": 0}),
        )
        .await;
        if a["state"] == "finished" {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    };
    let update_answer = |polled: &Value| {
        salve::script::extract_result(&polled["output"].as_str().unwrap().replace("\r\n", "\n"))
            .expect("the task's answer")
            .unwrap()
    };

    let (wrong, stderr) = run(
        host,
        "job_control",
        start("salve-t-1", Some("salve-lab"), Some("not-the-password")),
    )
    .await;
    assert!(wrong.is_none(), "{wrong:?}");
    assert!(stderr.contains("password is incorrect"), "{stderr}");

    let system = answer(host, "job_control", start("salve-t-2", None, None)).await;
    assert_eq!(system["run_as"], "SYSTEM");
    let as_system = update_answer(&poll("salve-t-2").await);
    assert_eq!(as_system["success"], false, "{as_system}");

    let (user, password) = fleet.core().credentials();
    let with_become = answer(
        host,
        "job_control",
        start("salve-t-3", Some(user), Some(password)),
    )
    .await;
    assert_eq!(with_become["started"], true, "{with_become}");
    let installed = update_answer(&poll("salve-t-3").await);
    assert_eq!(installed["success"], true, "{installed}");
}

/// Exchange Setup restarts WinRM half-way through a CU (the lab's rule, after ExchangeDsc's
/// reason for running Setup from a scheduled task). Setup started inside a WinRM shell, as salve
/// ran it before detached steps, dies with the shell and leaves the server broken: Setup's log
/// ends unfinished and the Exchange services stay Disabled. The same CU as a detached task
/// survives (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_run_inside_a_winrm_shell_dies_when_setup_restarts_winrm() {
    use salve::transport::RunRequest;

    let lab = Lab::start(180, ONE_HOST).await;
    let transport = crate::shell_quota::winrm_to(&lab, 0).await;
    // 2019 CU7 to CU15, downloaded by the host itself (no share: no double hop).
    let script = crate::shell_quota::cu15();
    let ran = transport
        .run(RunRequest::new(script, std::time::Duration::from_secs(60)))
        .await;
    let log = lab.fleet.log();
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::WinRmRestarted { .. })),
        1,
        "{ran:?}"
    );
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        0,
        "{ran:?}"
    );
    assert!(
        log.count("t-ex01", |e| matches!(
            e,
            LabEvent::InstallFailed { reason, .. } if reason.contains("Setup was interrupted")
        )) == 1,
        "{ran:?}"
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert!(
        state.services.iter().any(|s| s.start_type == "Disabled"),
        "services: {:?}",
        state.services
    );
}

/// Free-space preflight: a 6 GB ISO for a drive with 7 GB free would leave it nearly full (the
/// lab, like Windows, writes a copy until the disk is full and fails), so the update script
/// refuses before copying anything, naming the sizes; the drive keeps its free space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iso_that_would_fill_the_drive_is_refused_before_copying() {
    let lab = Lab::start(
        183,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.721.2]\nhosts:\n  t-ex01: {free_disk_gb: 7}\n",
    )
    .await;
    let inventory = lab.inventory().write();
    let playbook = lab.write(
        "low.yml",
        "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{ salve_update_sources }}\"\n        license_switch: \"{{ salve_license_switch | default(none) }}\"\n        ad_prepared: true\n        min_free_disk_gb: 1\n",
    );
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_ne!(code, 0, "{all}");
    let update = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(update["status"], "failed", "{all}");
    let msg = update["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("needs 6.0 GB on C:, which has 7.0 GB free")
            && msg.contains("nothing was copied"),
        "{msg}"
    );
    let state = lab.fleet.state("t-ex01").unwrap();
    assert_eq!(state.free_disk_bytes, 7 * 1024 * 1024 * 1024);
    assert!(state.downloads.is_empty(), "{:?}", state.downloads);
    assert_eq!(
        lab.fleet
            .log()
            .count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        0
    );
}

/// A server that reaches the web only through a proxy: a `url:` source without `proxy:` fails
/// as Invoke-WebRequest does there, and the same source with the proxy installs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_source_goes_through_the_proxy_it_names() {
    let lab = Lab::start(
        185,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.1544.36]\nhosts:\n  t-ex01: {web_proxy: 'http://proxy.lab.test:8080'}\n",
    )
    .await;
    let sha = "ab".repeat(32);
    let source = |proxy: &str| {
        format!(
            "{{KB5121575: {{url: 'https://download.lab.test/Exchange2019-KB5121575.msp', sha256: '{sha}'{proxy}}}}}"
        )
    };
    let update = "- hosts: all\n  tasks:\n    - name: update\n      exchange_update:\n        kb: KB5121575\n        sources: \"{{ pkg }}\"\n";
    let playbook = lab.write("url.yml", update);
    let direct = lab
        .inventory()
        .host_var("t-ex01", "pkg", &source(""))
        .write();
    let (code, events, all) = salve_run(&playbook, &direct, &[]).await;
    assert_ne!(code, 0, "{all}");
    let failed = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(failed["status"], "failed", "{all}");
    assert!(
        failed["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("Unable to connect to the remote server"),
        "{failed}"
    );
    let proxied = lab
        .inventory()
        .host_var(
            "t-ex01",
            "pkg",
            &source(", proxy: 'http://proxy.lab.test:8080'"),
        )
        .write();
    let (code, events, all) = salve_run(&playbook, &proxied, &[]).await;
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        finished(&events, "update").unwrap()["status"],
        "changed",
        "{all}"
    );
    assert_eq!(
        lab.fleet
            .log()
            .count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
}

/// Ansible's `become` keywords on a play or task choose the account detached steps run as, over
/// the inventory's: `become: false` runs them as SYSTEM, so a package on a share is refused
/// before anything starts (the double hop); the inventory's account, inherited, reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_become_chooses_the_account_of_its_detached_steps() {
    let lab = Lab::start(186, ONE_HOST).await;
    let inventory = lab.inventory().write();
    let with = |become_: &str| {
        format!(
            "- hosts: all\n  {become_}tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{{{ salve_update_sources }}}}\"\n        license_switch: \"{{{{ salve_license_switch | default(none) }}}}\"\n        ad_prepared: true\n"
        )
    };
    let off = lab.write("off.yml", &with("become: false\n  "));
    let (code, events, all) = salve_run(&off, &inventory, &[]).await;
    assert_ne!(code, 0, "{all}");
    let update = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(update["status"], "failed", "{all}");
    assert!(
        update["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("double hop"),
        "{update}"
    );
    assert_eq!(
        lab.fleet
            .log()
            .count("t-ex01", |e| matches!(e, LabEvent::JobStarted { .. })),
        0
    );
    let inherited = lab.write("on.yml", &with(""));
    let (code, events, all) = salve_run(&inherited, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        finished(&events, "update").unwrap()["status"],
        "changed",
        "{all}"
    );
}

/// A detached step runs at normal priority: Task Scheduler's default (7) would start Setup
/// below normal CPU priority with very low I/O priority (TaskSettings.Priority).
#[test]
fn detached_tasks_are_registered_at_normal_priority() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/job_control.ps1"),
    )
    .unwrap();
    let settings = text
        .lines()
        .find(|l| l.contains("New-ScheduledTaskSettingsSet"))
        .expect("job_control registers its task with a settings set");
    assert!(settings.contains("-Priority 4"), "{settings}");
}

/// A task's `poll` (Ansible's keyword) is the longest pause between looks at its detached step:
/// two servers install the same 2-hour CU (12 s here), one looked at every second at most, the
/// other every 20 s at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_poll_sets_how_often_salve_looks_at_its_detached_step() {
    let lab = Lab::start(
        190,
        "seed: 5\ntime_scale: 600\ndurations: {cu_minutes: 120}\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.721.2]\n",
    )
    .await;
    let inventory = lab.inventory().write();
    let play = |host: &str, poll: u32| {
        format!(
            "- hosts: {host}\n  tasks:\n    - name: update\n      exchange_update:\n        target: path\n        sources: \"{{{{ salve_update_sources }}}}\"\n        license_switch: \"{{{{ salve_license_switch | default(none) }}}}\"\n        ad_prepared: true\n      poll: {poll}\n"
        )
    };
    let pb = lab.write(
        "poll.yml",
        &format!("{}{}", play("t-ex01", 1), play("t-ex02", 20)),
    );
    let (code, _, all) = salve_run(&pb, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    let polls = |host: &str| {
        lab.fleet.log().count(
            host,
            |e| matches!(e, LabEvent::ScriptStarted { id } if id == "job_poll"),
        )
    };
    let (often, seldom) = (polls("t-ex01"), polls("t-ex02"));
    assert!(
        often >= seldom + 4,
        "poll 1 looked {often} times, poll 20 {seldom} times"
    );
}

/// The script ids a host was asked to run, in order.
fn scripts_run(lab: &Lab, host: &str) -> Vec<String> {
    lab.fleet
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.host == host)
        .filter_map(|e| match e.event {
            LabEvent::ScriptStarted { id } => Some(id),
            _ => None,
        })
        .collect()
}

/// A credentialed read is one WinRM command: `job_control` registers the task, waits on the
/// host while it runs, answers with its output and removes it. Before, each read was a start,
/// a poll or two and a removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_read_is_started_answered_and_removed_in_one_command() {
    let lab = Lab::start(191, ONE_HOST).await;
    let inventory = lab.inventory().write();
    let pb = lab.write(
        "reads.yml",
        "- hosts: all\n  tasks:\n    - name: facts\n      exchange_facts: {}\n    - name: health\n      exchange_health: {}\n    - name: verify\n      exchange_verify: {}\n",
    );
    let (code, events, all) = salve_run(&pb, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    for task in ["facts", "health", "verify"] {
        assert_eq!(finished(&events, task).unwrap()["status"], "ok", "{all}");
    }
    let scripts = scripts_run(&lab, "t-ex01");
    assert_eq!(
        scripts,
        ["job_control", "job_control", "job_control"],
        "one command per read (the read itself runs as the task, outside the session)"
    );
    let log = lab.fleet.log();
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::JobRemoved { .. })),
        3
    );
    assert!(lab.fleet.state("t-ex01").unwrap().jobs.is_empty());
}

/// A read still running when the start's wait on the host ends is polled, and the poll that
/// finds it finished removes it: no separate removal. A server booted a moment ago, its
/// Automatic (Delayed Start) service still stopped for 4 minutes (4 s here, as salve starts
/// in about one): verify waits for it, longer than
/// the start waits (10 s, `detached::WAIT_ON_HOST`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_outlasts_the_wait_is_removed_by_its_last_poll() {
    let lab = Lab::start(
        192,
        "seed: 5\ntime_scale: 60\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.721.2]\n",
    )
    .await;
    let core = lab.fleet.core();
    let now = core.clock.now();
    core.with_host(core.index("t-ex01").unwrap(), |s| {
        let service = "MSExchangeDiagnostics";
        s.boot_time = now;
        s.delayed_start = vec![service.to_string()];
        s.delayed_start_at = Some(now + std::time::Duration::from_secs(240));
        let diag = s.services.iter_mut().find(|x| x.name == service).unwrap();
        assert_eq!(diag.start_type, "Automatic");
        diag.status = "Stopped".into();
    });
    let inventory = lab.inventory().write();
    let pb = lab.write(
        "verify.yml",
        "- hosts: all\n  tasks:\n    - name: verify\n      exchange_verify: {}\n",
    );
    let (code, events, all) = salve_run(&pb, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        finished(&events, "verify").unwrap()["status"],
        "ok",
        "{all}"
    );
    let scripts = scripts_run(&lab, "t-ex01");
    assert_eq!(scripts[0], "job_control", "{scripts:?}");
    assert!(
        scripts.len() > 1 && scripts[1..].iter().all(|s| s == "job_poll"),
        "polled until it finished, no separate removal: {scripts:?}"
    );
    let log = lab.fleet.log();
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::JobRemoved { .. })),
        1
    );
    assert!(lab.fleet.state("t-ex01").unwrap().jobs.is_empty());
}

/// The answer to starting an update is lost after the command reached the server (the
/// connection drops while the start's answer is on its way, as when Setup restarts WinRM):
/// Setup is running, so salve looks for the task and waits for it. It neither fails the step
/// (a playbook's rescue would take the server out of maintenance under a running Setup) nor
/// starts Setup a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_starting_setup_is_followed_by_looking_for_the_task() {
    let lab = Lab::start(
        193,
        "seed: 5\ntime_scale: 600\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.721.2, 15.2.721.2]\n",
    )
    .await;
    let inventory = lab.inventory().write();
    let pb = lab.write("update.yml", &playbook("2h"));
    // Which of a host's commands starts the update: counted on t-ex02, run without a fault.
    let (code, _, all) = salve_run(&pb, &inventory, &["--limit", "t-ex02"]).await;
    assert_eq!(code, 0, "{all}");
    let mut commands = 0;
    let mut start = None;
    for e in lab
        .fleet
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.host == "t-ex02")
    {
        match e.event {
            LabEvent::Protocol {
                event: salve_lab::host_api::ProtocolEvent::CommandStarted { .. },
            } => commands += 1,
            LabEvent::JobStarted { script_id, .. } if script_id == "exchange_update" => {
                start.get_or_insert(commands);
            }
            _ => {}
        }
    }
    let start = start.unwrap_or_else(|| panic!("no update started: {all}"));
    let core = lab.fleet.core();
    core.with_host(core.index("t-ex01").unwrap(), |s| {
        s.faults.drop_mid_command = Some(start);
    });

    let (code, events, all) = salve_run(&pb, &inventory, &["--limit", "t-ex01"]).await;
    let log = lab.fleet.log();
    assert_eq!(code, 0, "{all}");
    let update = finished(&events, "update").unwrap_or_else(|| panic!("{all}"));
    assert_eq!(update["status"], "changed", "{all}");
    assert!(
        all.contains("was lost"),
        "the lost answer is reported: {all}"
    );
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::InstallStarted { .. })),
        1,
        "Setup started once"
    );
    assert_eq!(
        log.count("t-ex01", |e| matches!(e, LabEvent::Installed { .. })),
        1
    );
    assert!(lab.fleet.state("t-ex01").unwrap().jobs.is_empty());
}
