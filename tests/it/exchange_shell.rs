//! Exchange management from a logon that can reach Active Directory (issue 16, part D).
//!
//! The lab's rule (`salve_lab::scripts::exchange_shell`): Exchange's cmdlets reach AD, and
//! Exchange's management shell a Remote PowerShell session, as the process's account; a WinRM
//! or SSH network logon holds no credentials for that second hop, so Exchange cannot be managed
//! from it. A scheduled task registered with the `become` account's password can. salve runs
//! its Exchange-cmdlet scripts (facts, health, verify, maintenance) there.

use salve::contract::ScriptId;
use salve::script::{Script, extract_result, shipped_text};
use salve_lab::log::LabEvent;
use serde_json::{Value, json};

use crate::lab_support::{Lab, fleet, salve_run, spawn_delivered};

const DAG: &str = "seed: 21\ntime_scale: 600\ntenants:\n  - name: x\n    hosts: 2\n    builds: [15.2.1544.4]\n    dags: [{name: x-dag1, members: 2, databases: 2}]\n";

/// Run `body` as shipped script `id` with `args` in a WinRM logon: its answer and stderr.
async fn in_session(
    host: &salve_lab::fleet::LabHost,
    id: ScriptId,
    body: &str,
    args: Value,
) -> (Option<Value>, String) {
    let script = Script::shipped(id.as_str(), body, args);
    let (out, err, _) = salve_lab::process::collect(spawn_delivered(host, &script)).await;
    let answer = extract_result(&String::from_utf8(out).unwrap()).map(Result::unwrap);
    (answer, String::from_utf8_lossy(&err).into_owned())
}

