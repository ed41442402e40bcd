//! A host's typed settings, read once when the inventory is loaded: how to connect
//! ([`ConnectionSpec`]), when it may be changed ([`Schedule`], from `salve_maintenance_window`)
//! and which DAG it is a member of (`salve_dag`). Everything downstream (the runner's lanes
//! and links, the plan, the queue, apply, doctor) reads these, never the variables, so a value
//! salve cannot use is an error of the inventory, with its file and line, before anything
//! connects.
//!
//! Extra variables (`-e`) do not change these settings: like before, connection settings,
//! windows and DAGs come from the inventory alone.

use serde_json::Value;

use super::Lookup;
use super::connection::ConnectionSpec;
use super::host_var::{Problem, Reader, SettingError};
use super::run_as::RunAs;
use crate::schedule::{Schedule, Window, WindowError};

/// The variable naming a host's DAG. A string or a number names it (YAML types a bare `1` or
/// `2019` as a number; its text is the name); null means no DAG.
pub const DAG_VAR: &str = "salve_dag";

/// The variable holding a host's maintenance windows: a window, or a list of windows (syntax
/// in [`crate::schedule::window`]). Unset means any time.
pub const WINDOW_VAR: &str = "salve_maintenance_window";

/// The variable naming where a host's queued mail goes while it is in maintenance
/// (`Redirect-Message -Target`): another server's FQDN. Unset: a peer in the same site.
pub const REDIRECT_VAR: &str = "salve_redirect_target";

/// Everything salve reads from a host's variables to decide how and when to work on it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSettings {
    pub connection: ConnectionSpec,
    /// When the host may be changed; `None`: any time.
    pub schedule: Option<Schedule>,
    /// The DAG the host is a member of: its members are changed one at a time.
    pub dag: Option<String>,
    /// The account detached steps run as (`become`); `None`: SYSTEM.
    pub run_as: Option<RunAs>,
    /// Where salve serves `serve:` packages to this host (`salve_package_server`).
    pub package_server: Option<super::package_server::PackageServerSpec>,
    /// The account `unc:` sources without their own are read as (`salve_share_username`).
    pub share_account: Option<super::share_account::ShareLogin>,
}

