//! What the Exchange modules share: running salve's shipped PowerShell scripts (see
//! [`crate::script::shipped_text`]) on the host and reading their typed answers
//! ([`crate::contract`]), and package sources (`url:` or `unc:` plus `sha256:`) as modules take
//! them.
//!
//! Read-only scripts go through the [`CheckCtx`]'s probe ([`read`], [`facts`]), so `check` can
//! use them; scripts that change the host need the [`HostCtx`]'s link ([`call`]), which only
//! `apply` has.
//!
//! A shipped script answers on one `##salve-result## <json>` line. A script that exits without
//! that line (it failed before it could answer) is a failed task whose message carries the last
//! error line; an answer that does not match the contract is a failed task too. Both are
//! [`Fail::NoAnswer`], which modules turn into their outcome with [`finish`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CheckCtx, HostCtx, ModuleError, Outcome, ProbeRequest};
use crate::contract::{FactsAnswer, ReadOnlyId, ScriptId};
use crate::script::{self, ReadOnlyScript, Script};
use crate::transport::{RunRequest, ScriptOutput};

/// Why a module step could not produce its outcome the normal way.
#[derive(Debug)]
pub enum Fail {
    /// The module could not run (bad arguments, transport failure): an error for the runner.
    Module(ModuleError),
    /// The host answered, but not as the contract says: a failed task with this outcome.
    NoAnswer(Box<Outcome>),
}

impl Fail {
    /// A failed task with this message.
    pub fn failed(msg: impl Into<String>) -> Fail {
        Fail::NoAnswer(Box::new(Outcome::failed(msg)))
    }
}

impl From<ModuleError> for Fail {
    fn from(e: ModuleError) -> Self {
        Fail::Module(e)
    }
}

impl From<crate::transport::TransportError> for Fail {
    fn from(e: crate::transport::TransportError) -> Self {
        Fail::Module(e.into())
    }
}

/// The module's result from a step that may have failed with [`Fail`].
pub fn finish(result: Result<Outcome, Fail>) -> Result<Outcome, ModuleError> {
    match result {
        Ok(o) => Ok(o),
        Err(Fail::NoAnswer(o)) => Ok(*o),
        Err(Fail::Module(e)) => Err(e),
    }
}

/// Parse a module's arguments, naming the field at fault.
pub fn args<T: DeserializeOwned>(args: &Value) -> Result<T, ModuleError> {
    super::args::parse(args).map_err(|p| {
        ModuleError::Args(if p.field.is_empty() {
            p.message
        } else {
            format!("{}: {}", p.field, p.message)
        })
    })
}

/// A shipped script's answer and how the script ended.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub answer: T,
    pub exit_code: i32,
    /// The last non-empty stderr line, if any.
    pub error: Option<String>,
}

/// Run the state-changing shipped script `id` with `request` as `$SalveArgs` and read its
/// answer, within the task's timeout.
pub async fn call<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
) -> Result<Reply<T>, Fail> {
    call_within(ctx, id, request, ctx.timeout).await
}

/// [`call`] with its own time limit.
pub async fn call_within<T: DeserializeOwned>(
    ctx: &HostCtx<'_>,
    id: ScriptId,
    request: &impl Serialize,
    timeout: std::time::Duration,
) -> Result<Reply<T>, Fail> {
    let transport = ctx.link.transport().await?;
    let mut run = RunRequest::new(shipped(id, request)?, timeout);
    run.cancel = ctx.cancel.clone();
    run.output = Some(ctx.output.clone());
    reply(id, transport.run(run).await?)
}

/// The shipped script `id` with `request` as its `$SalveArgs`.
pub fn shipped(id: ScriptId, request: &impl Serialize) -> Result<Script, Fail> {
    Ok(Script::shipped(
        id.as_str(),
        script::shipped_text(id),
        encode(id, request)?,
    ))
}

/// Run the read-only shipped script `id` through the probe and read its answer, within the
/// task's timeout.
pub async fn read<T: DeserializeOwned>(
    ctx: &CheckCtx<'_>,
    id: ReadOnlyId,
    request: &impl Serialize,
) -> Result<Reply<T>, Fail> {
    read_within(ctx, id, request, ctx.timeout).await
}

