//! Runtime configuration: a TOML file, environment overrides, and the instances it declares.
//!
//! ```toml
//! [server]
//! addr = "127.0.0.1:8080"            # FLOW_ADDR
//! public_url = "https://flows.example.com"   # FLOW_PUBLIC_URL; default http://{addr}
//! body_limit = 10485760              # bytes, FLOW_BODY_LIMIT
//! sync_timeout_seconds = 30          # FLOW_SYNC_TIMEOUT_SECONDS
//! admin_token = "..."                # FLOW_ADMIN_TOKEN; guards /executions when set
//! workers = 64                       # FLOW_WORKERS: executions running at once
//! shutdown_grace_seconds = 30        # FLOW_SHUTDOWN_GRACE_SECONDS
//!
//! [store]
//! url = "sqlite://flows.db"          # FLOW_STORE; or postgres://USER@HOST/DATABASE
//! durability = "full"                # or "normal"; SQLite only
//!
//! [[instances]]
//! id = "acme"
//! name = "Acme"
//! customer = { id = "cus_1", name = "Acme Corp", external_id = "A-1" }
//! config = { "API Base URL" = "https://erp.example.com", "ERP Token" = { env = "ACME_ERP_TOKEN" } }
//! api_keys = { "process-order" = ["k_live_1"] }
//! ```
//!
//! With no file and no instances, one instance named `default` is used.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use flow_core::{Customer, EndpointType};
use serde::Deserialize;
use serde_json::Value;

use crate::instance::Instance;
use crate::registry::Registry;

/// Default body limit: 10 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// Default wait for a synchronous response, in seconds.
pub const DEFAULT_SYNC_TIMEOUT_SECONDS: u64 = 30;

/// Default time a client has to send a whole request body, in seconds. Senders give up on
/// slow endpoints sooner: GitHub's webhook best practices ask for a response within 30
/// seconds. A 10 MiB body at 100 KB/s takes about 100 s.
pub const DEFAULT_BODY_TIMEOUT_SECONDS: u64 = 120;
/// Default store location.
pub const DEFAULT_STORE_URL: &str = "sqlite://flows.db";
/// Default listen address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default grace period for running executions at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 30;
/// Default number of executions running at once.
pub const DEFAULT_WORKERS: usize = 64;

/// A configuration that cannot be used; the message names the setting and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address.
    pub addr: Option<SocketAddr>,
    /// Base of the webhook URLs handed to flows.
    pub public_url: Option<String>,
    /// Request body limit in bytes, checked on the decoded size.
    pub body_limit: Option<usize>,
    /// Longest wait for a synchronous response before 504, in seconds.
    pub sync_timeout_seconds: Option<u64>,
    /// Maximum time a client may take to send a whole request body before 408, in seconds.
    pub body_timeout_seconds: Option<u64>,
    /// Bearer token for the executions API.
    pub admin_token: Option<String>,
    /// Executions running at once.
    pub workers: Option<usize>,
    /// How long open connections, and then running executions, may finish after SIGTERM or
    /// Ctrl-C, in seconds.
    pub shutdown_grace_seconds: Option<u64>,
}

/// Store settings.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://PATH`, a plain file path, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    pub url: Option<String>,
    /// `full` (default) or `normal`; applies to SQLite only, since PostgreSQL commits follow
    /// the server's `synchronous_commit` setting.
    pub durability: Option<String>,
}

/// An instance as written in the config file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    /// Id used in URLs.
    pub id: String,
    /// Display name; the id when absent.
    pub name: Option<String>,
    /// The customer.
    #[serde(default)]
    pub customer: CustomerSettings,
    /// Config variable values; `{ env = "NAME" }` reads an environment variable.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// API keys per flow stable key.
    #[serde(default)]
    pub api_keys: BTreeMap<String, Vec<String>>,
}

/// The customer of an instance.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettings {
    /// Id.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Id in the customer's systems.
    pub external_id: Option<String>,
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// HTTP server settings.
    #[serde(default)]
    pub server: ServerSettings,
    /// Store settings.
    #[serde(default)]
    pub store: StoreSettings,
    /// Instances.
    #[serde(default)]
    pub instances: Vec<InstanceSettings>,
}

