//! Routing of instance-specific and shared endpoints: which fields name the flow, the customer
//! and the user, and the rules checked when the binary starts.

use flow_core::{EndpointType, FieldPath, FieldPathError, PreprocessConfig};

use crate::definition::Flow;
use crate::integration::{Integration, PreprocessFields};

/// The routing of an instance-specific or shared endpoint: the fields that pick the flow and instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// `InstanceSpecific` or `SharedInstance`.
    pub endpoint_type: EndpointType,
    /// The routing fields, already parsed.
    pub fields: PreprocessConfig,
    /// Stable key of the flow marked `preprocess(...)`, which runs first and whose result the
    /// fields read; `None` when the fields read the request directly.
    pub preprocess_flow: Option<String>,
}

impl Routing {
    /// Returns the flow name field, which every routing configuration has.
    pub fn flow_name_field(&self) -> &FieldPath {
        self.fields
            .flow_name_field
            .as_ref()
            .expect("Routing::check rejects routing fields without flow_name_field")
    }
}

/// A routing rule is broken; the message names the setting and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// A routed endpoint type has no routing fields.
    #[error(
        "endpoint type `{0}` routes every request by its fields, but none are set; mark one flow with \
         `preprocess(flow_name_field = \"body.event\")` or add \
         `.preprocess(PreprocessFields::new().flow_name_field(\"body.event\"))` to the `Integration`"
    )]
    MissingFields(EndpointType),
    /// Routing fields are set on a flow-specific integration, where the URL names the flow.
    #[error(
        "{0} sets routing fields, but the endpoint type is `flow_specific`, where each flow has its own URL; \
         add `.endpoint_type(EndpointType::InstanceSpecific)` or `.endpoint_type(EndpointType::SharedInstance)` \
         to the `Integration`, or remove the routing fields"
    )]
    FieldsOnFlowSpecific(String),
    /// Both the integration and a flow set routing fields.
    #[error(
        "both `Integration::preprocess(...)` and the preprocess flow {0} set routing fields; keep one of them"
    )]
    TwoSources(String),
    /// The routing fields do not name the flow.
    #[error("{0} has no `flow_name_field`, so a request cannot name its flow; add e.g. `flow_name_field = \"body.event\"`")]
    MissingFlowNameField(String),
    /// A shared endpoint has no customer field.
    #[error(
        "a `shared_instance` endpoint selects the instance by the customer's external id, but {0} has no \
         `external_customer_id_field`; add e.g. `external_customer_id_field = \"headers.x-customer-id\"`"
    )]
    MissingCustomerField(String),
    /// A shared endpoint has a preprocess flow, which has no instance to run in.
    #[error(
        "the preprocess flow {0} cannot route a `shared_instance` endpoint, because no instance is known \
         before the customer is; read the fields from the request with `Integration::preprocess(...)` instead, \
         or use `EndpointType::InstanceSpecific`"
    )]
    PreprocessFlowOnSharedEndpoint(String),
    /// A field path given to [`Integration::preprocess`] does not parse.
    #[error("`Integration::preprocess(...)` sets `{field}` to an {error}")]
    InvalidField {
        /// The setting, such as `flow_name_field`.
        field: &'static str,
        /// The parser's reason.
        error: FieldPathError,
    },
}

impl Routing {
    /// Checks the integration's endpoint type against its routing fields and returns the
    /// routing of a routed endpoint, or `None` for a flow-specific one.
    ///
    /// # Errors
    ///
    /// Returns the first [`RoutingError`].
    pub fn check(integration: &Integration, flows: &[Flow]) -> Result<Option<Self>, RoutingError> {
        let endpoint_type = integration.endpoint_type;
        let preprocess_flow = flows.iter().find(|flow| flow.config.preprocess.is_some());
        let integration_fields = integration.preprocess.as_ref().map(parse_fields).transpose()?;

        let (fields, source, preprocess_flow) = match (integration_fields, preprocess_flow) {
            (Some(_), Some(flow)) => return Err(RoutingError::TwoSources(flow.source.to_string())),
            (Some(fields), None) => (fields, "`Integration::preprocess(...)`".to_owned(), None),
            (None, Some(flow)) => {
                let fields = flow.config.preprocess.clone().unwrap_or_default();
                (fields, format!("the preprocess flow {}", flow.source), Some(flow))
            }
            (None, None) if endpoint_type.is_routed() => return Err(RoutingError::MissingFields(endpoint_type)),
            (None, None) => return Ok(None),
        };

        if !endpoint_type.is_routed() {
            return Err(RoutingError::FieldsOnFlowSpecific(source));
        }
        if fields.flow_name_field.is_none() {
            return Err(RoutingError::MissingFlowNameField(source));
        }
        if endpoint_type == EndpointType::SharedInstance {
            if let Some(flow) = preprocess_flow {
                return Err(RoutingError::PreprocessFlowOnSharedEndpoint(flow.source.to_string()));
            }
            if fields.external_customer_id_field.is_none() {
                return Err(RoutingError::MissingCustomerField(source));
            }
        }

        Ok(Some(Self {
            endpoint_type,
            fields,
            preprocess_flow: preprocess_flow.map(|flow| flow.stable_key().to_owned()),
        }))
    }
}

fn parse_fields(fields: &PreprocessFields) -> Result<PreprocessConfig, RoutingError> {
    let parse = |field: &'static str, text: &Option<String>| {
        text.as_deref()
            .map(FieldPath::parse)
            .transpose()
            .map_err(|error| RoutingError::InvalidField { field, error })
    };
    Ok(PreprocessConfig {
        flow_name_field: parse("flow_name_field", &fields.flow_name_field)?,
        external_customer_id_field: parse("external_customer_id_field", &fields.external_customer_id_field)?,
        external_customer_user_id_field: parse("external_customer_user_id_field", &fields.external_customer_user_id_field)?,
    })
}