/// [`read`] with its own time limit (short probes).
pub async fn read_within<T: DeserializeOwned>(
    ctx: &CheckCtx<'_>,
    id: ReadOnlyId,
    request: &impl Serialize,
    timeout: std::time::Duration,
) -> Result<Reply<T>, Fail> {
    let args = encode(id.script_id(), request)?;
    let out = ctx
        .probe
        .run(ProbeRequest {
            script: ReadOnlyScript::shipped(id, args),
            timeout,
            cancel: ctx.cancel.clone(),
            output: Some(ctx.output.clone()),
            // Exchange can be managed only from a logon with network credentials.
            run_as: ctx
                .run_as
                .filter(|_| id.script_id().manages_exchange())
                .cloned(),
        })
        .await?;
    reply(id.script_id(), out)
}

fn encode(id: ScriptId, request: &impl Serialize) -> Result<Value, Fail> {
    serde_json::to_value(request).map_err(|e| {
        Fail::Module(ModuleError::Args(format!(
            "cannot encode {} arguments: {e}",
            id.as_str()
        )))
    })
}

/// Read script `id`'s answer from its output.
pub fn reply<T: DeserializeOwned>(id: ScriptId, out: ScriptOutput) -> Result<Reply<T>, Fail> {
    let error = out
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    let no_answer = |why: String| {
        Fail::NoAnswer(Box::new(
            Outcome::failed(why)
                .with("rc", out.exit_code)
                .with("stdout", script::strip_result(&out.stdout))
                .with("stderr", out.stderr.clone()),
        ))
    };
    let value = match script::extract_result(&out.stdout) {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(no_answer(format!(
                "{} answered invalid JSON: {e}",
                id.as_str()
            )));
        }
        None => {
            return Err(no_answer(format!(
                "{} exited with code {} without an answer: {}",
                id.as_str(),
                out.exit_code,
                error.as_deref().unwrap_or("no error output")
            )));
        }
    };
    // The error names the script and the field (`exchange_facts answer: field ...`).
    let answer = salve_contract::answer::parse(id, value).map_err(|e| {
        no_answer(format!(
            "{}; is the script on the host the one this salve version ships?",
            crate::error_chain::one_line(&e)
        ))
    })?;
    Ok(Reply {
        answer,
        exit_code: out.exit_code,
        error,
    })
}

/// Read the host's Exchange facts. A server whose Exchange management cmdlets failed is an
/// error naming the cause and the fix: its roles, DAG membership and component states are
/// unknown, and salve never treats such a server as a standalone one with no roles.
pub async fn facts(ctx: &CheckCtx<'_>) -> Result<FactsAnswer, Fail> {
    let answer = facts_as_read(ctx).await?;
    let Some(e) = &answer.exchange_management_error else {
        return Ok(answer);
    };
    let fix = match ctx.run_as {
        None => "This step ran in the WinRM or SSH logon, which holds no credentials for \
                 Active Directory (the double hop): set ansible_become_user and \
                 ansible_become_password to an account that can manage Exchange (and drop \
                 `become: false`), and salve reads Exchange from a scheduled task under it"
            .to_string(),
        Some(run_as) => format!(
            "It ran as {}: check that this account can manage Exchange (Organization \
             Management) and that the server reaches a domain controller",
            run_as.user
        ),
    };
    Err(Fail::failed(format!(
        "Exchange could not be managed on {server}: {e}. Its roles, DAG membership and \
         component states are unknown, so salve stops here rather than treat it as a \
         standalone server. {fix}",
        server = answer.computer_name
    )))
}

/// The host's Exchange facts as the script read them, whether or not Exchange could be
/// managed (what a restart waits for: services).
pub async fn facts_as_read(ctx: &CheckCtx<'_>) -> Result<FactsAnswer, Fail> {
    Ok(
        read::<FactsAnswer>(ctx, ReadOnlyId::ExchangeFacts, &serde_json::json!({}))
            .await?
            .answer,
    )
}

/// An argument that may be written as a template (`"{{ salve_update_sources }}"`) standing for
/// a mapping, list or boolean: accepted as such when a playbook is checked (templates are not
/// rendered then), and required to be the real value once the task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered<T> {
    Value(T),
    Template(String),
}

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for Rendered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if crate::template::is_template(&s) => Ok(Rendered::Template(s)),
            other => serde_json::from_value(other)
                .map(Rendered::Value)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<T> Rendered<T> {
    /// The value, once rendered; `field` names it in the error.
    pub fn get(&self, field: &str) -> Result<&T, ModuleError> {
        match self {
            Rendered::Value(v) => Ok(v),
            Rendered::Template(t) => Err(ModuleError::Args(format!(
                "{field}: `{t}` was not rendered to a value"
            ))),
        }
    }
}

