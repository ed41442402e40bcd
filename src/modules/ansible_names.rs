//! Ansible's names for what salve's modules do, so an existing `ansible.windows` task runs as
//! written: `win_shell`, `win_powershell` and `win_command` run through `powershell`,
//! `win_reboot` is `reboot`, `win_wait_for_connection` is `wait_for_connection`; fully
//! qualified names (`ansible.windows.win_shell`, `ansible.builtin.debug`) are accepted; a
//! free-form string (`powershell: Get-Service`) is the script. Ansible's argument names are
//! translated to salve's here, once, when the playbook is read; an argument salve has no use
//! for is refused with what to write instead. Any other Ansible module gets an error that
//! says salve does not have it and what to use.

use serde_json::{Map, Value};

use super::ArgProblem;

/// How an Ansible argument of an aliased module becomes salve's.
enum Arg {
    /// The same meaning under salve's name.
    Rename(&'static str, &'static str),
    /// The same meaning under several of salve's names (one Ansible timeout covering two waits).
    Spread(&'static str, &'static [&'static str]),
    /// No counterpart: refused with this advice.
    Refuse(&'static str, &'static str),
}

/// One Ansible module name salve runs with one of its own modules.
struct Alias {
    ansible: &'static str,
    module: &'static str,
    /// What a free-form string argument becomes.
    free_form: FreeForm,
    args: &'static [Arg],
}

#[derive(Clone, Copy, PartialEq)]
enum FreeForm {
    /// Not accepted.
    No,
    /// The string is the PowerShell script.
    Script,
    /// The string is a command line, run without a shell (`win_command`).
    CommandLine,
}

const SHELL_ARGS: &[Arg] = &[
    Arg::Refuse("chdir", "start the script with `Set-Location`"),
    Arg::Refuse(
        "creates",
        "guard the task with `when:` on a registered `win_stat`-like check, or test in the script",
    ),
    Arg::Refuse(
        "removes",
        "guard the task with `when:`, or test in the script",
    ),
    Arg::Refuse(
        "executable",
        "salve runs scripts with Windows PowerShell on the host",
    ),
    Arg::Refuse(
        "parameters",
        "pass values in `args:`; the script reads them as `$SalveArgs`",
    ),
    Arg::Refuse(
        "arguments",
        "pass values in `args:`; the script reads them as `$SalveArgs`",
    ),
    Arg::Refuse("error_action", "set `$ErrorActionPreference` in the script"),
];

const ALIASES: &[Alias] = &[
    Alias {
        ansible: "powershell",
        module: "powershell",
        free_form: FreeForm::Script,
        args: &[],
    },
    Alias {
        ansible: "win_shell",
        module: "powershell",
        free_form: FreeForm::Script,
        args: SHELL_ARGS,
    },
    Alias {
        ansible: "win_powershell",
        module: "powershell",
        free_form: FreeForm::Script,
        args: SHELL_ARGS,
    },
    Alias {
        ansible: "win_command",
        module: "powershell",
        free_form: FreeForm::CommandLine,
        args: SHELL_ARGS,
    },
    Alias {
        ansible: "win_reboot",
        module: "reboot",
        free_form: FreeForm::No,
        args: &[
            Arg::Rename("pre_reboot_delay", "delay_seconds"),
            Arg::Spread("reboot_timeout", &["shutdown_timeout", "boot_timeout"]),
            Arg::Rename("post_reboot_delay", "post_reboot_delay"),
            Arg::Rename("test_command", "test_command"),
            Arg::Rename("connect_timeout", "probe_timeout"),
            Arg::Refuse("msg", "salve schedules the restart itself; remove `msg`"),
            Arg::Refuse(
                "boot_time_command",
                "salve tells a restart by the host's boot id; remove `boot_time_command`",
            ),
        ],
    },
    Alias {
        ansible: "win_wait_for_connection",
        module: "wait_for_connection",
        free_form: FreeForm::No,
        args: &[],
    },
];

/// Collections whose names salve accepts in front of a module name.
const COLLECTIONS: &[&str] = &["ansible.windows.", "ansible.builtin.", "community.windows."];

/// Ansible modules salve does not have, with what to use instead.
const INSTEAD: &[(&str, &str)] = &[
    (
        "win_updates",
        "`exchange_update` installs Exchange updates; other updates: `powershell`",
    ),
    (
        "win_hotfix",
        "`exchange_update` installs Exchange security updates",
    ),
    (
        "win_package",
        "`exchange_update` for Exchange; other packages: `powershell`",
    ),
    (
        "win_service",
        "`powershell` with `Set-Service`/`Restart-Service`",
    ),
    (
        "win_copy",
        "`powershell` (salve does not copy files to hosts)",
    ),
    ("win_file", "`powershell` with `New-Item`/`Remove-Item`"),
    ("win_template", "`powershell` with a rendered `args:` value"),
    ("win_stat", "`powershell` with `Test-Path`, then `register`"),
    ("win_get_url", "`powershell` with `Invoke-WebRequest`"),
    ("win_feature", "`powershell` with `Install-WindowsFeature`"),
    ("win_regedit", "`powershell` with `Set-ItemProperty`"),
    ("win_ping", "`wait_for_connection`"),
    ("setup", "`exchange_facts` reads the facts salve uses"),
    (
        "gather_facts",
        "`exchange_facts` reads the facts salve uses",
    ),
    ("command", "`powershell` (salve's hosts are Windows)"),
    ("shell", "`powershell` (salve's hosts are Windows)"),
    ("script", "`powershell` with `file:`"),
    ("raw", "`powershell`"),
    ("copy", "`powershell` (salve does not copy files to hosts)"),
    ("template", "`powershell` with a rendered `args:` value"),
    ("include_role", "`include_tasks` (salve has no roles)"),
    ("import_role", "`import_tasks` (salve has no roles)"),
    (
        "include_vars",
        "play `vars`, inventory variables or `-e @file.yml`",
    ),
    ("meta", "nothing: handlers run at the end of the play"),
    ("wait_for", "`wait_for_connection` or `pause`"),
];

/// What a task's module key names.
#[derive(Debug, PartialEq)]
pub enum Resolved {
    /// One of salve's modules, with the arguments in salve's spelling.
    Module { name: &'static str, args: Value },
    /// Salve's module, but the arguments cannot be translated.
    BadArgs(Vec<ArgProblem>),
    /// An Ansible module salve does not have; the advice says what to use.
    NotInSalve { ansible: String, instead: String },
    /// Not a module name at all.
    Unknown,
}

/// Resolve a task key (salve's name, an Ansible name, or a fully qualified one) and its
/// arguments as written.
pub fn resolve(key: &str, args: &Value) -> Resolved {
    let short = COLLECTIONS
        .iter()
        .find_map(|c| key.strip_prefix(c))
        .unwrap_or(key);
    if let Some(alias) = ALIASES.iter().find(|a| a.ansible == short) {
        return match translate(alias, args) {
            Ok(args) => Resolved::Module {
                name: alias.module,
                args,
            },
            Err(p) => Resolved::BadArgs(p),
        };
    }
    if let Some(spec) = super::spec(short) {
        return Resolved::Module {
            name: spec.name,
            args: args.clone(),
        };
    }
    if let Some((_, instead)) = INSTEAD.iter().find(|(n, _)| *n == short) {
        return Resolved::NotInSalve {
            ansible: key.to_string(),
            instead: instead.to_string(),
        };
    }
    if short != key || key.starts_with("win_") || key.contains('.') {
        return Resolved::NotInSalve {
            ansible: key.to_string(),
            instead: "`powershell` runs any PowerShell on the host".to_string(),
        };
    }
    Resolved::Unknown
}

/// An alias's arguments in salve's spelling.
fn translate(alias: &Alias, args: &Value) -> Result<Value, Vec<ArgProblem>> {
    let map = match (args, alias.free_form) {
        (Value::String(s), FreeForm::Script) => return Ok(script(s.clone())),
        (Value::String(s), FreeForm::CommandLine) => {
            return command_line(s).map(script).map_err(|p| vec![p]);
        }
        (Value::Object(m), _) => m,
        _ => return Ok(args.clone()),
    };
    let mut out = Map::new();
    let mut problems = Vec::new();
    for (k, v) in map {
        match alias.args.iter().find(|a| arg_name(a) == k) {
            Some(Arg::Rename(_, to)) => {
                out.insert((*to).to_string(), v.clone());
            }
            Some(Arg::Spread(_, to)) => {
                for t in *to {
                    out.insert((*t).to_string(), v.clone());
                }
            }
            Some(Arg::Refuse(_, advice)) => problems.push(ArgProblem {
                field: k.clone(),
                message: format!("salve's `{}` has no `{k}`", alias.module),
                hint: Some((*advice).to_string()),
            }),
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if alias.free_form == FreeForm::CommandLine {
        // `cmd:` (a command line) or `argv:` (a list), as ansible.windows.win_command takes.
        let argv = match (out.remove("cmd"), out.remove("argv")) {
            (Some(Value::String(line)), None) => command_line(&line).map_err(|p| vec![p])?,
            (None, Some(Value::Array(items))) => run_argv(&items),
            _ => {
                return Err(vec![ArgProblem {
                    field: String::new(),
                    message: "give the command as a string, as `cmd:` or as an `argv:` list".into(),
                    hint: None,
                }]);
            }
        };
        out.insert("script".into(), Value::String(argv));
    }
    if problems.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(problems)
    }
}

fn arg_name(a: &Arg) -> &'static str {
    match a {
        Arg::Rename(n, _) | Arg::Spread(n, _) | Arg::Refuse(n, _) => n,
    }
}

fn script(text: String) -> Value {
    let mut m = Map::new();
    m.insert("script".into(), Value::String(text));
    Value::Object(m)
}

/// A `win_command` line as a PowerShell script that runs the program with exactly these
/// arguments (each single-quoted, so PowerShell interprets none of them) and ends with its
/// exit code. The line is split as Windows programs split theirs (`CommandLineToArgvW`):
/// spaces separate arguments, double quotes group, `\"` is a literal quote.
fn command_line(line: &str) -> Result<String, ArgProblem> {
    let mut argv: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'"') => {
                chars.next();
                current.get_or_insert_default().push('"');
            }
            '"' => {
                quoted = !quoted;
                current.get_or_insert_default();
            }
            c if c.is_whitespace() && !quoted => argv.extend(current.take()),
            c => current.get_or_insert_default().push(c),
        }
    }
    argv.extend(current);
    if quoted || argv.is_empty() {
        return Err(ArgProblem {
            field: String::new(),
            message: if quoted {
                "the command line has an unclosed `\"`".into()
            } else {
                "the command line is empty".into()
            },
            hint: None,
        });
    }
    Ok(run_argv(
        &argv.into_iter().map(Value::String).collect::<Vec<_>>(),
    ))
}

