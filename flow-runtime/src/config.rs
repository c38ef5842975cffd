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

use std::collections::{BTreeMap, BTreeSet};
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
    #[serde(default, deserialize_with = "socket_address")]
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

/// Reads `server.addr`, with a message that shows the expected form.
fn socket_address<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not a socket address such as 127.0.0.1:8080; give an IP address and a port, not a host name"
        ))
    })
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
        toml::from_str(&text).map_err(|error| {
            ConfigError(format!("invalid config file {}: {}", path.display(), describe(&error, &text)))
        })
    }
}

/// Describes a TOML error by its line, column and message, without the quoted source line and
/// string values that TOML's own text shows, because either may be a secret.
fn describe(error: &toml::de::Error, text: &str) -> String {
    let message = without_values(error.message().trim_end());
    let Some(span) = error.span() else {
        return message;
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
    let line_start = before.iter().rposition(|byte| *byte == b'\n').map_or(0, |index| index + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    format!("line {line}, column {column}: {message}")
}

/// Returns serde's message with the values it quotes left out: `string "…"` becomes
/// `a string`, and an integer, floating point number or character in backticks becomes
/// `an integer`, `a number` or `a character`.
fn without_values(message: &str) -> String {
    let hidden = without_quoted_strings(message);
    [("integer `", "an integer"), ("floating point `", "a number"), ("character `", "a character")]
        .iter()
        .fold(hidden, |text, (prefix, noun)| without_backticked(&text, prefix, noun))
}

/// Replaces every `string "…"` in `message` by `a string`.
fn without_quoted_strings(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(QUOTED) {
        out.push_str(&rest[..start]);
        out.push_str("a string");

        // The value is written with Rust's debug escapes, so `\"` inside it does not close it.
        let value = &rest[start + QUOTED.len()..];
        let mut escaped = false;
        let end = value.char_indices().find_map(|(index, character)| {
            let closes = character == '"' && !escaped;
            escaped = character == '\\' && !escaped;
            closes.then_some(index + 1)
        });
        rest = end.map_or("", |end| &value[end..]);
    }
    out.push_str(rest);
    out
}

/// Replaces every value in `message` that starts with `prefix` and ends with a backtick by
/// `noun`.
fn without_backticked(message: &str, prefix: &str, noun: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(prefix) {
        out.push_str(&rest[..start]);
        out.push_str(noun);
        let value = &rest[start + prefix.len()..];
        rest = value.find('`').map_or("", |end| &value[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// Returns the public URL used when none is set: the listen address over plain HTTP.
fn derived_public_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl RuntimeSettings {
    /// Records `local`, the address the server listens on. When `addr` has port 0 the system
    /// picks the port, so a public URL that was derived from `addr` is derived from `local`.
    pub fn listening_on(&mut self, local: SocketAddr) {
        if self.public_url == derived_public_url(self.addr) {
            self.public_url = derived_public_url(local);
        }
        self.addr = local;
    }

    /// Returns whether the webhook URLs name port 0: the address has port 0, which the system
    /// replaces only when `serve` listens, and no public URL is set.
    pub fn public_url_names_port_zero(&self) -> bool {
        self.addr.port() == 0 && self.public_url == derived_public_url(self.addr)
    }

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
            .unwrap_or_else(|| derived_public_url(addr))
            .trim_end_matches('/')
            .to_owned();
        check_public_url(&public_url)?;
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
        let token_variable = env("FLOW_ADMIN_TOKEN").filter(|token| !token.is_empty());
        let (admin_token, blank, fix) = match token_variable {
            Some(token) => (Some(token), "FLOW_ADMIN_TOKEN contains only spaces", "set it to the token or unset it"),
            None => (
                file.server.admin_token,
                "`server.admin_token` is empty",
                "set a token of at least one character or remove the line",
            ),
        };
        if admin_token.as_deref().is_some_and(|token| token.trim().is_empty()) {
            return Err(ConfigError(format!("{blank}, which would leave the executions and admin API open; {fix}")));
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
        check_postgres_url(url)?;
        return Ok(StoreLocation::Postgres(url.to_owned()));
    }
    parse_store_url(url).map(StoreLocation::Sqlite)
}

/// Checks that the base of the webhook URLs is an `http` or `https` URL with a host and neither
/// a query nor a fragment, because webhook paths are appended to it.
fn check_public_url(public_url: &str) -> Result<(), ConfigError> {
    let problem = match url::Url::parse(public_url) {
        Err(error) => Some(error.to_string()),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => Some("its scheme is not http or https".to_owned()),
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => Some("it has no host".to_owned()),
        Ok(parsed) if parsed.query().is_some() || parsed.fragment().is_some() => {
            Some("it has a query or a fragment, to which webhook paths cannot be appended".to_owned())
        }
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ConfigError(format!(
            "public URL \"{public_url}\" (FLOW_PUBLIC_URL or server.public_url) is invalid: {problem}; set the URL \
             that clients use, e.g. https://flows.example.com"
        ))),
    }
}

/// Checks that a PostgreSQL URL names a host and a database. Without them the driver would
/// fill in its defaults and create the store's tables in whatever database those reach. The
/// host may also come from a `host=` query parameter, as for a Unix socket folder.
fn check_postgres_url(url: &str) -> Result<(), ConfigError> {
    let parts = crate::store::UrlParts::split(url);
    let (host, database) = (parts.host(), parts.database());
    let query = parts.query.unwrap_or_default();
    let host_in_query = form_urlencoded::parse(query.as_bytes()).any(|(key, value)| key == "host" && !value.is_empty());

    let missing = match (host.is_empty() && !host_in_query, database.is_empty()) {
        (true, true) => "no host and no database",
        (true, false) => "no host",
        (false, true) => "no database",
        (false, false) => return Ok(()),
    };
    let shown = crate::store::redact_password(url);
    Err(ConfigError(format!(
        "store URL \"{shown}\" has {missing}; use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    )))
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
    if settings.instances.is_empty() {
        let entry = InstanceSettings {
            id: "default".to_owned(),
            ..InstanceSettings::default()
        };
        // Without a config file this instance has no `config = { ... }` to add a value to.
        return build_instance(entry, settings, registry, &env).map(|instance| vec![instance]).map_err(|error| {
            ConfigError(format!(
                "{error}. No instance is configured, so the runtime serves the instance \"default\"; pass --config \
                 FILE with an [[instances]] entry that sets the integration's config variables"
            ))
        });
    }
    let declared = settings.instances.clone();

    let mut instances: Vec<Instance> = Vec::with_capacity(declared.len());
    for entry in declared {
        // `.` and `..` are path segments that clients resolve away, so their URLs would not work.
        let valid_id = !entry.id.is_empty()
            && entry.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && entry.id.chars().any(|c| c != '.');
        if !valid_id {
            return Err(ConfigError(format!(
                "instance id \"{}\" is invalid; use ASCII letters, digits, '-', '_' and '.', with at least one \
                 character other than '.', e.g. \"acme\"",
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
        let value = config_value(&id, &name, value, env)?;
        let secret = registry.integration().find_config_var(&name).is_some_and(|var| var.secret);
        if secret && !value.is_string() {
            // A table here is most likely a misspelled `env`, which would make the table's
            // JSON text the secret, such as a signing key that no sender uses.
            return Err(ConfigError(format!(
                "config variable \"{name}\" of instance \"{id}\" is secret, so its value must be a string or \
                 {{ env = \"VARIABLE\" }}; check the spelling of `env`"
            )));
        }
        config.insert(name.clone(), value);
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
        let blank = matches!(config.get(&var.name), Some(Value::String(text)) if text.trim().is_empty());
        if var.required && blank {
            return Err(ConfigError(format!(
                "instance \"{id}\" has an empty value for the required config variable \"{}\"; set a value, and \
                 when it is read with {{ env = \"...\" }}, set that environment variable to a non-empty value",
                var.name
            )));
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

    let secret_config: BTreeSet<String> = registry
        .integration()
        .config_vars
        .iter()
        .filter(|var| var.secret)
        .map(|var| var.name.clone())
        .collect();
    for flow in registry.flows() {
        if let Some(schedule) = &flow.config.schedule {
            resolve_schedule(schedule, &config, &secret_config, &id).map_err(|message| {
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
/// The value of a variable named in `secret_config` stays out of the messages.
///
/// # Errors
///
/// Returns a message naming the variable when it is missing or not text, or the rule the
/// cron expression or time zone breaks.
pub fn resolve_schedule(
    schedule: &flow_core::Schedule,
    config: &BTreeMap<String, Value>,
    secret_config: &BTreeSet<String>,
    instance: &str,
) -> Result<flow_core::CronSchedule, String> {
    let expression = match &schedule.source {
        flow_core::ScheduleSource::Cron(expression) => expression.clone(),
        flow_core::ScheduleSource::ConfigVar(name) => match config.get(name) {
            Some(Value::String(expression)) => {
                flow_core::check_cron(expression).map_err(|reason| {
                    // The reason may quote fields of the expression, so a secret's is left out too.
                    let problem = if secret_config.contains(name) {
                        "holds a secret value that is not a valid cron expression".to_owned()
                    } else {
                        format!("holds \"{expression}\", which is not a valid cron expression: {reason}")
                    };
                    format!(
                        "config variable \"{name}\" {problem}; set it to five fields (minute hour day-of-month \
                         month day-of-week) such as \"*/5 * * * *\", or six with seconds first"
                    )
                })?;
                expression.clone()
            }
            Some(other) => {
                let shown = if secret_config.contains(name) { "a secret value".to_owned() } else { other.to_string() };
                return Err(format!(
                    "config variable \"{name}\" holds the schedule, so it must be a cron expression string, not {shown}"
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
    fn derived_public_url_names_the_picked_port() {
        let mut settings = settings("[server]\naddr = \"127.0.0.1:0\"\n", &[]).expect("valid");

        settings.listening_on("127.0.0.1:34609".parse().expect("an address"));

        assert_eq!(settings.public_url, "http://127.0.0.1:34609");
        assert_eq!(settings.addr.port(), 34609);
    }

    #[test]
    fn port_zero_without_public_url_is_detected() {
        let derived = settings("[server]\naddr = \"127.0.0.1:0\"\n", &[]).expect("valid");
        let configured = settings("[server]\naddr = \"127.0.0.1:0\"\npublic_url = \"https://hooks.example.com\"\n", &[])
            .expect("valid");

        assert!(derived.public_url_names_port_zero());
        assert!(!configured.public_url_names_port_zero());
    }

    #[test]
    fn configured_public_url_is_kept_when_listening() {
        let text = "[server]\naddr = \"127.0.0.1:0\"\npublic_url = \"https://hooks.example.com\"\n";
        let mut settings = settings(text, &[]).expect("valid");

        settings.listening_on("127.0.0.1:34609".parse().expect("an address"));

        assert_eq!(settings.public_url, "https://hooks.example.com");
    }

    #[test]
    fn postgres_url_without_host_or_database_is_rejected() {
        let error = parse_store_location("postgres://").expect_err("no host, no database");

        assert!(error.0.contains("has no host and no database"), "{}", error.0);
    }

    #[test]
    fn postgres_url_without_database_is_rejected() {
        let error = parse_store_location("postgres://app:s3cret@db:5432").expect_err("no database");

        assert!(error.0.contains("\"postgres://app:***@db:5432\" has no database"), "{}", error.0);
    }

    #[test]
    fn postgres_password_with_a_question_mark_stays_hidden() {
        let error = parse_store_location("postgres://u:pa?SECRET@h").expect_err("no database");

        assert!(!error.0.contains("SECRET"), "{}", error.0);
        assert!(error.0.contains("has no database"), "{}", error.0);
    }

    #[test]
    fn postgres_socket_host_may_be_a_query_parameter() {
        let url = "postgres:///flows?host=/var/run/postgresql";

        assert_eq!(parse_store_location(url).expect("valid"), StoreLocation::Postgres(url.to_owned()));
    }

    fn schedule_from(name: &str) -> flow_core::Schedule {
        flow_core::Schedule {
            source: flow_core::ScheduleSource::ConfigVar(name.into()),
            timezone: None,
        }
    }

    #[test]
    fn invalid_secret_schedule_hides_the_value() {
        let config = BTreeMap::from([("Sched".to_owned(), Value::from("SUPERSECRET-cron"))]);
        let secret = BTreeSet::from(["Sched".to_owned()]);

        let error = resolve_schedule(&schedule_from("Sched"), &config, &secret, "acme").expect_err("invalid cron");

        assert!(!error.contains("SUPERSECRET"), "{error}");
        assert!(error.contains("config variable \"Sched\" holds a secret value"), "{error}");
    }

    #[test]
    fn secret_schedule_of_wrong_type_hides_the_value() {
        let config = BTreeMap::from([("Sched".to_owned(), Value::from(424_242))]);
        let secret = BTreeSet::from(["Sched".to_owned()]);

        let error = resolve_schedule(&schedule_from("Sched"), &config, &secret, "acme").expect_err("not text");

        assert!(!error.contains("424242"), "{error}");
    }

    fn load_error(text: &str) -> String {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("flows.toml");
        std::fs::write(&path, text).expect("writes the file");
        FileConfig::load(&path).expect_err("invalid config").0
    }

    #[test]
    fn wrong_type_error_leaves_out_the_value() {
        let error = load_error("[[instances]]\nid = \"a\"\napi_keys = { \"alpha\" = \"k_live_SUPERSECRET\" }\n");

        assert!(!error.contains("SUPERSECRET"), "{error}");
        assert!(error.contains("line 3, column"), "{error}");
        assert!(error.contains("invalid type: a string, expected a sequence"), "{error}");
    }

    #[test]
    fn syntax_error_leaves_out_the_source_line() {
        let error = load_error("[[instances]]\nid = \"a\"\nconfig = { \"Token\" = \"tok-SUPERSECRET-42\" } stray\n");

        assert!(!error.contains("SUPERSECRET"), "{error}");
        assert!(error.contains("line 3, column"), "{error}");
    }

    #[test]
    fn numeric_value_is_left_out_of_type_errors() {
        let error = load_error("[server]\nadmin_token = 987654321\n");

        assert!(!error.contains("987654321"), "{error}");
        assert!(error.contains("invalid type: an integer, expected a string"), "{error}");
    }

    #[test]
    fn escaped_quote_stays_inside_the_hidden_value() {
        let message = without_values(r#"invalid type: string "a\"b", expected a sequence"#);

        assert_eq!(message, "invalid type: a string, expected a sequence");
    }

    #[test]
    fn instance_id_of_dots_is_rejected() {
        for id in [".", ".."] {
            let settings = settings(&format!("[[instances]]\nid = \"{id}\"\n"), &[]).expect("valid");

            let error = build_instances(&settings, &registry(Vec::new()), |_| None).expect_err("dots only");

            assert!(error.0.starts_with(&format!("instance id \"{id}\" is invalid")), "{}", error.0);
        }
    }

    #[test]
    fn public_url_without_scheme_is_rejected() {
        let error = settings("", &[("FLOW_PUBLIC_URL", "not-a-url")]).expect_err("no scheme");

        assert!(error.0.starts_with("public URL \"not-a-url\""), "{}", error.0);
    }

    #[test]
    fn malformed_public_urls_are_rejected() {
        for url in ["http:// ", "http://a b c", "http://?x", "http://:8080", "https://host:notaport", "http://example.com:8443/x?y=1"] {
            assert!(settings("", &[("FLOW_PUBLIC_URL", url)]).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn real_public_urls_are_accepted() {
        for url in ["http://[::1]:8080", "https://flows.example.com/base/path/", "HTTPS://flows.example.com"] {
            assert!(settings("", &[("FLOW_PUBLIC_URL", url)]).is_ok(), "{url} was rejected");
        }
    }

    #[test]
    fn host_name_address_gets_an_example() {
        let error = load_error("[server]\naddr = \"localhost:8080\"\n");

        assert!(error.contains("\"localhost:8080\" is not a socket address such as 127.0.0.1:8080"), "{error}");
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
    fn blank_admin_token_variable_is_named() {
        let error = settings("", &[("FLOW_ADMIN_TOKEN", "   ")]).expect_err("blank token");

        assert!(error.0.starts_with("FLOW_ADMIN_TOKEN contains only spaces"), "{}", error.0);
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
    fn missing_variable_without_instances_asks_for_config() {
        let settings = settings("", &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("API Base URL").required()]);

        let error = build_instances(&settings, &registry, |_| None).expect_err("missing");

        let hint = "pass --config FILE with an [[instances]] entry that sets the integration's config variables";
        assert!(error.0.ends_with(hint), "{}", error.0);
    }

    #[test]
    fn empty_required_variable_is_rejected() {
        let registry = registry(vec![ConfigVar::new("Webhook Secret").required()]);
        let text = "[[instances]]\nid = \"octo\"\nconfig = { \"Webhook Secret\" = { env = \"SECRET\" } }\n";
        let settings = settings(text, &[]).expect("valid");

        let error = build_instances(&settings, &registry, |name| (name == "SECRET").then(String::new)).expect_err("empty");

        assert!(error.0.contains("has an empty value for the required config variable \"Webhook Secret\""), "{}", error.0);
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
    fn misspelled_secret_env_is_rejected() {
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Token\" = { evn = \"T\" } }\n";
        let settings = settings(text, &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("Token").secret()]);

        let error = build_instances(&settings, &registry, |_| Some("v".into())).expect_err("rejected");

        assert!(error.to_string().contains("\"Token\" of instance \"acme\" is secret"), "{error}");
    }

    #[test]
    fn plain_variable_keeps_table_as_object() {
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Limits\" = { daily = 10 } }\n";
        let settings = settings(text, &[]).expect("valid");
        let registry = registry(vec![ConfigVar::new("Limits")]);

        let instances = build_instances(&settings, &registry, |_| None).expect("built");

        assert_eq!(instances[0].config["Limits"], serde_json::json!({ "daily": 10 }));
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
