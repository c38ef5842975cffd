//! The flows of the integration binary, collected from `#[flow]` registrations and checked.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::definition::{Flow, FlowRegistration};
use crate::integration::Integration;
use crate::mcp::{check_object_schema, input_validator};
use crate::routing::{Routing, RoutingError};

/// A rule that spans several flows is broken; the binary cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// Two flows share a stable key.
    #[error("two flows have the stable key \"{key}\": {first} and {second}; give each flow its own `stable_key`")]
    DuplicateStableKey {
        /// The shared key.
        key: String,
        /// The first definition.
        first: String,
        /// The second definition.
        second: String,
    },
    /// Two flows share a name.
    #[error("two flows have the name \"{name}\": {first} and {second}; give each flow its own `name`")]
    DuplicateName {
        /// The shared name.
        name: String,
        /// The first definition.
        first: String,
        /// The second definition.
        second: String,
    },
    /// More than one flow is marked `preprocess`.
    #[error("only one flow may be the preprocess flow, but {first} and {second} both set `preprocess(...)`; keep one")]
    SeveralPreprocessFlows {
        /// The first definition.
        first: String,
        /// The second definition.
        second: String,
    },
    /// A flow's name is another flow's stable key, so `invoke_flow` with it could mean either.
    #[error(
        "the name of {named} is \"{name}\", the stable key of {keyed}, so invoke_flow(\"{name}\") could mean \
         either flow; rename one of them"
    )]
    NameIsAnotherKey {
        /// The name and key.
        name: String,
        /// The definition with that name.
        named: String,
        /// The definition with that stable key.
        keyed: String,
    },
    /// A flow's schedule reads a config variable that the integration does not declare, so no
    /// instance can set it.
    #[error(
        "{flow} takes its schedule from config variable \"{variable}\", which the integration does not declare; \
         add `ConfigVar::new(\"{variable}\")` to the integration's config variables"
    )]
    UndeclaredScheduleVariable {
        /// The flow's source location.
        flow: String,
        /// The variable's name.
        variable: String,
    },
    /// The endpoint type and the routing fields do not fit together.
    #[error(transparent)]
    Routing(#[from] RoutingError),
    /// A flow breaks a rule of its own (only reachable for flows built by hand, not by `#[flow]`).
    #[error("flow {flow} is invalid: {message}")]
    InvalidFlow {
        /// The flow's source location.
        flow: String,
        /// Every violation, joined.
        message: String,
    },
}

/// Every flow of the integration, ordered by stable key.
#[derive(Debug, Clone)]
pub struct Registry {
    integration: Integration,
    flows: Vec<Flow>,
    routing: Option<Routing>,
}

impl Registry {
    /// Collects every flow registered with `#[flow]` in the binary.
    ///
    /// # Errors
    ///
    /// Returns the first [`RegistryError`]: a repeated stable key or name, several preprocess
    /// flows, or routing fields that do not fit the endpoint type.
    pub fn from_inventory(integration: Integration) -> Result<Self, RegistryError> {
        let flows = inventory::iter::<FlowRegistration>
            .into_iter()
            .map(|registration| (registration.definition)())
            .collect();
        Self::new(integration, flows)
    }

    /// Builds a registry from the given flows, checking the rules that span flows.
    ///
    /// # Errors
    ///
    /// Returns the first [`RegistryError`].
    pub fn new(integration: Integration, mut flows: Vec<Flow>) -> Result<Self, RegistryError> {
        flows.sort_by(|a, b| {
            (a.stable_key(), a.source.file, a.source.line).cmp(&(b.stable_key(), b.source.file, b.source.line))
        });

        for flow in &flows {
            let violations = flow.config.validate();
            if !violations.is_empty() {
                let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
                return Err(RegistryError::InvalidFlow {
                    flow: flow.source.to_string(),
                    message: messages.join("; "),
                });
            }
            check_agent_schemas(flow)?;
        }

        let mut by_key: BTreeMap<&str, &Flow> = BTreeMap::new();
        let mut by_name: BTreeMap<&str, &Flow> = BTreeMap::new();
        let mut preprocess: Option<&Flow> = None;
        for flow in &flows {
            if let Some(first) = by_key.insert(flow.stable_key(), flow) {
                return Err(RegistryError::DuplicateStableKey {
                    key: flow.stable_key().to_owned(),
                    first: first.source.to_string(),
                    second: flow.source.to_string(),
                });
            }
            if let Some(first) = by_name.insert(flow.name(), flow) {
                return Err(RegistryError::DuplicateName {
                    name: flow.name().to_owned(),
                    first: first.source.to_string(),
                    second: flow.source.to_string(),
                });
            }
            if flow.config.preprocess.is_some() {
                if let Some(first) = preprocess {
                    return Err(RegistryError::SeveralPreprocessFlows {
                        first: first.source.to_string(),
                        second: flow.source.to_string(),
                    });
                }
                preprocess = Some(flow);
            }
        }

        for flow in &flows {
            if let Some(keyed) = by_key.get(flow.name()).filter(|keyed| keyed.stable_key() != flow.stable_key()) {
                return Err(RegistryError::NameIsAnotherKey {
                    name: flow.name().to_owned(),
                    named: flow.source.to_string(),
                    keyed: keyed.source.to_string(),
                });
            }
            let schedule_source = flow.config.schedule.as_ref().map(|schedule| &schedule.source);
            if let Some(flow_core::ScheduleSource::ConfigVar(variable)) = schedule_source
                && integration.find_config_var(variable).is_none()
            {
                return Err(RegistryError::UndeclaredScheduleVariable {
                    flow: flow.source.to_string(),
                    variable: variable.clone(),
                });
            }
        }

        let routing = Routing::check(&integration, &flows)?;
        Ok(Self {
            integration,
            flows,
            routing,
        })
    }