/// `& 'program' 'arg' ...; exit $LASTEXITCODE`, each value single-quoted (a `'` doubled).
fn run_argv(argv: &[Value]) -> String {
    let quoted: Vec<String> = argv
        .iter()
        .map(|v| match v {
            Value::String(s) => format!("'{}'", s.replace('\'', "''")),
            other => format!("'{}'", other.to_string().replace('\'', "''")),
        })
        .collect();
    format!("& {}\nexit $LASTEXITCODE", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn module(key: &str, args: Value) -> (&'static str, Value) {
        match resolve(key, &args) {
            Resolved::Module { name, args } => (name, args),
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn ansible_windows_names_become_salve_modules() {
        assert_eq!(
            module(
                "ansible.windows.win_shell",
                json!("Get-Service MSExchange*")
            ),
            ("powershell", json!({"script": "Get-Service MSExchange*"}))
        );
        assert_eq!(
            module("powershell", json!("Write-Output hi")),
            ("powershell", json!({"script": "Write-Output hi"}))
        );
        assert_eq!(
            module("win_powershell", json!({"script": "hostname"})),
            ("powershell", json!({"script": "hostname"}))
        );
        assert_eq!(
            module(
                "win_reboot",
                json!({"reboot_timeout": 900, "post_reboot_delay": 30, "pre_reboot_delay": 2})
            ),
            (
                "reboot",
                json!({"shutdown_timeout": 900, "boot_timeout": 900, "post_reboot_delay": 30, "delay_seconds": 2})
            )
        );
        assert_eq!(
            module(
                "ansible.windows.win_wait_for_connection",
                json!({"timeout": 60})
            ),
            ("wait_for_connection", json!({"timeout": 60}))
        );
        assert_eq!(
            module("ansible.builtin.debug", json!({"msg": "x"})).0,
            "debug"
        );
    }

    #[test]
    fn win_command_runs_the_program_without_a_shell() {
        let (_, args) = module(
            "win_command",
            json!(r#""C:\Program Files\x.exe" /q it's "a \"b\"""#),
        );
        assert_eq!(
            args["script"],
            json!("& 'C:\\Program Files\\x.exe' '/q' 'it''s' 'a \"b\"'\nexit $LASTEXITCODE")
        );
        let (_, args) = module("win_command", json!({"argv": ["ipconfig", "/all"]}));
        assert_eq!(
            args["script"],
            json!("& 'ipconfig' '/all'\nexit $LASTEXITCODE")
        );
        assert!(matches!(
            resolve("win_command", &json!("\"unclosed")),
            Resolved::BadArgs(_)
        ));
    }

    #[test]
    fn what_salve_lacks_is_named_with_what_to_use() {
        match resolve("ansible.windows.win_updates", &json!({})) {
            Resolved::NotInSalve { instead, .. } => assert!(instead.contains("exchange_update")),
            other => panic!("{other:?}"),
        }
        match resolve("win_shell", &json!({"script": "x", "chdir": "C:\\"})) {
            Resolved::BadArgs(p) => {
                assert_eq!(p[0].field, "chdir");
                assert!(p[0].hint.as_deref().unwrap().contains("Set-Location"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve("community.windows.win_dns_record", &json!({})),
            Resolved::NotInSalve { .. }
        ));
        assert_eq!(resolve("exchange_udpate", &json!({})), Resolved::Unknown);
    }
}
