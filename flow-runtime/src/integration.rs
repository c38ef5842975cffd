//! The integration: its name, version and the config variables its instances set.

use serde::Serialize;
use serde_json::Value;

/// A config variable that every instance sets (or inherits from the default).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVar {
    /// Name, as flows read it with [`Context::config_var`](crate::Context::config_var).
    pub name: String,
    /// What the variable is for.
    pub description: Option<String>,
    /// Value used when an instance sets none.
    pub default: Option<Value>,
    /// Whether an instance must have a value (its own or the default).
    pub required: bool,
    /// Whether the value is hidden from logs, listings and the CLI.
    pub secret: bool,
}

impl ConfigVar {
    /// Declares an optional, non-secret variable.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: None,
            default: None,
            required: false,
            secret: false,
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the default value.
    #[must_use]
    pub fn default_value(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Makes the variable required: startup stops when an instance has no value.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks the value secret: it is never logged or printed.
    #[must_use]
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// Integration-level settings, passed to [`main!`](crate::main).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    /// Identifier, the crate name by default.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version of the integration binary.
    pub version: String,
    /// What the integration does.
    pub description: Option<String>,
    /// Config variables every instance sets.
    pub config_vars: Vec<ConfigVar>,
}

impl Integration {
    /// Creates an integration with an id, a display name and a version.
    pub fn new(id: impl Into<String>, name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            version: version.into(),
            description: None,
            config_vars: Vec::new(),
        }
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Declares a config variable.
    #[must_use]
    pub fn config_var(mut self, var: ConfigVar) -> Self {
        self.config_vars.push(var);
        self
    }

    /// Returns the declaration of the variable `name`.
    pub fn find_config_var(&self, name: &str) -> Option<&ConfigVar> {
        self.config_vars.iter().find(|var| var.name == name)
    }
}
