//! Endpoint types: which webhook URLs an integration's instances get and how requests find
//! their flow.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The mapping of webhook URLs to flows and instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointType {
    /// One URL per instance and flow: `/webhooks/{instance}/{stable_key}`.
    #[default]
    FlowSpecific,
    /// One URL per instance, `/webhooks/{instance}`; routing fields name the flow.
    InstanceSpecific,
    /// One URL for every instance, `/webhooks`; routing fields name the flow and the customer,
    /// whose external id selects the instance.
    SharedInstance,
}

impl EndpointType {
    /// Returns the name used in configuration and the manifest: `flow_specific`,
    /// `instance_specific` or `shared_instance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlowSpecific => "flow_specific",
            Self::InstanceSpecific => "instance_specific",
            Self::SharedInstance => "shared_instance",
        }
    }

    /// Returns whether requests are routed by preprocess fields rather than by the URL.
    pub fn is_routed(self) -> bool {
        self != Self::FlowSpecific
    }
}

impl fmt::Display for EndpointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_flow_specific() {
        assert_eq!(EndpointType::default(), EndpointType::FlowSpecific);
    }

    #[test]
    fn serialized_names_match_as_str() {
        for endpoint in [EndpointType::FlowSpecific, EndpointType::InstanceSpecific, EndpointType::SharedInstance] {
            assert_eq!(serde_json::to_value(endpoint).expect("serializes"), serde_json::json!(endpoint.as_str()));
        }
    }
}