impl HostSettings {
    /// Read the settings of host `name` from its merged variables; every unusable value is
    /// an error.
    pub fn read(name: &str, vars: &dyn Lookup) -> Result<HostSettings, Vec<SettingError>> {
        let (settings, errors) = HostSettings::read_with_defaults(name, vars);
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    /// Like [`HostSettings::read`], with each unusable value replaced by its default (no
    /// window for a bad window, no DAG for a bad DAG): settings to diagnose a host with, never
    /// to work on it.
    pub fn read_with_defaults(name: &str, vars: &dyn Lookup) -> (HostSettings, Vec<SettingError>) {
        let mut reader = Reader::new(vars);
        let connection = ConnectionSpec::read(name, &mut reader);
        let schedule = schedule(&mut reader);
        let dag = dag(&mut reader);
        let run_as = super::run_as::read(&mut reader);
        let package_server = super::package_server::read(&mut reader);
        let share_account = super::share_account::read(&mut reader);
        redirect_target(name, &mut reader);
        let settings = HostSettings {
            connection,
            schedule,
            dag,
            run_as,
            package_server,
            share_account,
        };
        (settings, reader.into_errors())
    }

    /// The maintenance windows as written (trimmed), for the plan; empty when any time.
    pub fn window_texts(&self) -> Vec<String> {
        self.schedule
            .iter()
            .flat_map(|s| &s.windows)
            .map(Window::to_string)
            .collect()
    }
}

const WINDOW_EXAMPLE: &str = "a window such as `Sat 22:00-Sun 04:00 Europe/Brussels`";

fn schedule(reader: &mut Reader) -> Option<Schedule> {
    let value = reader.get(WINDOW_VAR)?;
    let items: Vec<(String, &Value)> = match value {
        Value::Array(items) if items.is_empty() => {
            reader.fail(SettingError::expected(
                WINDOW_VAR,
                "a window or a list of windows",
                value,
                "remove the variable to allow any time",
            ));
            return None;
        }
        Value::Array(items) => (items.iter().enumerate())
            .map(|(i, item)| (format!("{WINDOW_VAR}[{i}]"), item))
            .collect(),
        single => vec![(WINDOW_VAR.to_string(), single)],
    };
    let mut windows = Vec::new();
    let mut failed = false;
    for (var, item) in items {
        let error = match item {
            Value::String(text) => match Window::parse(text) {
                Ok(window) => {
                    windows.push(window);
                    continue;
                }
                Err(WindowError::Parse { problem, .. }) => {
                    SettingError::new(var, item.to_string(), Problem::Window(problem.to_string()))
                }
            },
            other => SettingError::expected(
                var,
                WINDOW_EXAMPLE,
                other,
                "write each window as text; remove the variable to allow any time",
            ),
        };
        reader.fail(error);
        failed = true;
    }
    (!failed).then_some(Schedule { windows })
}

/// An explicit redirect target must be another server: Exchange refuses a server's own name,
/// so entering maintenance would fail (a group-wide target names one of its members).
fn redirect_target(host: &str, reader: &mut Reader) {
    let Some((var, value)) = reader.first(&[REDIRECT_VAR]) else {
        return;
    };
    let short = |t: &str| t.split('.').next().unwrap_or(t).to_ascii_lowercase();
    match value {
        Value::String(t) if short(t) == short(host) => reader.fail(SettingError::expected(
            var,
            "another server's FQDN (Exchange refuses to redirect a server's queues to itself)",
            value,
            "set salve_redirect_target per host to a DAG peer in the same site, or remove it: \
             a peer in the same site that is not in maintenance is then chosen",
        )),
        Value::String(t) if !t.trim().is_empty() => {}
        other => reader.fail(SettingError::expected(
            var,
            "a server's FQDN",
            other,
            "remove it to let salve choose a peer in the same site",
        )),
    }
}

fn dag(reader: &mut Reader) -> Option<String> {
    let (var, value) = reader.first(&[DAG_VAR])?;
    match value {
        Value::String(name) if !name.trim().is_empty() => Some(name.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            reader.fail(SettingError::expected(
                var,
                "a DAG name",
                other,
                "a host is a member of one DAG, named by a word or a number; quote a name such as \"yes\", or set `salve_dag: null` for no DAG",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::connection::{ConnectionKind, KinitMode, WinrmAuth};
    use crate::secret::SecretRef;
    use serde_json::json;

    fn read(v: Value) -> Result<HostSettings, Vec<SettingError>> {
        HostSettings::read("ex01", v.as_object().unwrap())
    }

    /// The errors as `variable: message`.
    fn errors(v: Value) -> Vec<String> {
        read(v)
            .unwrap_err()
            .iter()
            .map(|e| format!("{}: {}", e.var, e.problem))
            .collect()
    }

    #[test]
    fn a_redirect_target_naming_the_host_itself_is_refused() {
        let e = errors(json!({"salve_redirect_target": "EX01.contoso.local"}));
        assert_eq!(
            e,
            [
                "salve_redirect_target: expected another server's FQDN (Exchange refuses to \
              redirect a server's queues to itself), found string `EX01.contoso.local`"
            ]
        );
        assert!(read(json!({"salve_redirect_target": "ex02.contoso.local"})).is_ok());
    }

    #[test]
    fn ansible_defaults_are_ntlm_over_http() {
        let s = read(json!({"ansible_port": 5985})).unwrap().connection;
        assert_eq!(
            (s.kind, s.winrm.auth, s.winrm.https),
            (ConnectionKind::Winrm, WinrmAuth::Ntlm, false)
        );
        assert_eq!(s.endpoint(), "ex01:5985");
    }

    #[test]
    fn negotiate_is_kerberos_for_a_name_and_ntlm_for_an_address() {
        let by_name = read(
            json!({"ansible_host": "ex01.contoso.com", "ansible_winrm_transport": "negotiate"}),
        )
        .unwrap()
        .connection;
        assert_eq!(
            by_name.winrm.effective_auth(&by_name.address),
            WinrmAuth::Kerberos
        );
        let by_address =
            read(json!({"ansible_host": "10.0.0.5", "ansible_winrm_transport": "negotiate"}))
                .unwrap()
                .connection;
        assert_eq!(
            by_address.winrm.effective_auth(&by_address.address),
            WinrmAuth::Ntlm
        );
        let overridden = read(json!({"ansible_host": "10.0.0.5", "ansible_winrm_transport": "negotiate",
                                     "ansible_winrm_kerberos_hostname_override": "ex01.contoso.com"}))
            .unwrap()
            .connection;
        assert_eq!(
            overridden.winrm.effective_auth(&overridden.address),
            WinrmAuth::Kerberos
        );
        assert_eq!(
            overridden.winrm.kerberos_hostname.as_deref(),
            Some("ex01.contoso.com")
        );
        // A password means salve gets the ticket; none means the credential cache.
        assert_eq!(overridden.winrm.kinit_mode, KinitMode::Manual);
        let managed =
            read(json!({"ansible_winrm_transport": "kerberos", "ansible_password": "env:PW"}))
                .unwrap()
                .connection;
        assert_eq!(managed.winrm.kinit_mode, KinitMode::Managed);
    }

    #[test]
    fn basic_on_5986_is_https() {
        let s = read(json!({"ansible_host": "127.0.0.2", "ansible_port": "5986", "ansible_winrm_transport": "basic",
                          "ansible_winrm_server_cert_validation": "ignore", "ansible_password": "env:PW"}))
        .unwrap()
        .connection;
        assert!(s.winrm.https && !s.winrm.verify_tls);
        assert_eq!(s.password, Some(SecretRef::Env("PW".into())));
        assert_eq!(s.endpoint(), "127.0.0.2:5986");
    }

    #[test]
    fn rejects_unknown_values_with_the_variable_name() {
        let e = read(json!({"ansible_connection": "telnet"})).unwrap_err();
        assert_eq!(e[0].var, "ansible_connection");
    }

    #[test]
    fn nothing_set_is_winrm_any_time_no_dag() {
        let s = read(json!({})).unwrap();
        assert_eq!(s.connection.kind, ConnectionKind::Winrm);
        assert_eq!((s.schedule, s.dag), (None, None));
    }

    #[test]
    fn a_dag_is_named_by_any_string_or_number() {
        for (value, name) in [
            (json!("DAG1"), "DAG1"),
            (json!(1), "1"),
            (json!(2019), "2019"),
            (json!(-3), "-3"),
            (json!(1.5), "1.5"),
        ] {
            assert_eq!(
                read(json!({ DAG_VAR: value })).unwrap().dag.as_deref(),
                Some(name)
            );
        }
        assert_eq!(read(json!({ DAG_VAR: null })).unwrap().dag, None);
    }

    #[test]
    fn a_dag_named_by_a_boolean_a_list_a_mapping_or_nothing_is_an_error() {
        for (value, found) in [
            (json!(true), "boolean `true`"),
            (json!(["a", "b"]), "a list"),
            (json!({"name": "a"}), "a mapping"),
            (json!(""), "string ``"),
        ] {
            assert_eq!(
                errors(json!({ DAG_VAR: value })),
                [format!("salve_dag: expected a DAG name, found {found}")]
            );
        }
    }

    #[test]
    fn windows_are_read_one_or_several_and_keep_their_text() {
        let s = read(json!({ WINDOW_VAR: " Sat 22:00-Sun 04:00 UTC " })).unwrap();
        assert_eq!(s.window_texts(), ["Sat 22:00-Sun 04:00 UTC"]);
        let s =
            read(json!({ WINDOW_VAR: ["daily 01:00-02:00 UTC", "Sun 00:00-06:00 UTC"] })).unwrap();
        assert_eq!(
            s.window_texts(),
            ["daily 01:00-02:00 UTC", "Sun 00:00-06:00 UTC"]
        );
        assert!(read(json!({})).unwrap().window_texts().is_empty());
    }

    #[test]
    fn each_bad_window_is_an_error_naming_its_item() {
        assert_eq!(
            errors(json!({ WINDOW_VAR: ["daily 01:00-02:00 UTC", 7, "Sat 25:00-Sun 04:00 UTC"] })),
            [
                "salve_maintenance_window[1]: expected a window such as `Sat 22:00-Sun 04:00 Europe/Brussels`, found number `7`",
                "salve_maintenance_window[2]: `25:00` is not a time (HH:MM, 00:00 to 23:59)",
            ]
        );
        assert_eq!(
            errors(json!({ WINDOW_VAR: [] })),
            [
                "salve_maintenance_window: expected a window or a list of windows, found an empty list"
            ]
        );
        assert_eq!(
            errors(json!({ WINDOW_VAR: null })),
            [
                "salve_maintenance_window: expected a window such as `Sat 22:00-Sun 04:00 Europe/Brussels`, found nothing (null)"
            ]
        );
    }

    #[test]
    fn each_bad_connection_value_is_an_error() {
        let cases = [
            (
                "ansible_connection",
                json!("telnet"),
                "expected winrm, ssh or local, found string `telnet`",
            ),
            (
                "ansible_port",
                json!(70000),
                "expected a port number 1-65535, found number `70000`",
            ),
            (
                "ansible_port",
                json!("http"),
                "expected a port number 1-65535, found string `http`",
            ),
            (
                "ansible_port",
                json!(0),
                "expected a port number 1-65535, found number `0`",
            ),
            (
                "ansible_winrm_transport",
                json!("kerberoz"),
                "expected ntlm, negotiate, basic, kerberos or certificate, found string `kerberoz`",
            ),
            (
                "ansible_winrm_kinit_mode",
                json!("auto"),
                "expected managed or manual, found string `auto`",
            ),
            (
                "ansible_winrm_scheme",
                json!("ftp"),
                "expected http or https, found string `ftp`",
            ),
            (
                "ansible_winrm_server_cert_validation",
                json!(false),
                "expected validate or ignore, found boolean `false`",
            ),
            (
                "ansible_winrm_operation_timeout_sec",
                json!("soon"),
                "expected a whole number of seconds, found string `soon`",
            ),
            (
                "salve_ssh_host_key_checking",
                json!("no"),
                "expected strict or accept-new, found string `no`",
            ),
            (
                "salve_winrm_allow_basic_http",
                json!(2),
                "expected true or false, found number `2`",
            ),
            (
                "ansible_host",
                json!(["a", "b"]),
                "expected a single value, found a list",
            ),
        ];
        for (var, value, message) in cases {
            assert_eq!(
                errors(json!({ var: value })),
                [format!("{var}: {message}")],
                "{var}"
            );
        }
    }

    #[test]
    fn every_bad_value_is_reported_not_just_the_first() {
        let e = errors(json!({
            "ansible_connection": "telnet", "ansible_port": -1, DAG_VAR: false,
            WINDOW_VAR: "whenever"
        }));
        assert_eq!(e.len(), 4, "{e:?}");
    }

    #[test]
    fn a_password_written_as_a_list_is_not_repeated() {
        let e = read(json!({"ansible_password": ["hunter2"]})).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "variable `ansible_password` = <redacted>: expected a single value, found a list"
        );
    }
}
