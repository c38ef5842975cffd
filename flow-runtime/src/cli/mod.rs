//! The command-line interface that `flow_runtime::main!()` gives an integration binary.

/// Prints a line to standard output; a closed pipe (`| head`) ends the output quietly instead
/// of panicking.
macro_rules! print_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod executions;
mod invoke;
mod lifecycle;
mod schedule;
mod serve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use flow_core::EndpointSecurity;

use crate::clock::SystemClock;
use crate::config::{FileConfig, Overrides, RuntimeSettings, build_instances};
use crate::engine::{EngineSettings, Runtime};
use crate::instance::Instance;
use crate::integration::Integration;
use crate::registry::Registry;
use crate::store::{PostgresStore, ServingLock, SqliteStore, Store};
use crate::config::StoreLocation;

/// Exit code for a configuration or usage error.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a flow that failed.
const EXIT_FAILED: u8 = 1;

#[derive(Debug, Parser)]
#[command(about = "Serves and runs the flows of this integration", version)]
struct Cli {
    /// Configuration file (TOML); `FLOW_CONFIG` sets it too.
    #[arg(long, global = true, env = "FLOW_CONFIG")]
    config: Option<PathBuf>,

    /// Store URL: sqlite://PATH (the default, sqlite://flows.db) for one server, or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE for several; overrides the config
    /// file and `FLOW_STORE`.
    #[arg(long, global = true)]
    store: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves every flow over HTTP.
    Serve {
        /// Listen address, such as 127.0.0.1:8080.
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Lists the flows and their settings.
    Flows {
        /// Prints JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Runs one flow in this process (trigger, then execution) and prints its result.
    Invoke(invoke::InvokeArgs),
    /// Reads stored executions.
    Executions {
        #[command(subcommand)]
        command: executions::ExecutionsCommand,
    },
    /// Prints the integration definition as JSON.
    Manifest,
    /// Prints a scheduled flow's next fire instants, in UTC and in the schedule's time zone.
    Schedule(schedule::ScheduleArgs),
    /// Deploys an instance: runs every flow's `on_instance_deploy` and webhook create hooks.
    Deploy {
        /// Instance id, as in the config file.
        instance: String,
    },
    /// Deletes an instance: runs every flow's webhook delete and `on_instance_delete` hooks.
    Delete {
        /// Instance id, as in the config file.
        instance: String,
        /// Records the instance as deleted even when hooks fail, as when the remote webhook
        /// is already gone.
        #[arg(long)]
        force: bool,
    },
}

impl Command {
    /// Returns the log level for when `RUST_LOG` is unset. Read-only commands log at `warn`,
    /// so their stderr keeps only hints and errors. Commands that run flows log at `info`, the
    /// level of the flows' own log lines.
    fn default_log_level(&self) -> &'static str {
        match self {
            Self::Flows { .. } | Self::Manifest | Self::Executions { .. } | Self::Schedule(_) => "warn",
            Self::Serve { .. } | Self::Invoke(_) | Self::Deploy { .. } | Self::Delete { .. } => "info",
        }
    }
}

/// Parses the command line and runs the command; the body of the `main` that
/// [`main!`](crate::main) generates.
pub fn run(integration: Integration) -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.command.default_log_level());

    let registry = match Registry::from_inventory(integration) {
        Ok(registry) => registry,
        Err(error) => return fail(EXIT_CONFIG, &error.to_string()),
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(EXIT_CONFIG, &format!("cannot start the async runtime: {error}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Flows { json } => {
                print_flows(&registry, json);
                Ok(())
            }
            Command::Manifest => {
                print_line!("{}", serde_json::to_string_pretty(&registry.manifest()).unwrap_or_default());
                Ok(())
            }
            Command::Schedule(args) => {
                let overrides = Overrides { addr: None, store: cli.store };
                schedule::schedule(&registry, cli.config, &overrides, args)
            }
            Command::Serve { addr } => {
                let overrides = Overrides { addr, store: cli.store };
                serve::serve(registry, cli.config, overrides).await
            }
            Command::Invoke(args) => {
                let overrides = Overrides { addr: None, store: cli.store };
                invoke::invoke(registry, cli.config, overrides, args).await
            }
            Command::Deploy { instance } => {
                let overrides = Overrides { addr: None, store: cli.store };
                lifecycle::run(registry, cli.config, overrides, &instance, lifecycle::Action::Deploy).await
            }
            Command::Delete { instance, force } => {
                let overrides = Overrides { addr: None, store: cli.store };
                lifecycle::run(registry, cli.config, overrides, &instance, lifecycle::Action::Delete(force)).await
            }
            Command::Executions { command } => {
                let overrides = Overrides { addr: None, store: cli.store };
                executions::run(cli.config, overrides, command).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError { code, message }) => fail(code, &message),
    }
}

/// A command's failure: the exit code and the message for standard error.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// Logs to stderr at `RUST_LOG`'s levels, or at `default_level` when it is unset or invalid.
fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let colors = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colors)
        .with_writer(std::io::stderr)
        // With this on, a failed write to stderr (a closed pipe, a full disk) is reported with
        // `eprintln!`, which panics and would end the task that logged.
        .log_internal_errors(false)
        .try_init();
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads the config file (when given) and merges environment and command-line overrides.
pub(crate) fn load_settings(config: Option<PathBuf>, overrides: &Overrides) -> Result<RuntimeSettings, CliError> {
    let file = match &config {
        Some(path) => FileConfig::load(path).map_err(|error| CliError::config(error.to_string()))?,
        None => FileConfig::default(),
    };
    RuntimeSettings::resolve(file, overrides, env_var).map_err(|error| CliError::config(error.to_string()))
}