/// Settings after the file, the environment and the command line are merged.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Base of webhook URLs, without a trailing slash.
    pub public_url: String,
    /// Body limit in bytes.
    pub body_limit: usize,
    /// Longest wait for a synchronous response.
    pub sync_timeout: std::time::Duration,
    /// Maximum time a client may take to send a whole request body.
    pub body_timeout: std::time::Duration,
    /// Token for the executions API.
    pub admin_token: Option<String>,
    /// Executions running at once.
    pub workers: usize,
    /// How long open connections, and then running executions, may finish after SIGTERM or
    /// Ctrl-C.
    pub shutdown_grace: std::time::Duration,
    /// Location of the store.
    pub store: StoreLocation,
    /// Path of the SQLite file; empty when `store` is a PostgreSQL database.
    pub store_path: PathBuf,
    /// Whether commits are fsynced fully.
    pub durability: crate::store::Durability,
    /// Instances as written.
    pub instances: Vec<InstanceSettings>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--addr`.
    pub addr: Option<SocketAddr>,
    /// `--store`.
    pub store: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the file and TOML's reason.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError(format!("cannot read config file {}: {error}", path.display())))?;
        toml::from_str(&text).map_err(|error| ConfigError(format!("invalid config file {}: {error}", path.display())))
    }
}

impl RuntimeSettings {
    /// Merges the file (if any), environment variables (`FLOW_*`, read through `env`) and
    /// command-line overrides, in rising priority.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the setting that does not parse.
    pub fn resolve(
        file: FileConfig,
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parse_env = |name: &str| -> Result<Option<u64>, ConfigError> {
            env(name)
                .map(|text| {
                    text.parse::<u64>()
                        .map_err(|_| ConfigError(format!("environment variable {name}=\"{text}\" is not a whole number")))
                })
                .transpose()
        };

        let addr = match (overrides.addr, env("FLOW_ADDR")) {
            (Some(addr), _) => addr,
            (None, Some(text)) => text
                .parse()
                .map_err(|_| ConfigError(format!("FLOW_ADDR=\"{text}\" is not a socket address such as 127.0.0.1:8080")))?,
            (None, None) => file.server.addr.unwrap_or_else(|| DEFAULT_ADDR.parse().expect("the default address parses")),
        };
        let public_url = env("FLOW_PUBLIC_URL")
            .or(file.server.public_url)
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let body_limit = match parse_env("FLOW_BODY_LIMIT")? {
            Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
            None => file.server.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
        };
        let sync_timeout_seconds = parse_env("FLOW_SYNC_TIMEOUT_SECONDS")?
            .or(file.server.sync_timeout_seconds)
            .unwrap_or(DEFAULT_SYNC_TIMEOUT_SECONDS);
        let body_timeout_seconds = parse_env("FLOW_BODY_TIMEOUT_SECONDS")?
            .or(file.server.body_timeout_seconds)
            .unwrap_or(DEFAULT_BODY_TIMEOUT_SECONDS);
        let workers = match parse_env("FLOW_WORKERS")? {
            Some(count) => usize::try_from(count).unwrap_or(usize::MAX),
            None => file.server.workers.unwrap_or(DEFAULT_WORKERS),
        };
        if workers == 0 {
            return Err(ConfigError("`workers` must be at least 1".to_owned()));
        }
        if body_limit == 0 {
            return Err(ConfigError("`body_limit` must be at least 1 byte; the default is 10485760 (10 MiB)".to_owned()));
        }
        if sync_timeout_seconds == 0 {
            return Err(ConfigError("`sync_timeout_seconds` must be at least 1; the default is 30".to_owned()));
        }
        if body_timeout_seconds == 0 {
            return Err(ConfigError("`body_timeout_seconds` must be at least 1; the default is 120".to_owned()));
        }
        let shutdown_grace_seconds = parse_env("FLOW_SHUTDOWN_GRACE_SECONDS")?
            .or(file.server.shutdown_grace_seconds)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECONDS);
        // An empty FLOW_ADMIN_TOKEN counts as unset, so it cannot switch off a file's token.
        let admin_token = env("FLOW_ADMIN_TOKEN").filter(|token| !token.is_empty()).or(file.server.admin_token);
        if admin_token.as_deref().is_some_and(|token| token.trim().is_empty()) {
            return Err(ConfigError(
                "`server.admin_token` is empty, which would leave the executions and admin API open; \
                 set a token of at least one character or remove the line"
                    .to_owned(),
            ));
        }

        let store_url = overrides
            .store
            .clone()
            .or_else(|| env("FLOW_STORE"))
            .or(file.store.url)
            .unwrap_or_else(|| DEFAULT_STORE_URL.to_owned());
        let store = parse_store_location(&store_url)?;
        let store_path = match &store {
            StoreLocation::Sqlite(path) => path.clone(),
            StoreLocation::Postgres(_) => PathBuf::new(),
        };
        let durability = match file.store.durability.as_deref() {
            None | Some("full") => crate::store::Durability::Full,
            Some("normal") => crate::store::Durability::Normal,
            Some(other) => {
                return Err(ConfigError(format!(
                    "store durability \"{other}\" is invalid; use \"full\" or \"normal\""
                )));
            }
        };

        Ok(Self {
            addr,
            public_url,
            body_limit,
            sync_timeout: std::time::Duration::from_secs(sync_timeout_seconds),
            body_timeout: std::time::Duration::from_secs(body_timeout_seconds),
            admin_token,
            workers,
            shutdown_grace: std::time::Duration::from_secs(shutdown_grace_seconds),
            store,
            store_path,
            durability,
            instances: file.instances,
        })
    }
}

/// Location of the store, as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file, served by one process at a time.
    Sqlite(PathBuf),
    /// A PostgreSQL database URL, shared by any number of serving processes.
    Postgres(String),
}

impl std::fmt::Display for StoreLocation {
    /// Formats the SQLite path, or the PostgreSQL URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&crate::store::redact_password(url)),
        }
    }
}

/// Parses a store URL: `postgres://...` or `postgresql://...` selects PostgreSQL, and
/// anything [`parse_store_url`] accepts selects SQLite.
///
/// # Errors
///
/// Returns a [`ConfigError`] for other schemes or an empty path.
pub fn parse_store_location(url: &str) -> Result<StoreLocation, ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(StoreLocation::Postgres(url.to_owned()));
    }
    parse_store_url(url).map(StoreLocation::Sqlite)
}

