//! The integration: its name, version, endpoint type, routing fields and the config variables
//! its instances set.

use flow_core::EndpointType;
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
    /// The shape of the instances' webhook URLs, `flow_specific` unless set.
    pub endpoint_type: EndpointType,
    /// Routing fields read straight from the trigger payload, for integrations without a
    /// preprocess flow.
    pub preprocess: Option<PreprocessFields>,
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
            endpoint_type: EndpointType::FlowSpecific,
            preprocess: None,
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

    /// Sets the endpoint type. `InstanceSpecific` and `SharedInstance` route every request by
    /// preprocess fields: those of the flow marked `preprocess(...)`, or those given to
    /// [`Integration::preprocess`]. The registry rejects a routed endpoint type without them.
    #[must_use]
    pub fn endpoint_type(mut self, endpoint_type: EndpointType) -> Self {
        self.endpoint_type = endpoint_type;
        self
    }

    /// Sets routing fields that read the trigger payload directly, with no preprocess flow.
    #[must_use]
    pub fn preprocess(mut self, fields: PreprocessFields) -> Self {
        self.preprocess = Some(fields);
        self
    }

    /// Returns the declaration of the variable `name`.
    pub fn find_config_var(&self, name: &str) -> Option<&ConfigVar> {
        self.config_vars.iter().find(|var| var.name == name)
    }
}

/// Routing fields of [`Integration::preprocess`]: field paths into the trigger payload, such as
/// `body.event` or `headers.x-customer-id`. The registry parses them when the binary starts and
/// names any invalid path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreprocessFields {
    /// Path of the flow's name or stable key.
    pub flow_name_field: Option<String>,
    /// Path of the customer's external id; selects the instance on a shared endpoint.
    pub external_customer_id_field: Option<String>,
    /// Path of the customer user's external id, passed to the flow as `user.externalId`.
    pub external_customer_user_id_field: Option<String>,
}

impl PreprocessFields {
    /// Creates an empty set of fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the path of the flow's name or stable key.
    #[must_use]
    pub fn flow_name_field(mut self, path: impl Into<String>) -> Self {
        self.flow_name_field = Some(path.into());
        self
    }

    /// Sets the path of the customer's external id.
    #[must_use]
    pub fn external_customer_id_field(mut self, path: impl Into<String>) -> Self {
        self.external_customer_id_field = Some(path.into());
        self
    }

    /// Sets the path of the customer user's external id.
    #[must_use]
    pub fn external_customer_user_id_field(mut self, path: impl Into<String>) -> Self {
        self.external_customer_user_id_field = Some(path.into());
        self
    }
}
