// A preprocess flow with all three routing fields compiles, on an unsecured endpoint with
// step errors ignored.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! The shared webhook's router.

use flow_runtime::prelude::*;

#[flow(
    name = "Route Events",
    stable_key = "route-events",
    endpoint_security = "unsecured",
    preprocess(
        flow_name_field = "body.data.event",
        external_customer_id_field = "body.data.customerId",
        external_customer_user_id_field = "body.data.users[0].id",
    ),
    error_config(handler = "ignore"),
)]
async fn route_events(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {
    let config = route_events::definition().config;
    assert_eq!(config.endpoint_security, EndpointSecurity::Unsecured);
    let preprocess = config.preprocess.as_ref().expect("preprocess is set");
    let field = |path: &Option<FieldPath>| path.as_ref().map(|path| path.as_str().to_owned());
    assert_eq!(field(&preprocess.flow_name_field).as_deref(), Some("body.data.event"));
    assert_eq!(field(&preprocess.external_customer_id_field).as_deref(), Some("body.data.customerId"));
    assert_eq!(field(&preprocess.external_customer_user_id_field).as_deref(), Some("body.data.users[0].id"));
    let error_config = config.error_config.as_ref().expect("error_config is set");
    assert_eq!(error_config.handler, StepErrorHandler::Ignore);
    assert_eq!(error_config.max_attempts, None);
}