/// Parses `sqlite://PATH`, `sqlite:PATH` or a plain path.
///
/// # Errors
///
/// Returns a [`ConfigError`] for other schemes or an empty path.
pub fn parse_store_url(url: &str) -> Result<PathBuf, ConfigError> {
    let path = if let Some(path) = url.strip_prefix("sqlite://") {
        path
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        path
    } else if url.contains("://") {
        let shown = crate::store::redact_password(url);
        return Err(ConfigError(format!(
            "store URL \"{shown}\" has an unsupported scheme; use sqlite://PATH (e.g. sqlite://flows.db) or \
             postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        )));
    } else {
        url
    };
    if path.is_empty() {
        return Err(ConfigError(format!("store URL \"{url}\" has no file path; e.g. sqlite://flows.db")));
    }
    Ok(PathBuf::from(path))
}

/// Builds the runtime's instances: applies config defaults, checks required variables, and
/// computes webhook URLs for the integration's endpoint type. With no instance declared, one
/// named `default` is created.
///
/// # Errors
///
/// Returns a [`ConfigError`] naming the variable and the instance for a missing required
/// variable, an unset environment variable, a repeated instance id, API keys for an unknown
/// flow, or, on a shared endpoint, two instances with the same customer external id.
pub fn build_instances(
    settings: &RuntimeSettings,
    registry: &Registry,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Instance>, ConfigError> {
    let declared = if settings.instances.is_empty() {
        vec![InstanceSettings {
            id: "default".to_owned(),
            ..InstanceSettings::default()
        }]
    } else {
        settings.instances.clone()
    };

    let mut instances: Vec<Instance> = Vec::with_capacity(declared.len());
    for entry in declared {
        let valid_id = !entry.id.is_empty()
            && entry.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_id {
            return Err(ConfigError(format!(
                "instance id \"{}\" is invalid; use ASCII letters, digits, '-', '_' and '.', e.g. \"acme\"",
                entry.id
            )));
        }
        if instances.iter().any(|instance| instance.id == entry.id) {
            return Err(ConfigError(format!("instance id \"{}\" is declared twice; ids must be unique", entry.id)));
        }
        instances.push(build_instance(entry, settings, registry, &env)?);
    }
    if registry.integration().endpoint_type == EndpointType::SharedInstance {
        check_unique_customers(&instances)?;
    }
    Ok(instances)
}

/// Checks that no two instances have the same customer external id, which selects the instance
/// of a request to a shared endpoint.
fn check_unique_customers(instances: &[Instance]) -> Result<(), ConfigError> {
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for instance in instances {
        let Some(external_id) = instance.customer.external_id.as_deref() else {
            continue;
        };
        if let Some(first) = owners.insert(external_id, &instance.id) {
            return Err(ConfigError(format!(
                "instances \"{first}\" and \"{}\" both have customer external_id \"{external_id}\", which selects \
                 the instance on the shared endpoint; give each instance its own customer",
                instance.id
            )));
        }
    }
    Ok(())
}

fn build_instance(
    entry: InstanceSettings,
    settings: &RuntimeSettings,
    registry: &Registry,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Instance, ConfigError> {
    let id = entry.id.clone();

    let mut config: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in entry.config {
        if registry.integration().find_config_var(&name).is_none() {
            let known: Vec<&str> = registry.integration().config_vars.iter().map(|var| var.name.as_str()).collect();
            return Err(ConfigError(format!(
                "instance \"{id}\" sets config variable \"{name}\", which the integration does not declare; \
                 declared: {}",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
        config.insert(name.clone(), config_value(&id, &name, value, env)?);
    }
    for var in &registry.integration().config_vars {
        if !config.contains_key(&var.name) {
            if let Some(default) = &var.default {
                config.insert(var.name.clone(), default.clone());
            } else if var.required {
                return Err(ConfigError(format!(
                    "instance \"{id}\" has no value for the required config variable \"{}\"; \
                     set it in the instance's `config = {{ ... }}` in the config file",
                    var.name
                )));
            }
        }
    }

    for (key, values) in &entry.api_keys {
        if registry.get(key).is_none() {
            return Err(ConfigError(format!(
                "instance \"{id}\" sets API keys for \"{key}\", which is not a flow's stable key"
            )));
        }
        if values.iter().any(|value| value.trim().is_empty()) {
            return Err(ConfigError(format!(
                "instance \"{id}\" has an empty API key for \"{key}\"; remove it or set a non-empty key"
            )));
        }
    }

    for flow in registry.flows() {
        if let Some(schedule) = &flow.config.schedule {
            resolve_schedule(schedule, &config, &id).map_err(|message| {
                ConfigError(format!("flow \"{}\" of instance \"{id}\": {message}", flow.stable_key()))
            })?;
        }
    }

    let mut webhook_urls = BTreeMap::new();
    let mut keys_by_name = BTreeMap::new();
    for flow in registry.flows() {
        let url = match registry.integration().endpoint_type {
            EndpointType::FlowSpecific => format!("{}/webhooks/{}/{}", settings.public_url, id, flow.stable_key()),
            EndpointType::InstanceSpecific => format!("{}/webhooks/{}", settings.public_url, id),
            EndpointType::SharedInstance => format!("{}/webhooks", settings.public_url),
        };
        webhook_urls.insert(flow.name().to_owned(), url);
        let keys = entry.api_keys.get(flow.stable_key()).cloned().unwrap_or_default();
        keys_by_name.insert(flow.name().to_owned(), keys);
    }

    let secret_config = registry
        .integration()
        .config_vars
        .iter()
        .filter(|var| var.secret)
        .map(|var| var.name.clone())
        .collect();

    Ok(Instance {
        secret_config,
        name: entry.name.unwrap_or_else(|| id.clone()),
        customer: Customer {
            id: entry.customer.id,
            name: entry.customer.name,
            external_id: entry.customer.external_id,
        },
        config,
        api_keys: entry.api_keys,
        webhook_urls,
        webhook_api_keys_by_name: keys_by_name,
        id,
    })
}

/// Returns a flow's schedule for one instance: the literal cron expression, or the value of
/// the config variable that holds it, parsed with the rules the macro applies to literals.
///
/// # Errors
///
/// Returns a message naming the variable when it is missing or not text, or the rule the
/// cron expression or time zone breaks.
pub fn resolve_schedule(
    schedule: &flow_core::Schedule,
    config: &BTreeMap<String, Value>,
    instance: &str,
) -> Result<flow_core::CronSchedule, String> {
    let expression = match &schedule.source {
        flow_core::ScheduleSource::Cron(expression) => expression.clone(),
        flow_core::ScheduleSource::ConfigVar(name) => match config.get(name) {
            Some(Value::String(expression)) => {
                flow_core::check_cron(expression).map_err(|reason| {
                    format!(
                        "config variable \"{name}\" holds \"{expression}\", which is not a valid cron expression: {reason}; \
                         set it to five fields (minute hour day-of-month month day-of-week) such as \"*/5 * * * *\", \
                         or six with seconds first"
                    )
                })?;
                expression.clone()
            }
            Some(other) => {
                return Err(format!(
                    "config variable \"{name}\" holds the schedule, so it must be a cron expression string, not {other}"
                ));
            }
            None => {
                return Err(format!(
                    "config variable \"{name}\" holds the schedule but instance \"{instance}\" does not set it"
                ));
            }
        },
    };
    flow_core::CronSchedule::parse(&expression, schedule.timezone.as_deref()).map_err(|violation| violation.message)
}

fn config_value(
    instance: &str,
    name: &str,
    value: toml::Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Value, ConfigError> {
    if let toml::Value::Table(table) = &value
        && table.contains_key("env")
    {
        let (1, Some(toml::Value::String(variable))) = (table.len(), table.get("env")) else {
            return Err(ConfigError(format!(
                "config variable \"{name}\" of instance \"{instance}\" must be written \
                 {{ env = \"VARIABLE\" }} to read the environment, with nothing else in the table"
            )));
        };
        return env(variable).map(Value::String).ok_or_else(|| {
            ConfigError(format!(
                "config variable \"{name}\" of instance \"{instance}\" reads environment variable \
                 {variable}, which is unset"
            ))
        });
    }

    serde_json::to_value(value)
        .map_err(|error| ConfigError(format!("config variable \"{name}\" of instance \"{instance}\": {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integration::{ConfigVar, Integration};

    fn registry(vars: Vec<ConfigVar>) -> Registry {
        let mut integration = Integration::new("test", "Test", "0");
        integration.config_vars = vars;
        Registry::new(integration, Vec::new()).expect("empty registry")
    }

    fn settings(text: &str, env: &[(&str, &str)]) -> Result<RuntimeSettings, ConfigError> {
        let file: FileConfig = toml::from_str(text).expect("valid TOML");
        let lookup = |name: &str| env.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned());
        RuntimeSettings::resolve(file, &Overrides::default(), lookup)
    }

    #[test]
    fn no_file_gives_defaults_and_a_default_instance() {
        let settings = settings("", &[]).expect("valid");
        assert_eq!(settings.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(settings.body_limit, DEFAULT_BODY_LIMIT);
        let instances = build_instances(&settings, &registry(Vec::new()), |_| None).expect("valid");
        assert_eq!(instances.len(), 1);
        assert_eq!(instances[0].id, "default");
    }

    #[test]
    fn environment_overrides_the_file() {
        let settings = settings("[server]\nbody_limit = 100\n", &[("FLOW_BODY_LIMIT", "200")]).expect("valid");
        assert_eq!(settings.body_limit, 200);
    }

    #[test]
    fn invalid_environment_number_names_the_variable() {
        let error = settings("", &[("FLOW_BODY_LIMIT", "ten")]).expect_err("invalid");
        assert!(error.0.contains("FLOW_BODY_LIMIT=\"ten\""), "{}", error.0);
    }

    #[test]
    fn empty_admin_token_variable_keeps_the_file_token() {
        let settings = settings("[server]\nadmin_token = \"tok\"\n", &[("FLOW_ADMIN_TOKEN", "")]).expect("valid");
        assert_eq!(settings.admin_token.as_deref(), Some("tok"));
    }

    #[test]
    fn empty_admin_token_in_file_is_rejected() {
        let error = settings("[server]\nadmin_token = \"\"\n", &[]).expect_err("empty token");
        assert!(error.0.contains("`server.admin_token` is empty"), "{}", error.0);
    }

    #[test]
    fn unknown_setting_is_rejected() {
        let result: Result<FileConfig, _> = toml::from_str("[server]\nport = 8080\n");
        assert!(result.is_err());
    }

    #[test]
    fn missing_required_variable_names_it_and_the_instance() {
        let settings = settings("[[instances]]\nid = \"acme\"\n", &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("API Base URL").required()]);
        let error = build_instances(&settings, &registry, |_| None).expect_err("missing");
        assert!(error.0.contains("\"acme\""), "{}", error.0);
        assert!(error.0.contains("\"API Base URL\""), "{}", error.0);
    }

    #[test]
    fn default_fills_a_required_variable() {
        let settings = settings("[[instances]]\nid = \"acme\"\n", &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("Region").required().default_value("eu")]);
        let instances = build_instances(&settings, &registry, |_| None).expect("valid");
        assert_eq!(instances[0].config["Region"], Value::String("eu".into()));
    }

    #[test]
    fn variable_reads_the_environment() {
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Token\" = { env = \"ACME_TOKEN\" } }\n";
        let settings = settings(text, &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("Token").secret()]);
        let lookup = |name: &str| (name == "ACME_TOKEN").then(|| "t0k".to_owned());
        let instances = build_instances(&settings, &registry, lookup).expect("valid");
        assert_eq!(instances[0].config["Token"], Value::String("t0k".into()));
    }

    #[test]
    fn undeclared_variable_is_rejected() {
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Regoin\" = \"eu\" }\n";
        let settings = settings(text, &[]).expect("valid");
        let error = build_instances(&settings, &registry(vec![ConfigVar::new("Region")]), |_| None).expect_err("undeclared");
        assert!(error.0.contains("\"Regoin\""), "{}", error.0);
        assert!(error.0.contains("declared: Region"), "{}", error.0);
    }

    #[test]
    fn empty_api_key_is_rejected() {
        let text = "[[instances]]\nid = \"acme\"\napi_keys = { \"orders\" = [\"\"] }\n";
        let settings = settings(text, &[]).expect("valid");
        let flow = crate::definition::Flow {
            config: flow_core::FlowConfig {
                name: "Orders".into(),
                stable_key: "orders".into(),
                ..flow_core::FlowConfig::default()
            },
            execute: |_, _| Box::pin(async { Ok(Value::Null.into()) }),
            handlers: crate::definition::Handlers::default(),
            source: crate::definition::SourceLocation {
                file: "test.rs",
                line: 1,
                function: "orders",
            },
        };
        let registry = Registry::new(Integration::new("t", "t", "0"), vec![flow]).expect("valid");
        let error = build_instances(&settings, &registry, |_| None).expect_err("empty key");
        assert!(error.0.contains("empty API key"), "{}", error.0);
    }

    #[test]
    fn instance_id_with_a_space_is_rejected() {
        let settings = settings("[[instances]]\nid = \"a b\"\n", &[]).expect("valid");
        assert!(build_instances(&settings, &registry(Vec::new()), |_| None).is_err());
    }

    #[test]
    fn env_table_with_other_keys_is_rejected() {
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Token\" = { env = \"T\", x = 1 } }\n";
        let settings = settings(text, &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("Token")]);
        assert!(build_instances(&settings, &registry, |_| Some("v".into())).is_err());
    }

    #[test]
    fn body_timeout_defaults_to_two_minutes() {
        let settings = settings("", &[]).expect("valid");
        assert_eq!(settings.body_timeout, std::time::Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECONDS));
    }

    #[test]
    fn body_timeout_variable_overrides_the_file() {
        let settings =
            settings("[server]\nbody_timeout_seconds = 30\n", &[("FLOW_BODY_TIMEOUT_SECONDS", "45")]).expect("valid");
        assert_eq!(settings.body_timeout, std::time::Duration::from_secs(45));
    }

    #[test]
    fn zero_body_timeout_is_rejected() {
        let error = settings("[server]\nbody_timeout_seconds = 0\n", &[]).expect_err("invalid");
        assert!(error.0.contains("`body_timeout_seconds` must be at least 1"), "{}", error.0);
    }

    #[test]
    fn zero_body_limit_is_rejected() {
        assert!(settings("[server]\nbody_limit = 0\n", &[]).is_err());
    }

    #[test]
    fn repeated_instance_id_is_rejected() {
        let settings = settings("[[instances]]\nid = \"a\"\n[[instances]]\nid = \"a\"\n", &[]).expect("valid");
        assert!(build_instances(&settings, &registry(Vec::new()), |_| None).is_err());
    }

    fn routed_registry(endpoint_type: EndpointType) -> Registry {
        let integration = Integration::new("test", "Test", "0").endpoint_type(endpoint_type).preprocess(
            crate::integration::PreprocessFields::new()
                .flow_name_field("body.event")
                .external_customer_id_field("body.customer"),
        );
        Registry::new(integration, Vec::new()).expect("valid routing")
    }

    #[test]
    fn shared_endpoint_rejects_two_instances_of_one_customer() {
        let text = "[[instances]]\nid = \"a\"\ncustomer = { external_id = \"C-1\" }\n\
                    [[instances]]\nid = \"b\"\ncustomer = { external_id = \"C-1\" }\n";
        let settings = settings(text, &[]).expect("valid");
        let error = build_instances(&settings, &routed_registry(EndpointType::SharedInstance), |_| None)
            .expect_err("same customer twice");
        assert!(error.0.contains("\"C-1\""), "{}", error.0);
    }

    #[test]
    fn instance_specific_endpoint_gives_one_url_per_instance() {
        let text = "[server]\npublic_url = \"https://flows.example.com\"\n[[instances]]\nid = \"acme\"\n";
        let settings = settings(text, &[]).expect("valid");
        let registry = Registry::new(
            Integration::new("test", "Test", "0")
                .endpoint_type(EndpointType::InstanceSpecific)
                .preprocess(crate::integration::PreprocessFields::new().flow_name_field("body.event")),
            vec![crate::definition::Flow {
                config: flow_core::FlowConfig {
                    name: "Orders".into(),
                    stable_key: "orders".into(),
                    ..flow_core::FlowConfig::default()
                },
                execute: |_, _| Box::pin(async { Ok(Value::Null.into()) }),
                handlers: crate::definition::Handlers::default(),
                source: crate::definition::SourceLocation {
                    file: "test.rs",
                    line: 1,
                    function: "orders",
                },
            }],
        )
        .expect("valid routing");
        let instances = build_instances(&settings, &registry, |_| None).expect("valid");
        assert_eq!(instances[0].webhook_urls["Orders"], "https://flows.example.com/webhooks/acme");
    }

    #[test]
    fn store_url_accepts_sqlite_scheme_and_plain_paths() {
        assert_eq!(parse_store_url("sqlite://data/flows.db").expect("valid"), PathBuf::from("data/flows.db"));
        assert_eq!(parse_store_url("flows.db").expect("valid"), PathBuf::from("flows.db"));
        assert!(parse_store_url("postgres://localhost/test").is_err());
    }

    #[test]
    fn store_location_selects_postgres_by_scheme() {
        let url = "postgres://app@db.internal:5432/flows";
        assert_eq!(parse_store_location(url).expect("valid"), StoreLocation::Postgres(url.to_owned()));
        let alias = "postgresql://app@db.internal/flows";
        assert_eq!(parse_store_location(alias).expect("valid"), StoreLocation::Postgres(alias.to_owned()));
        assert_eq!(
            parse_store_location("sqlite://flows.db").expect("valid"),
            StoreLocation::Sqlite(PathBuf::from("flows.db"))
        );
    }

    #[test]
    fn store_location_display_hides_the_password() {
        let location = parse_store_location("postgres://app:s3cret@db/flows").expect("valid");
        assert_eq!(location.to_string(), "postgres://app:***@db/flows");
    }

    #[test]
    fn unsupported_store_scheme_error_names_both_forms() {
        let error = parse_store_location("mysql://app:s3cret@db/flows").expect_err("unsupported");
        let message = error.to_string();
        assert!(message.contains("sqlite://PATH"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}