/// Run shipped script `id` as a scheduled task under the lab's account; its answer.
async fn as_task(host: &salve_lab::fleet::LabHost, id: ScriptId, user: &str, pw: &str) -> Value {
    use base64::Engine as _;
    let text = Script::shipped(id.as_str(), shipped_text(id), json!({})).render();
    let job = format!("salve-test-{}", id.as_str().replace('_', "-"));
    let start = json!({"action": "start", "job": job, "script_id": id.as_str(),
        "script": base64::engine::general_purpose::STANDARD.encode(text),
        "become_user": user, "become_password": pw});
    let (started, err) = in_session(host, ScriptId::JobControl, "", start).await;
    assert_eq!(started.unwrap_or_default()["started"], true, "{err}");
    loop {
        let (polled, err) = in_session(
            host,
            ScriptId::JobPoll,
            "",
            json!({"job": job, "offset": 0}),
        )
        .await;
        let polled = polled.unwrap_or_else(|| panic!("{err}"));
        if polled["state"] == "finished" {
            let output = polled["output"].as_str().unwrap().replace("\r\n", "\n");
            return extract_result(&output)
                .unwrap_or_else(|| panic!("{output}"))
                .unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// The lab's rule on its own: the shipped facts and health scripts in a WinRM logon cannot
/// manage Exchange (Connect-ExchangeServer's Kerberos error; the AD versions unread), the old
/// snap-in way fails at its first AD read, and the same scripts as a task under an account with
/// its password read roles, DAG and AD versions.
#[tokio::test(start_paused = true)]
async fn exchange_cannot_be_managed_from_a_network_logon_and_can_from_a_credentialed_task() {
    let fleet = fleet(DAG);
    let host = fleet.host("x-ex01").unwrap();

    let facts = shipped_text(ScriptId::ExchangeFacts);
    let (answer, _) = in_session(host, ScriptId::ExchangeFacts, facts, json!({})).await;
    let answer = answer.expect("facts answer");
    let error = answer["exchange_management_error"].as_str().unwrap();
    assert!(
        error.contains("0x8009030e") && error.contains("A specified logon session does not exist"),
        "{error}"
    );
    assert_eq!(answer["roles"], json!([]));
    assert_eq!(answer["ad"], Value::Null);

    let health = shipped_text(ScriptId::ExchangeHealth);
    let (answer, stderr) = in_session(host, ScriptId::ExchangeHealth, health, json!({})).await;
    assert!(answer.is_none(), "{answer:?}");
    assert!(
        stderr.contains("management shell could not be loaded"),
        "{stderr}"
    );

    // Today's scripts before this change loaded the snap-in: its first AD read is refused.
    let snapin = "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction Stop";
    let (answer, _) = in_session(host, ScriptId::ExchangeFacts, snapin, json!({})).await;
    let error = answer.unwrap()["exchange_management_error"].clone();
    assert!(error.as_str().unwrap().contains("000004DC"), "{error}");

    let (user, pw) = fleet.core().credentials();
    let answer = as_task(host, ScriptId::ExchangeFacts, user, pw).await;
    assert_eq!(answer["exchange_management_error"], Value::Null, "{answer}");
    assert_eq!(answer["dag"], "x-dag1");
    assert!(!answer["roles"].as_array().unwrap().is_empty(), "{answer}");
    assert!(answer["ad"]["schema"].is_u64(), "{answer}");
    let health = as_task(host, ScriptId::ExchangeHealth, user, pw).await;
    assert_eq!(health["dag"], "x-dag1", "{health}");
}

/// salve end to end on a DAG member: facts, maintenance in and out (with the health gate) and
/// verify all manage Exchange from the `become` account's task, so they work where the WinRM
/// logon alone cannot. Failed before salve ran these scripts detached: the facts stopped both
/// members with Connect-ExchangeServer's Kerberos error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_maintenance_health_and_verify_manage_exchange_as_the_become_account() {
    let lab = Lab::start(210, DAG).await;
    let inventory = lab.inventory().write();
    let playbook = lab.write(
        "pb.yml",
        "- hosts: all\n  serial: 1\n  tasks:\n    - name: facts\n      exchange_facts: {}\n    \
         - name: enter\n      exchange_maintenance: {state: enter}\n    \
         - name: leave\n      exchange_maintenance: {state: leave}\n    \
         - name: health\n      exchange_health: {}\n    \
         - name: verify\n      exchange_verify: {}\n",
    );
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    for host in ["x-ex01", "x-ex02"] {
        for task in ["facts", "enter", "leave", "health", "verify"] {
            let done = events
                .iter()
                .find(|e| e["event"] == "task_finished" && e["host"] == host && e["task"] == task)
                .unwrap_or_else(|| panic!("{host} {task}: {all}"));
            assert!(
                done["status"] == "ok" || done["status"] == "changed",
                "{host} {task}: {done}"
            );
        }
        // Every Exchange-cmdlet script ran as a task, and salve removed each.
        let log = lab.fleet.log();
        let started = log.count(host, |e| matches!(e, LabEvent::JobStarted { .. }));
        assert!(started >= 5, "{host}: {started} tasks");
        assert_eq!(
            log.count(host, |e| matches!(e, LabEvent::JobRemoved { .. })),
            started
        );
        assert!(lab.fleet.state(host).unwrap().jobs.is_empty());
    }
}

/// `salve check` and `salve plan` refuse, before connecting, a step that manages Exchange on a
/// WinRM host with no account to do it as (none in the inventory, or `become: false`), naming
/// the task, the hosts and the fix; with a become account both go on. Failed before: `check`
/// accepted it, and the run then failed at the first facts read on every host.
#[tokio::test]
async fn check_and_plan_refuse_exchange_steps_where_no_account_can_manage_exchange() {
    use crate::lab_support::salve_with;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let inventory = write(
        "inv.yml",
        "all:\n  vars:\n    ansible_connection: winrm\n    ansible_user: admin\n    \
         ansible_password: env:LAB_PW\n  hosts:\n    ex01: {}\n    ex02: {}\n    \
         ex03: {ansible_become_user: 'CONTOSO\\svc-patch', ansible_become_password: env:LAB_PW}\n",
    );
    let facts = write(
        "facts.yml",
        "- hosts: all\n  tasks:\n    - name: read the facts\n      exchange_facts: {}\n",
    );
    let (code, out, err) = salve_with(&["check", &facts, "-i", &inventory], &[]).await;
    assert_ne!(code, 0, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(text.contains("facts.yml:4:"), "{text}");
    assert!(
        text.contains("`read the facts` manages Exchange") && text.contains("on ex01, ex02"),
        "{text}"
    );
    assert!(!text.contains("ex03"), "{text}");
    assert!(text.contains("set ansible_become_user"), "{text}");

    let plan_out = dir.path().join("plan.json");
    let (code, out, err) = salve_with(
        &[
            "plan",
            &facts,
            "-i",
            &inventory,
            "-o",
            plan_out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("manages Exchange"),
        "{out}{err}"
    );
    assert!(!plan_out.exists());

    // `become: false` takes the account away even where the inventory gives one.
    let system = write(
        "system.yml",
        "- hosts: ex03\n  become: false\n  tasks:\n    - name: health\n      exchange_health: {}\n",
    );
    let (code, out, err) = salve_with(&["check", &system, "-i", &inventory], &[]).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("`become: false`"),
        "{out}{err}"
    );

    let fine = write(
        "fine.yml",
        "- hosts: ex03\n  tasks:\n    - name: facts\n      exchange_facts: {}\n",
    );
    let (code, out, err) = salve_with(&["check", &fine, "-i", &inventory], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
}

/// The text of Exchange's loading, the same in every script that manages Exchange (scripts are
/// standalone files, so each carries it; this keeps them one), from its first line to its throw.
fn loading_block(text: &str) -> Option<String> {
    let start = text.find("if (-not (Get-Command Get-ExchangeServer")?;
    let end = start + text[start..].find("throw \"Exchange's management shell")?;
    Some(
        text[start..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Every script the contract says manages Exchange loads it the supported way, as
/// CSS-Exchange's Confirm-ExchangeShell does (RemoteExchange.ps1, then
/// `Connect-ExchangeServer -Auto -ClientApplication:ManagementShell`; an Edge server's
/// exShell.psc1 snap-ins and Exchange.ps1), with the same text; none adds the management
/// snap-in, which bypasses RBAC; and the lab reads each as loading through Remote PowerShell.
#[test]
fn every_script_that_manages_exchange_loads_it_the_supported_way() {
    use salve_lab::scripts::exchange_shell::Loader;
    let mut blocks = Vec::new();
    for id in ScriptId::ALL {
        let text = shipped_text(id);
        assert!(
            !text.contains("Microsoft.Exchange.Management.PowerShell.SnapIn"),
            "{}: loads the management snap-in",
            id.as_str()
        );
        let block = loading_block(text);
        assert_eq!(block.is_some(), id.manages_exchange(), "{}", id.as_str());
        if let Some(block) = block {
            assert!(
                block.contains(". (Join-Path $env:ExchangeInstallPath 'bin\\RemoteExchange.ps1')")
                    && block.contains(
                        "Connect-ExchangeServer -Auto -ClientApplication:ManagementShell"
                    )
                    && block.contains("'Bin\\exShell.psc1'"),
                "{}: {block}",
                id.as_str()
            );
            assert_eq!(
                Loader::of(text),
                Some(Loader::RemoteShell),
                "{}",
                id.as_str()
            );
            blocks.push((id, block));
        }
    }
    assert_eq!(blocks.len(), 4);
    for (id, block) in &blocks {
        assert_eq!(
            block,
            &blocks[0].1,
            "{} loads Exchange differently",
            id.as_str()
        );
    }
}