/// An opened store of either kind.
pub(crate) enum OpenedStore {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// The shared PostgreSQL database.
    Postgres(Arc<PostgresStore>),
}

impl OpenedStore {
    /// Returns the store as the engine uses it.
    pub(crate) fn shared(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => Arc::clone(store) as Arc<dyn Store>,
            Self::Postgres(store) => Arc::clone(store) as Arc<dyn Store>,
        }
    }

    /// Takes the lock that lets one server own a SQLite store. A PostgreSQL store needs none,
    /// because several servers may share it, so this returns `None` for it.
    pub(crate) fn lock_for_serving(&self) -> Result<Option<ServingLock>, CliError> {
        match self {
            Self::Sqlite(store) => store.lock_for_serving().map(Some).map_err(|error| CliError::config(error.to_string())),
            Self::Postgres(_) => Ok(None),
        }
    }
}

/// Opens the store named by the settings.
pub(crate) async fn open_store(settings: &RuntimeSettings) -> Result<OpenedStore, CliError> {
    match &settings.store {
        StoreLocation::Sqlite(path) => SqliteStore::open(path, settings.durability)
            .map(|store| OpenedStore::Sqlite(Arc::new(store)))
            .map_err(|error| CliError::config(error.to_string())),
        StoreLocation::Postgres(url) => PostgresStore::connect(url)
            .await
            .map(|store| OpenedStore::Postgres(Arc::new(store)))
            .map_err(|error| CliError::config(error.to_string())),
    }
}

/// A runtime's parts that come from the configuration and the environment. They are checked
/// before the store opens, so a configuration error leaves no new store file behind.
pub(crate) struct PreparedRuntime {
    registry: Registry,
    instances: Vec<Instance>,
    organization_keys: HashMap<String, Vec<String>>,
    workers: usize,
}

impl PreparedRuntime {
    /// Builds the instances and resolves the organization keys from the environment.
    pub(crate) fn new(registry: Registry, settings: &RuntimeSettings) -> Result<Self, CliError> {
        let instances = build_instances(settings, &registry, env_var).map_err(|error| CliError::config(error.to_string()))?;

        let mut organization_keys = HashMap::new();
        for flow in registry.flows() {
            if flow.config.endpoint_security != EndpointSecurity::Organization {
                continue;
            }
            let mut keys = Vec::new();
            for source in &flow.config.organization_api_keys {
                let key = source
                    .resolve(env_var)
                    .map_err(|reason| CliError::config(format!("flow \"{}\": {reason}", flow.stable_key())))?;
                keys.push(key);
            }
            organization_keys.insert(flow.stable_key().to_owned(), keys);
        }

        Ok(Self {
            registry,
            instances,
            organization_keys,
            workers: settings.workers,
        })
    }

    /// Returns the integration's flows.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns the configured instances, in the configuration's order.
    pub(crate) fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Builds the engine over `store`. Returns it with the organization keys of each flow.
    pub(crate) fn on(self, store: Arc<dyn Store>) -> (Runtime, HashMap<String, Vec<String>>) {
        let runtime = Runtime::new(
            self.registry,
            self.instances,
            store,
            Arc::new(SystemClock),
            EngineSettings {
                workers: self.workers,
                ..EngineSettings::default()
            },
        );
        (runtime, self.organization_keys)
    }
}

fn print_flows(registry: &Registry, json: bool) {
    if json {
        print_line!("{}", serde_json::to_string_pretty(&registry.flows_json()).unwrap_or_default());
        return;
    }
    print_line!("{:<28} {:<28} {:<12} {:<18} {:<18} {}", "STABLE KEY", "NAME", "MODE", "QUEUE", "SECURITY", "SCHEDULE");
    for flow in registry.flows() {
        let config = &flow.config;
        let mode = if config.synchronous { "synchronous" } else { "asynchronous" };
        let mut queue = match config.queue_mode() {
            flow_core::QueueMode::Parallel => "parallel".to_owned(),
            flow_core::QueueMode::Throttled { concurrency_limit } => format!("throttled({concurrency_limit})"),
            flow_core::QueueMode::Sequential => "sequential".to_owned(),
        };
        if config.queue.as_ref().is_some_and(|queue| queue.singleton) {
            queue.push_str(",singleton");
        }
        let mode = match (config.trigger_type, config.agent, config.preprocess.is_some()) {
            (flow_core::TriggerType::Polling, _, _) => "polling",
            (_, _, true) => "preprocess",
            (_, true, _) => "agent",
            _ => mode,
        };
        let security = serde_json::to_value(config.endpoint_security)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let schedule = match &config.schedule {
            Some(schedule) => {
                let source = match &schedule.source {
                    flow_core::ScheduleSource::Cron(cron) => cron.clone(),
                    flow_core::ScheduleSource::ConfigVar(name) => format!("config var \"{name}\""),
                };
                format!("{source} ({})", schedule.timezone.as_deref().unwrap_or("UTC"))
            }
            None => "-".to_owned(),
        };
        print_line!(
            "{:<28} {:<28} {:<12} {:<18} {:<18} {}",
            config.stable_key, config.name, mode, queue, security, schedule
        );
    }
}
