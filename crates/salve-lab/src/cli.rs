//! `salve lab ...` subcommands: `serve` (run a simulated fleet in the foreground), `init` and
//! `shell` (the process-per-command mode behind an OpenSSH ForceCommand), and `state` (look
//! into a running lab through its admin endpoint).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, StateView};
use crate::fleet::Fleet;
use crate::frontends;
use crate::inventory::{self, PasswordIn};
use crate::log::LogEntry;
use crate::scenario::{self, FleetSpec};
use crate::shell;
use crate::winrm::LabCa;
use salve_contract::exit;

/// Arguments of `salve lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Run a simulated fleet in the foreground until Ctrl-C.
    Serve(ServeArgs),
    /// Create a state directory for `salve lab shell` (the SSH ForceCommand mode).
    Init(InitArgs),
    /// Run SSH_ORIGINAL_COMMAND on one simulated host (use as an OpenSSH ForceCommand).
    Shell(ShellArgs),
    /// Show the hosts (and optionally the state log) of a running lab.
    State(StateArgs),
}

/// Which fleet to simulate.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Scenario file (YAML); without it, a default mix of `--hosts` servers.
    #[arg(long, value_name = "FILE", conflicts_with = "hosts")]
    pub scenario: Option<PathBuf>,
    /// Number of servers in the default mix.
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub hosts: usize,
    /// Seed of the default mix (a scenario file sets its own).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second (600: a 60-minute CU install takes 6 s).
    #[arg(long, value_name = "X")]
    pub time_scale: Option<f64>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Write an Ansible-format inventory of the fleet to FILE.
    #[arg(long, value_name = "FILE")]
    pub inventory_out: Option<PathBuf>,
    /// In the inventory, refer to the password as `env:VAR` instead of writing it.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Serve `GET /state` and `GET /log` on this loopback address (e.g. 127.0.0.1:8950).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Also serve HTTPS on port 5986, with certificates from a lab CA written to FILE (PEM).
    #[arg(long, value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    /// Serve the hosts on 127.B.x.y instead of 127.0.x.y, so several labs (a demo, a benchmark,
    /// tests) can run side by side on one machine.
    #[arg(long, value_name = "B", value_parser = clap::value_parser!(u8).range(1..=254))]
    pub block: Option<u8>,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Directory that holds the fleet state.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// Directory created by `salve lab init`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The simulated host this SSH account stands for.
    #[arg(long, value_name = "NAME")]
    pub host: String,
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Admin address of the running lab (`salve lab serve --admin ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub admin: SocketAddr,
    /// Only this host.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Print the state log instead of the hosts.
    #[arg(long)]
    pub log: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The caller's way to make the async runtime for `serve` and `state` (salve's CLI owns that
/// choice); on failure it has reported the error and gives the exit code.
pub type RuntimeFn = fn() -> Result<tokio::runtime::Runtime, u8>;

/// Run a `salve lab` subcommand; returns the process exit code.
pub fn run(args: LabArgs, runtime: RuntimeFn) -> u8 {
    match args.command {
        LabCommand::Serve(a) => serve(a, runtime),
        LabCommand::Init(a) => init(a),
        LabCommand::Shell(a) => {
            match shell::run(
                &a.state_dir,
                &a.host,
                std::env::var("SSH_ORIGINAL_COMMAND").ok(),
            ) {
                // The ssh channel carries the low byte of the exit status.
                Ok(code) => code as u8,
                Err(e) => {
                    eprintln!("error: {e}");
                    shell::EXIT_UNREACHABLE as u8
                }
            }
        }
        LabCommand::State(a) => state(a, runtime),
    }
}

fn resolve(args: &FleetArgs) -> Result<FleetSpec, u8> {
    let spec = match &args.scenario {
        Some(path) => scenario::load(path),
        None => scenario::default_scenario(args.hosts, args.seed),
    };
    match spec {
        Ok(mut spec) => {
            if let Some(x) = args.time_scale {
                spec.time_scale = x;
            }
            Ok(spec)
        }
        Err(diags) => {
            eprint!("{}", diags.render());
            Err(exit::INVALID_INPUT)
        }
    }
}

fn serve(args: ServeArgs, runtime: RuntimeFn) -> u8 {
    let spec = match resolve(&args.fleet) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let fleet = Arc::new(Fleet::new_in_block(&spec, args.block.unwrap_or(0)));
        if let Some(path) = &args.inventory_out {
            let password = args
                .password_env
                .as_ref()
                .map_or(PasswordIn::ClearText, |v| {
                    PasswordIn::Reference(format!("env:{v}"))
                });
            if let Err(e) = std::fs::write(path, inventory::render(&fleet, &password)) {
                eprintln!("error: cannot write inventory {}: {e}", path.display());
                return exit::INTERNAL;
            }
            eprintln!("inventory written to {}", path.display());
        }
        let cancel = CancellationToken::new();
        if let Some(addr) = args.admin {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    eprintln!("admin endpoint on http://{addr}/state and /log");
                    tokio::spawn(admin::serve(listener, Arc::clone(&fleet), cancel.clone()));
                }
                Err(e) => {
                    eprintln!("error: cannot listen on {addr} for the admin endpoint: {e}");
                    return exit::INTERNAL;
                }
            }
        }
        if let Err(code) = start_front_ends(&fleet, args.ca_out.as_ref(), &cancel).await {
            return code;
        }
        eprintln!(
            "lab running: {} hosts, {} tenants on 127.{}.x.y, time scale {}; Ctrl-C to stop",
            fleet.hosts().len(),
            fleet.tenants().len(),
            args.block.unwrap_or(0),
            spec.time_scale
        );
        // Ctrl-C or a failed signal handler both end the lab.
        let _ = tokio::signal::ctrl_c().await;
        cancel.cancel();
        exit::OK
    })
}

/// Start the WinRM listeners of every host (HTTPS too when `--ca-out` is given).
async fn start_front_ends(
    fleet: &Arc<Fleet>,
    ca_out: Option<&PathBuf>,
    cancel: &CancellationToken,
) -> Result<(), u8> {
    let ca = match ca_out {
        None => None,
        Some(path) => {
            let ca = LabCa::generate()
                .and_then(|ca| ca.write_pem(path).map(|()| ca))
                .map_err(|e| {
                    eprintln!("error: cannot write the lab CA to {}: {e}", path.display());
                    exit::INTERNAL
                })?;
            eprintln!("lab CA written to {}", path.display());
            Some(ca)
        }
    };
    frontends::start(fleet, ca.as_ref(), cancel)
        .await
        .map(|_| ())
        .map_err(|e| {
            eprintln!("error: {e}");
            exit::INTERNAL
        })
}

fn init(args: InitArgs) -> u8 {
    let spec = match resolve(&args.fleet) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let fleet = Fleet::new(&spec);
    match shell::StateDir::new(&args.state_dir).init(&fleet) {
        Ok(()) => {
            println!(
                "{} hosts written to {}",
                fleet.hosts().len(),
                args.state_dir.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::INTERNAL
        }
    }
}

fn state(args: StateArgs, runtime: RuntimeFn) -> u8 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let target = format!(
        "{}{}",
        if args.log { "/log" } else { "/state" },
        args.host
            .as_ref()
            .map(|h| format!("?host={h}"))
            .unwrap_or_default()
    );
    let body = match rt.block_on(admin::fetch(args.admin, &target)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INTERNAL;
        }
    };
    if args.json {
        println!("{body}");
        return exit::OK;
    }
    let text = if args.log {
        serde_json::from_str::<Vec<LogEntry>>(&body).map(|l| render_log(&l))
    } else {
        serde_json::from_str::<StateView>(&body).map(|v| render_state(&v))
    };
    match text {
        Ok(t) => {
            print!("{t}");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: the admin endpoint answered JSON this salve cannot read: {e}");
            exit::INTERNAL
        }
    }
}

/// One line per host: the facts people ask about first.
pub fn render_state(view: &StateView) -> String {
    let mut out = format!("simulated time {} (x{})\n", view.sim_time, view.time_scale);
    out.push_str(&format!(
        "{:<20} {:<10} {:<14} {:<14} {:<8} {:<5} {:<12} {}\n",
        "HOST", "TENANT", "BUILD", "PENDING", "POWER", "EOMT", "MAINTENANCE", "KBS"
    ));
    for h in &view.hosts {
        let power = match h.power {
            crate::state::Power::Up => "up",
            crate::state::Power::ShuttingDown { .. } => "stopping",
            crate::state::Power::Down { .. } => "down",
        };
        let maintenance = h
            .component("ServerWideOffline")
            .is_some_and(|c| c.state != "Active");
        out.push_str(&format!(
            "{:<20} {:<10} {:<14} {:<14} {:<8} {:<5} {:<12} {}\n",
            h.name,
            h.tenant,
            h.build
                .map_or_else(|| "missing".to_string(), |b| b.to_string()),
            h.pending_build
                .map_or_else(|| "-".to_string(), |b| b.to_string()),
            power,
            if h.rewrite_rules.is_empty() {
                "no"
            } else {
                "yes"
            },
            if maintenance { "yes" } else { "no" },
            h.installed_kbs().join(",")
        ));
    }
    out
}

/// One line per log entry.
pub fn render_log(entries: &[LogEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            let event = serde_json::to_string(&e.event).unwrap_or_default();
            format!("{:>5} {} {:<20} {event}\n", e.seq, e.sim_time, e.host)
        })
        .collect()
}