#[cfg(test)]
mod tests {
    use flow_core::FlowConfig;

    use super::*;
    use crate::definition::{Handlers, SourceLocation};

    fn flow(key: &str, preprocess: Option<PreprocessConfig>) -> Flow {
        Flow {
            config: FlowConfig {
                name: key.to_owned(),
                stable_key: key.to_owned(),
                preprocess,
                ..FlowConfig::default()
            },
            execute: |_, _| Box::pin(async { Ok(serde_json::Value::Null.into()) }),
            handlers: Handlers::default(),
            source: SourceLocation {
                file: "src/flows.rs",
                line: 7,
                function: key.to_owned().leak(),
            },
        }
    }

    fn fields(flow_name: Option<&str>, customer: Option<&str>) -> PreprocessConfig {
        PreprocessConfig {
            flow_name_field: flow_name.map(|path| path.parse().expect("valid path")),
            external_customer_id_field: customer.map(|path| path.parse().expect("valid path")),
            external_customer_user_id_field: None,
        }
    }

    fn integration(endpoint_type: EndpointType) -> Integration {
        Integration::new("test", "Test", "0").endpoint_type(endpoint_type)
    }

    #[test]
    fn flow_specific_without_fields_has_no_routing() {
        let routing = Routing::check(&integration(EndpointType::FlowSpecific), &[flow("orders", None)]).expect("valid");
        assert_eq!(routing, None);
    }

    #[test]
    fn instance_specific_without_fields_names_both_fixes() {
        let error = Routing::check(&integration(EndpointType::InstanceSpecific), &[flow("orders", None)])
            .expect_err("no routing fields");
        let message = error.to_string();
        assert!(message.contains("`instance_specific`"), "{message}");
        assert!(message.contains("preprocess(flow_name_field"), "{message}");
        assert!(message.contains("PreprocessFields::new()"), "{message}");
    }

    #[test]
    fn preprocess_flow_routes_an_instance_specific_endpoint() {
        let flows = [flow("router", Some(fields(Some("body.event"), None))), flow("orders", None)];
        let routing = Routing::check(&integration(EndpointType::InstanceSpecific), &flows)
            .expect("valid")
            .expect("routed");
        assert_eq!(routing.preprocess_flow.as_deref(), Some("router"));
        assert_eq!(routing.flow_name_field().as_str(), "body.event");
    }

    #[test]
    fn integration_fields_route_a_shared_endpoint() {
        let integration = integration(EndpointType::SharedInstance).preprocess(
            PreprocessFields::new()
                .flow_name_field("headers.x-flow")
                .external_customer_id_field("body.customer"),
        );
        let routing = Routing::check(&integration, &[flow("orders", None)]).expect("valid").expect("routed");
        assert_eq!(routing.preprocess_flow, None);
        assert_eq!(routing.flow_name_field().as_str(), "headers.x-flow");
    }

    #[test]
    fn preprocess_flow_on_flow_specific_endpoint_is_rejected() {
        let flows = [flow("router", Some(fields(Some("body.event"), None)))];
        let error = Routing::check(&integration(EndpointType::FlowSpecific), &flows).expect_err("flow specific");
        assert!(matches!(error, RoutingError::FieldsOnFlowSpecific(_)), "{error}");
    }

    #[test]
    fn two_routing_sources_are_rejected() {
        let integration = integration(EndpointType::InstanceSpecific)
            .preprocess(PreprocessFields::new().flow_name_field("body.event"));
        let flows = [flow("router", Some(fields(Some("body.event"), None)))];
        let error = Routing::check(&integration, &flows).expect_err("two sources");
        assert!(error.to_string().contains("`router` at src/flows.rs:7"), "{error}");
    }

    #[test]
    fn routing_without_flow_name_field_is_rejected() {
        let flows = [flow("router", Some(fields(None, Some("body.customer"))))];
        let error = Routing::check(&integration(EndpointType::InstanceSpecific), &flows).expect_err("no flow name");
        assert!(matches!(error, RoutingError::MissingFlowNameField(_)), "{error}");
    }

    #[test]
    fn shared_endpoint_without_customer_field_is_rejected() {
        let integration = integration(EndpointType::SharedInstance)
            .preprocess(PreprocessFields::new().flow_name_field("body.event"));
        let error = Routing::check(&integration, &[]).expect_err("no customer field");
        assert!(error.to_string().contains("external_customer_id_field"), "{error}");
    }

    #[test]
    fn shared_endpoint_with_preprocess_flow_is_rejected() {
        let flows = [flow("router", Some(fields(Some("body.event"), Some("body.customer"))))];
        let error = Routing::check(&integration(EndpointType::SharedInstance), &flows).expect_err("shared with flow");
        assert!(matches!(error, RoutingError::PreprocessFlowOnSharedEndpoint(_)), "{error}");
    }

    #[test]
    fn invalid_integration_field_names_the_setting_and_path() {
        let integration = integration(EndpointType::InstanceSpecific)
            .preprocess(PreprocessFields::new().flow_name_field("data.event"));
        let error = Routing::check(&integration, &[]).expect_err("invalid path");
        let message = error.to_string();
        assert!(message.contains("`flow_name_field`"), "{message}");
        assert!(message.contains("`data.event`"), "{message}");
    }
}