    /// Returns the integration settings.
    pub fn integration(&self) -> &Integration {
        &self.integration
    }

    /// Returns how requests find their flow on an instance-specific or shared endpoint, or
    /// `None` for a flow-specific one.
    pub fn routing(&self) -> Option<&Routing> {
        self.routing.as_ref()
    }

    /// Returns the flows marked `agent`: the tools of each instance's MCP server.
    pub fn agent_flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter().filter(|flow| flow.config.agent)
    }

    /// Returns every flow, ordered by stable key.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// Returns the flow with this stable key.
    pub fn get(&self, stable_key: &str) -> Option<&Flow> {
        self.flows.iter().find(|flow| flow.stable_key() == stable_key)
    }

    /// Returns the flow with this stable key or, failing that, this name.
    pub fn find(&self, key_or_name: &str) -> Option<&Flow> {
        self.get(key_or_name)
            .or_else(|| self.flows.iter().find(|flow| flow.name() == key_or_name))
    }

    /// Returns every flow's settings as JSON, with literal organization keys hidden.
    pub fn flows_json(&self) -> Value {
        let flows: Vec<flow_core::FlowConfig> = self
            .flows
            .iter()
            .map(|flow| {
                let mut config = flow.config.clone();
                for key in &mut config.organization_api_keys {
                    if let flow_core::ApiKeySource::Literal(value) = key {
                        *value = "<secret>".to_owned();
                    }
                }
                config
            })
            .collect();
        serde_json::to_value(flows).unwrap_or(Value::Null)
    }

    /// Returns the integration definition as JSON: the integration, its config variables
    /// (secret defaults hidden) and every flow with all its settings (literal organization
    /// keys hidden).
    pub fn manifest(&self) -> Value {
        let mut integration = self.integration.clone();
        for var in &mut integration.config_vars {
            if var.secret && var.default.is_some() {
                var.default = Some(Value::String("<secret>".to_owned()));
            }
        }
        serde_json::json!({
            "integration": integration,
            "flows": self.flows_json(),
        })
    }
}