/// Where a package comes from: exactly one of `url` (http/https) or `unc` (`\\server\share\...`),
/// pulled by the host itself, and its SHA-256; with `url`, optionally the `proxy` the host
/// downloads through (authenticating as the account the step runs as); with `unc`, optionally
/// the `username` and `password` (a secret reference) the step connects to the share as
/// (Ansible's `win_package` names them so), instead of the account the step runs as. Or
/// `serve`: a file on the controller that salve serves to the host itself
/// ([`crate::package_server`]), for a host that can reach neither a URL nor a share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSource {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub unc: Option<String>,
    #[serde(default)]
    pub serve: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub proxy: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// The account a step connects to a package's share as, and where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareAccount {
    /// `\\server\share`.
    pub share: String,
    pub user: String,
    pub password: crate::secret::SecretRef,
}

/// What is wrong with a [`PackageSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("url `{0}` must start with https:// or http://")]
    Url(String),
    #[error("unc `{0}` must be a \\\\server\\share path")]
    Unc(String),
    #[error("give exactly one of `url`, `unc` or `serve`")]
    NotOneLocation,
    #[error("serve `{0}` must be an absolute path of a file on the controller")]
    Serve(String),
    #[error("sha256 `{0}` is not 64 hexadecimal digits")]
    Checksum(String),
    #[error("sha256 is required: the host checks the package before installing it")]
    NoChecksum,
    #[error("proxy `{0}` must be an http:// or https:// URL, and goes with `url` only")]
    Proxy(String),
    #[error(
        "username and password go together, and with `unc` only: they are the account the \
         step connects to the share as (password: a secret reference such as env:NAME)"
    )]
    ShareAccount,
}

impl PackageSource {
    /// The proxy the host downloads `url` through, checked for shape.
    pub fn proxy(&self) -> Result<Option<&str>, SourceError> {
        match (&self.proxy, &self.url) {
            (None, _) => Ok(None),
            (Some(p), Some(_)) if p.starts_with("http://") || p.starts_with("https://") => {
                Ok(Some(p))
            }
            (Some(p), _) => Err(SourceError::Proxy(p.clone())),
        }
    }

    /// The account the step connects to the `unc` share as: the source's own, else the host's
    /// (`salve_share_username`), else none (the step's own account reads it).
    pub fn share_account_or(
        &self,
        host: Option<&crate::model::share_account::ShareLogin>,
    ) -> Result<Option<ShareAccount>, SourceError> {
        let own = self.share_account()?;
        let share = self.unc.as_deref().and_then(crate::share::share_root);
        Ok(own.or_else(|| {
            Some(ShareAccount {
                share: share?.to_string(),
                user: host?.user.clone(),
                password: host?.password.clone(),
            })
        }))
    }

    /// The account the step connects to the `unc` share as, when the source names one.
    pub fn share_account(&self) -> Result<Option<ShareAccount>, SourceError> {
        match (&self.username, &self.password) {
            (None, None) => Ok(None),
            (Some(user), Some(password)) => {
                let share = self
                    .unc
                    .as_deref()
                    .and_then(crate::share::share_root)
                    .ok_or(SourceError::ShareAccount)?;
                Ok(Some(ShareAccount {
                    share: share.to_string(),
                    user: user.clone(),
                    password: crate::secret::SecretRef::parse(password),
                }))
            }
            _ => Err(SourceError::ShareAccount),
        }
    }

    /// The location the package comes from, checked for shape: the URL or share path the host
    /// fetches, or the controller's file salve serves.
    pub fn location(&self) -> Result<&str, SourceError> {
        match (&self.url, &self.unc, &self.serve) {
            (Some(u), None, None) if u.starts_with("https://") || u.starts_with("http://") => Ok(u),
            (Some(u), None, None) => Err(SourceError::Url(u.clone())),
            (None, Some(p), None) if crate::share::on_share(p) => Ok(p),
            (None, Some(p), None) => Err(SourceError::Unc(p.clone())),
            (None, None, Some(f)) if std::path::Path::new(f).is_absolute() => Ok(f),
            (None, None, Some(f)) => Err(SourceError::Serve(f.clone())),
            _ => Err(SourceError::NotOneLocation),
        }
    }

