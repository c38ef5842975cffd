//! A deployed copy of the integration for one customer, with its own config and keys.

use std::collections::BTreeMap;

use flow_core::Customer;
use serde_json::Value;

/// An instance as the runtime uses it: config values resolved (defaults applied), API keys and
/// webhook URLs of its flows.
#[derive(Clone, Default)]
pub struct Instance {
    /// Id, as in webhook URLs (`/webhooks/{instance}/...`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The customer the instance belongs to.
    pub customer: Customer,
    /// Config variable values by name, defaults applied.
    pub config: BTreeMap<String, Value>,
    /// Names of the config variables declared secret, whose values are never shown.
    pub secret_config: std::collections::BTreeSet<String>,
    /// API keys accepted per flow, keyed by stable key.
    pub api_keys: BTreeMap<String, Vec<String>>,
    /// Webhook URL of every flow, keyed by flow name.
    pub webhook_urls: BTreeMap<String, String>,
    /// API keys of every flow, keyed by flow name.
    pub webhook_api_keys_by_name: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for Instance {
    /// Prints ids and variable names; values and keys may be secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("config_vars", &self.config.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