/// Checks that an agent flow's invoke schemas describe JSON objects, as MCP tools need, and
/// that its input schema compiles.
fn check_agent_schemas(flow: &Flow) -> Result<(), RegistryError> {
    if !flow.config.agent {
        return Ok(());
    }
    let schemas = [("input", &flow.config.schemas.input), ("output", &flow.config.schemas.output)];
    for (role, schema) in schemas {
        if let Some(schema) = schema {
            check_object_schema(flow, role, schema).map_err(|message| RegistryError::InvalidFlow {
                flow: flow.source.to_string(),
                message,
            })?;
        }
    }
    // `tools/call` checks arguments against the input schema, so it must compile.
    if let Some(schema) = &flow.config.schemas.input {
        input_validator(flow, schema).map_err(|message| RegistryError::InvalidFlow {
            flow: flow.source.to_string(),
            message,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use flow_core::{ApiKeySource, EndpointSecurity, FlowConfig, PreprocessConfig};

    use super::*;
    use crate::definition::{Handlers, SourceLocation};

    fn flow(key: &str, name: &str, line: u32) -> Flow {
        Flow {
            config: FlowConfig {
                name: name.to_owned(),
                stable_key: key.to_owned(),
                ..FlowConfig::default()
            },
            execute: |_, _| Box::pin(async { Ok(Value::Null.into()) }),
            handlers: Handlers::default(),
            source: SourceLocation {
                file: "src/flows.rs",
                line,
                function: "handler",
            },
        }
    }

    fn integration() -> Integration {
        Integration::new("test", "Test", "0")
    }

    #[test]
    fn duplicate_stable_key_names_both_locations() {
        let error = Registry::new(integration(), vec![flow("orders", "A", 10), flow("orders", "B", 20)])
            .expect_err("duplicate key");
        let message = error.to_string();
        assert!(message.contains("src/flows.rs:10") && message.contains("src/flows.rs:20"), "{message}");
        assert!(message.contains("\"orders\""), "{message}");
    }

    #[test]
    fn duplicate_name_is_rejected() {
        let error = Registry::new(integration(), vec![flow("a", "Orders", 1), flow("b", "Orders", 2)])
            .expect_err("duplicate name");
        assert!(matches!(error, RegistryError::DuplicateName { .. }));
    }

    #[test]
    fn second_preprocess_flow_is_rejected() {
        let mut first = flow("a", "A", 1);
        let mut second = flow("b", "B", 2);
        for preprocess in [&mut first, &mut second] {
            preprocess.config.preprocess = Some(PreprocessConfig {
                flow_name_field: Some("body.event".parse().expect("valid path")),
                ..PreprocessConfig::default()
            });
        }
        let error = Registry::new(integration(), vec![first, second]).expect_err("two preprocess flows");
        assert!(matches!(error, RegistryError::SeveralPreprocessFlows { .. }));
    }

    #[test]
    fn name_that_is_another_flows_key_is_rejected() {
        let error = Registry::new(integration(), vec![flow("alpha", "reserve", 1), flow("reserve", "Beta", 2)])
            .expect_err("ambiguous name");

        assert!(matches!(error, RegistryError::NameIsAnotherKey { ref name, .. } if name == "reserve"), "{error}");
    }

    #[test]
    fn name_equal_to_its_own_key_is_accepted() {
        assert!(Registry::new(integration(), vec![flow("orders", "orders", 1)]).is_ok());
    }

    #[test]
    fn schedule_from_an_undeclared_variable_is_rejected() {
        let mut scheduled = flow("tick", "Tick", 1);
        scheduled.config.schedule = Some(flow_core::Schedule {
            source: flow_core::ScheduleSource::ConfigVar("Undeclared Var".into()),
            timezone: None,
        });

        let error = Registry::new(integration(), vec![scheduled]).expect_err("undeclared variable");

        assert!(error.to_string().contains("config variable \"Undeclared Var\", which the integration does not declare"), "{error}");
    }

    #[test]
    fn flows_are_ordered_by_stable_key() {
        let registry = Registry::new(integration(), vec![flow("b", "B", 1), flow("a", "A", 2)]).expect("valid");
        let keys: Vec<&str> = registry.flows().iter().map(Flow::stable_key).collect();
        assert_eq!(keys, vec!["a", "b"]);
    }

    #[test]
    fn find_accepts_name_or_stable_key() {
        let registry = Registry::new(integration(), vec![flow("orders", "Process Order", 1)]).expect("valid");
        assert!(registry.find("orders").is_some());
        assert!(registry.find("Process Order").is_some());
        assert!(registry.find("nothing").is_none());
    }

    #[test]
    fn agent_flow_with_non_object_input_is_rejected() {
        let mut agent = flow("lookup", "Lookup", 1);
        agent.config.agent = true;
        agent.config.schemas.input = Some(crate::definition::type_schema::<String>("String"));
        let error = Registry::new(integration(), vec![agent]).expect_err("string input");
        let message = error.to_string();
        assert!(message.contains("`String`"), "{message}");
        assert!(message.contains("use a struct"), "{message}");
    }

    #[test]
    fn manifest_hides_literal_organization_keys() {
        let mut secured = flow("orders", "Orders", 1);
        secured.config.endpoint_security = EndpointSecurity::Organization;
        secured.config.organization_api_keys = vec![ApiKeySource::Literal("org_live_secret".into())];
        let registry = Registry::new(integration(), vec![secured]).expect("valid");
        let manifest = registry.manifest().to_string();
        assert!(!manifest.contains("org_live_secret"), "{manifest}");
        assert!(manifest.contains("\"stableKey\":\"orders\""), "{manifest}");
    }
}