    /// The controller's file, for a `serve` source.
    pub fn served(&self) -> Option<&std::path::Path> {
        self.serve.as_deref().map(std::path::Path::new)
    }

    /// The SHA-256 in lowercase, checked for shape; `required` makes a missing one an error.
    pub fn checksum(&self, required: bool) -> Result<Option<String>, SourceError> {
        match &self.sha256 {
            Some(h) if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) => {
                Ok(Some(h.to_ascii_lowercase()))
            }
            Some(h) => Err(SourceError::Checksum(h.clone())),
            None if required => Err(SourceError::NoChecksum),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! Helpers for the Exchange modules' unit tests: a [`HostLink`] over the fake transport and
    //! canned contract answers.

    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use serde_json::Value;
    use tokio::sync::{Mutex, mpsc};
    use tokio_util::sync::CancellationToken;

    use crate::contract::*;
    use crate::model::{Host, HostSettings};
    use crate::modules::{CheckCtx, HostCtx, HostLink, ProbeLink};
    use crate::script::Script;
    use crate::transport::fake::{FakeConnector, FakeFleet, FakeReply};
    use crate::transport::{
        ConnectionSpec, Connector, RunRequest, ScriptOutput, Transport, TransportError,
    };

    /// A link to one fake host that reconnects after `reset`, counting resets. Scripts that
    /// manage Exchange, started as detached tasks, run on the fake host as if in the session
    /// ([`Scheduler`]), so a fake host answers them by their own id.
    pub struct FakeLink {
        connector: FakeConnector,
        spec: ConnectionSpec,
        current: Mutex<Option<Arc<dyn Transport>>>,
        tasks: Arc<std::sync::Mutex<HashMap<String, ScriptOutput>>>,
        pub resets: std::sync::atomic::AtomicUsize,
    }

    impl FakeLink {
        pub fn new(fleet: &Arc<FakeFleet>) -> Self {
            FakeLink {
                connector: FakeConnector(Arc::clone(fleet)),
                spec: host().settings.connection,
                current: Mutex::new(None),
                tasks: Default::default(),
                resets: Default::default(),
            }
        }
    }

    #[async_trait]
    impl HostLink for FakeLink {
        async fn transport(&self) -> Result<Arc<dyn Transport>, TransportError> {
            let mut cur = self.current.lock().await;
            if let Some(t) = cur.as_ref() {
                return Ok(Arc::clone(t));
            }
            let t: Arc<dyn Transport> = Arc::new(Scheduler {
                host: self.connector.connect(&self.spec).await?,
                tasks: Arc::clone(&self.tasks),
            });
            *cur = Some(Arc::clone(&t));
            Ok(t)
        }

        async fn reset(&self) {
            self.resets
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            *self.current.lock().await = None;
        }
    }

    /// A fake host's Task Scheduler for scripts that manage Exchange: `job_control start` of
    /// one runs it on the host at once and keeps its output (every stream, as the task's
    /// runner merges them); `job_poll` finds it finished; `remove` forgets it. Other tasks
    /// (an update's) reach the fake host as they are.
    struct Scheduler {
        host: Arc<dyn Transport>,
        tasks: Arc<std::sync::Mutex<HashMap<String, ScriptOutput>>>,
    }

    #[async_trait]
    impl Transport for Scheduler {
        async fn run(&self, request: RunRequest) -> Result<ScriptOutput, TransportError> {
            let job = request
                .script
                .args
                .as_ref()
                .and_then(|a| a.get("job"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let kind = request.script.id.as_deref().and_then(ScriptId::parse);
            let tasks = || self.tasks.lock().unwrap();
            let reply = |answer: Value| ScriptOutput {
                exit_code: 0,
                stdout: format!("{}{answer}\n", crate::script::RESULT_MARKER),
                stderr: String::new(),
            };
            match (kind, job) {
                (Some(ScriptId::JobControl), Some(job)) => {
                    if let Some(inner) =
                        job_script(&request.script).filter(|inner| id(inner).manages_exchange())
                    {
                        let out = self
                            .host
                            .run(RunRequest::new(inner, request.timeout))
                            .await?;
                        tasks().insert(job.clone(), out);
                        let run_as = host().settings.run_as.map(|r| r.user);
                        return Ok(reply(serde_json::json!({"job": job, "started": true,
                            "state": "running", "run_as": run_as, "reason": null})));
                    }
                    if tasks().remove(&job).is_some() {
                        return Ok(reply(serde_json::json!({"job": job, "started": false,
                            "state": "missing", "run_as": null, "reason": null})));
                    }
                }
                (Some(ScriptId::JobPoll), Some(job)) => {
                    if let Some(out) = tasks().get(&job) {
                        let text = format!("{}{}", out.stdout, out.stderr).replace('\n', "\r\n");
                        return Ok(reply(serde_json::json!({"job": job, "state": "finished",
                            "output": text, "next_offset": text.len(), "exit_code": out.exit_code})));
                    }
                }
                _ => {}
            }
            self.host.run(request).await
        }
    }

    /// A host whose detached steps run under a `become` account (shares are readable).
    pub fn host() -> Host {
        let vars: crate::model::Vars = [(
            "ansible_become_user".to_string(),
            "CONTOSO\\svc-patch".into(),
        )]
        .into_iter()
        .collect();
        Host {
            name: "ex01".into(),
            groups: vec!["all".into()],
            tenant: None,
            settings: HostSettings::read("ex01", &vars).unwrap(),
            vars: vars.into(),
            location: None,
        }
    }

    /// Run `f` with a context over `link`; `vars` are the host's variables.
    pub async fn with_ctx<R>(
        link: &FakeLink,
        vars: Value,
        f: impl AsyncFnOnce(&HostCtx<'_>) -> R,
    ) -> R {
        let host = host();
        let (tx, _rx) = mpsc::unbounded_channel();
        let vars = crate::template::Context::from(vars);
        let exclusive = super::super::exclusive::InProcess::default();
        let ctx = HostCtx {
            host: &host,
            run_as: host.settings.run_as.as_ref(),
            link,
            exclusive: &exclusive,
            vars: &vars,
            timeout: Duration::from_secs(7200),
            poll: None,
            cancel: CancellationToken::new(),
            output: tx,
            base_dir: PathBuf::from("."),
        };
        f(&ctx).await
    }

    /// [`with_ctx`]'s read-only half, as `check` gets it.
    pub async fn with_check_ctx<R>(
        link: &FakeLink,
        vars: Value,
        f: impl AsyncFnOnce(&CheckCtx<'_>) -> R,
    ) -> R {
        with_ctx(link, vars, async move |ctx| {
            let probe = ProbeLink::new(ctx.link);
            f(&ctx.read_only(&probe)).await
        })
        .await
    }

    /// A reply carrying `answer` on the result line.
    pub fn answer(answer: &impl serde::Serialize, exit_code: i32) -> FakeReply {
        let mut r = FakeReply::ok(&format!(
            "progress\n{}{}\n",
            crate::script::RESULT_MARKER,
            serde_json::to_string(answer).unwrap()
        ));
        if let Ok(out) = &mut r.result {
            out.exit_code = exit_code;
        }
        r
    }

    /// The shipped script id a fake host was asked to run.
    pub fn id(script: &Script) -> ScriptId {
        ScriptId::parse(script.id.as_deref().unwrap()).unwrap()
    }

    /// The script a `job_control start` registers as a detached task, decoded.
    pub fn job_script(script: &Script) -> Option<Script> {
        use base64::Engine as _;
        if id(script) != ScriptId::JobControl {
            return None;
        }
        let args = script.args.as_ref()?;
        let encoded = args.get("script")?.as_str()?;
        let text = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        Some(crate::script::parse_rendered(&String::from_utf8(text).unwrap()).unwrap())
    }

    /// The host's side of a detached step that finishes at once with `inner` as its script's
    /// answer: `job_control` starts or removes, `job_poll` reports it finished with the answer.
    pub fn job(script: &Script, inner: &impl serde::Serialize) -> FakeReply {
        use crate::contract::{JobControlAnswer, JobPollAnswer, JobState};
        let job = script.args.as_ref().unwrap()["job"]
            .as_str()
            .unwrap()
            .to_string();
        match id(script) {
            ScriptId::JobControl => {
                let start = job_script(script).is_some();
                answer(
                    &JobControlAnswer {
                        job,
                        started: start,
                        state: if start {
                            JobState::Running
                        } else {
                            JobState::Missing
                        },
                        run_as: Some("SYSTEM".into()),
                        reason: None,
                        output: String::new(),
                        next_offset: 0,
                        exit_code: None,
                        removed: false,
                    },
                    0,
                )
            }
            _ => answer(
                &JobPollAnswer {
                    job,
                    state: JobState::Finished,
                    output: format!(
                        "installing\r\n{}{}\r\n",
                        crate::script::RESULT_MARKER,
                        serde_json::to_string(inner).unwrap()
                    ),
                    next_offset: 1,
                    exit_code: Some(0),
                    removed: false,
                },
                0,
            ),
        }
    }

    /// A health read of a DAG member whose one passive copy (DB03) is `copy_queue` logs
    /// behind, everything else healthy.
    pub fn health(copy_queue: u64) -> crate::contract::HealthAnswer {
        crate::contract::HealthAnswer {
            dag: Some("DAG1".into()),
            copies: vec![crate::contract::DatabaseCopy {
                database: "DB03".into(),
                active: false,
                status: "Healthy".into(),
                copy_queue_length: copy_queue,
                replay_queue_length: 0,
                activation_suspended: false,
                copies: None,
            }],
            all_copies_healthy: true,
            max_copy_queue_length: copy_queue,
            max_replay_queue_length: 0,
            cluster_node_state: Some("Up".into()),
            activation_policy: Some("Unrestricted".into()),
            unhealthy_content_indexes: vec![],
            failed_checks: vec![],
            inactive_components: vec![],
            transport_queue_length: Some(0),
        }
    }

    /// Facts of a healthy standalone 2019 server at `build`.
    pub fn facts(build: &str) -> FactsAnswer {
        FactsAnswer {
            computer_name: "EX01".into(),
            family: Some("Exchange 2019".into()),
            build: Some(build.into()),
            installed_kbs: Vec::new(),
            uninstall_entries: Vec::new(),
            update_packages: Vec::new(),
            roles: vec!["Mailbox".into()],
            dag: None,
            database_copies: Vec::new(),
            component_states: vec![ComponentState {
                component: "ServerWideOffline".into(),
                state: "Active".into(),
                requesters: Vec::new(),
            }],
            services: vec![ServiceInfo {
                name: "MSExchangeIS".into(),
                display_name: "Microsoft Exchange Information Store".into(),
                start_type: "Automatic".into(),
                status: "Running".into(),
            }],
            dotnet_release: 528_040,
            vcredist_2012: Some("11.0.61030".into()),
            vcredist_2013: Some("12.0.40664".into()),
            ucma: Some("5.0.8308.0".into()),
            url_rewrite: Some("7.2.1993".into()),
            mitigation_rules: Vec::new(),
            pending_reboot: Vec::new(),
            free_disk_bytes: 200 * 1024 * 1024 * 1024,
            auth_certificate_expiry: None,
            cluster_node_state: None,
            activation_policy: None,
            boot_id: "2026-01-01T00:00:00Z".into(),
            install_in_progress: None,
            salve_jobs: Vec::new(),
            config: None,
            exchange_management_error: None,
            ad: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::transport::fake::{FakeFleet, FakeReply};

    #[test]
    fn a_proxy_is_an_http_url_and_goes_with_a_url_source() {
        let s = |url: Option<&str>, unc: Option<&str>, proxy: &str| PackageSource {
            url: url.map(Into::into),
            unc: unc.map(Into::into),
            sha256: None,
            proxy: Some(proxy.into()),
            serve: None,
            username: None,
            password: None,
        };
        let web = s(
            Some("https://x/a.iso"),
            None,
            "http://proxy.contoso.test:8080",
        );
        assert_eq!(web.proxy(), Ok(Some("http://proxy.contoso.test:8080")));
        assert!(
            s(Some("https://x/a.iso"), None, "proxy:8080")
                .proxy()
                .is_err()
        );
        assert!(
            s(None, Some("\\\\fs\\a.iso"), "http://proxy:8080")
                .proxy()
                .is_err()
        );
    }

    #[test]
    fn sources_need_one_location_of_the_right_shape() {
        let s = |url: Option<&str>, unc: Option<&str>| PackageSource {
            url: url.map(Into::into),
            unc: unc.map(Into::into),
            sha256: None,
            proxy: None,
            serve: None,
            username: None,
            password: None,
        };
        assert_eq!(
            s(Some("https://x/a.msp"), None).location(),
            Ok("https://x/a.msp")
        );
        assert_eq!(
            s(None, Some("\\\\fs\\u\\a.msp")).location(),
            Ok("\\\\fs\\u\\a.msp")
        );
        assert!(s(Some("ftp://x"), None).location().is_err());
        assert!(s(None, Some("C:\\a.msp")).location().is_err());
        assert!(s(Some("https://x"), Some("\\\\fs\\a")).location().is_err());
        let served = |f: &str| PackageSource {
            serve: Some(f.into()),
            ..s(None, None)
        };
        assert_eq!(served("/srv/x.iso").location(), Ok("/srv/x.iso"));
        assert!(served("x.iso").location().is_err());
        assert!(
            PackageSource {
                serve: Some("/srv/x.iso".into()),
                ..s(Some("https://x/a.msp"), None)
            }
            .location()
            .is_err()
        );
        assert!(s(None, None).checksum(true).is_err());
        let upper = PackageSource {
            sha256: Some("AB".repeat(32)),
            ..s(None, None)
        };
        assert_eq!(upper.checksum(true), Ok(Some("ab".repeat(32))));
    }

    #[test]
    fn a_share_account_goes_with_a_unc_source_and_needs_both_names() {
        let s = |url: Option<&str>, unc: Option<&str>, user: Option<&str>, pw: Option<&str>| {
            PackageSource {
                url: url.map(Into::into),
                unc: unc.map(Into::into),
                sha256: None,
                proxy: None,
                serve: None,
                username: user.map(Into::into),
                password: pw.map(Into::into),
            }
        };
        let unc = Some(r"\\fs01\patches\CU15\x.iso");
        assert_eq!(s(None, unc, None, None).share_account(), Ok(None));
        let account = s(None, unc, Some(r"LAB\svc"), Some("env:SHARE_PW"))
            .share_account()
            .unwrap()
            .unwrap();
        assert_eq!(account.share, r"\\fs01\patches");
        assert_eq!(account.user, r"LAB\svc");
        assert_eq!(
            account.password,
            crate::secret::SecretRef::parse("env:SHARE_PW")
        );
        let host = crate::model::share_account::ShareLogin {
            user: r"LAB\host-svc".into(),
            password: crate::secret::SecretRef::parse("env:HOST_PW"),
        };
        let inherited = s(None, unc, None, None).share_account_or(Some(&host));
        assert_eq!(inherited.unwrap().unwrap().user, r"LAB\host-svc");
        let own = s(None, unc, Some(r"LAB\svc"), Some("env:X")).share_account_or(Some(&host));
        assert_eq!(own.unwrap().unwrap().user, r"LAB\svc");
        let web = s(Some("https://x/a.iso"), None, None, None).share_account_or(Some(&host));
        assert_eq!(web, Ok(None));
        for bad in [
            s(None, unc, Some(r"LAB\svc"), None),
            s(None, unc, None, Some("env:X")),
            s(
                Some("https://x/a.iso"),
                None,
                Some(r"LAB\svc"),
                Some("env:X"),
            ),
        ] {
            assert_eq!(bad.share_account(), Err(SourceError::ShareAccount));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_nested_list_in_an_answer_fails_naming_the_script_and_field() {
        let mut answer = serde_json::to_value(super::testing::facts("15.2.1544.4")).unwrap();
        answer["pending_reboot"] = serde_json::json!([[]]);
        let fleet = FakeFleet::new(move |_, _| super::testing::answer(&answer, 0));
        let link = FakeLink::new(&fleet);
        let r = with_check_ctx(&link, serde_json::json!({}), async |ctx| {
            super::facts(ctx).await
        })
        .await;
        let Err(Fail::NoAnswer(o)) = r else {
            panic!("{r:?}")
        };
        let msg = o.msg.unwrap();
        assert!(
            msg.starts_with(
                "exchange_facts answer: field `pending_reboot` is a list inside a list"
            ),
            "{msg}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_script_without_an_answer_is_a_failed_task_with_its_error() {
        let fleet = FakeFleet::new(|_, _| FakeReply::exit(1, "Access is denied.\n"));
        let link = FakeLink::new(&fleet);
        let r = with_check_ctx(&link, serde_json::json!({}), async |ctx| {
            super::facts(ctx).await
        })
        .await;
        let Err(Fail::NoAnswer(o)) = r else {
            panic!("{r:?}")
        };
        assert!(o.status.failed());
        assert!(o.msg.unwrap().contains("Access is denied."));
    }
}
