//! Requests to an instance-specific (`/webhooks/{instance}`) or shared (`/webhooks`)
//! endpoint: route them, then run the routed flow as its own webhook would.

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flow_core::EndpointType;
use serde_json::json;

use super::security::check_api_key;
use super::webhook::{Triggered, answer, decoded, path_fragment, read_payload, segment};
use super::{AppState, error_response};
use crate::definition::Flow;
use crate::engine::{RouteError, Source};
use crate::instance::Instance;

/// Handles `ANY /webhooks/{instance}[/{*path}]` of an instance-specific integration.
pub(super) async fn handle_instance(
    State(state): State<AppState>,
    segments: Result<RawPathParams, RawPathParamsRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let segments = match decoded(segments) {
        Ok(segments) => segments,
        Err(rejection) => return rejection,
    };
    let instance_id = segment(&segments, "instance").to_owned();
    handle(state, Some(instance_id), uri, headers, body).await
}

/// Handles `ANY /webhooks[/{*path}]` of a shared-endpoint integration.
pub(super) async fn handle_shared(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    handle(state, None, uri, headers, body).await
}

async fn handle(state: AppState, instance_id: Option<String>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let routing = state.runtime.registry().routing().cloned();
    let Some(routing) = routing else {
        return error_response(StatusCode::NOT_FOUND, "this integration routes no requests");
    };

    // The preprocess flow runs before anything else, so its endpoint security applies first.
    if let (Some(preprocess), Some(instance_id)) = (&routing.preprocess_flow, &instance_id) {
        let Some(instance) = state.runtime.instance(instance_id).cloned() else {
            return error_response(StatusCode::NOT_FOUND, format!("instance \"{instance_id}\" not found"));
        };
        if let Some(rejection) = super::reject_undeployed(&state.runtime, instance_id) {
            return rejection;
        }
        let flow = state.runtime.registry().get(preprocess).expect("the routing names a registered flow");
        if let Some(rejection) = reject_unauthorized(&state, flow, &instance, &headers, None) {
            return rejection;
        }
    }

    let segments = match routing.endpoint_type {
        EndpointType::SharedInstance => 0,
        EndpointType::InstanceSpecific | EndpointType::FlowSpecific => 1,
    };
    let payload = match read_payload(&state, &uri, &headers, body, path_fragment(uri.path(), segments)).await {
        Ok(payload) => payload,
        Err(rejection) => return rejection,
    };

    let route = match state.runtime.route(instance_id.as_deref(), *payload, state.settings.sync_timeout).await {
        Ok(route) => route,
        Err(error) => return route_error(error),
    };
    let flow = state.runtime.registry().get(&route.flow).expect("the route names a registered flow");
    if let Some(rejection) = super::reject_undeployed(&state.runtime, &route.instance.id) {
        return rejection;
    }
    // The preprocess execution is stored by now, so a rejection names it.
    let preprocess_id = match &route.source {
        Source::Preprocess(execution_id) => Some(execution_id.clone()),
        _ => None,
    };
    if let Some(rejection) = reject_unauthorized(&state, flow, &route.instance, &headers, preprocess_id.as_deref()) {
        return rejection;
    }

    let mut payload = route.payload;
    let execution_id = uuid::Uuid::now_v7().to_string();
    state.runtime.describe_payload(&mut payload, flow, &route.instance, &execution_id);
    let mut trigger = match state.runtime.run_trigger(flow, &route.instance, payload).await {
        Ok(trigger) => Triggered::from(trigger),
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return routed_error(status, rejection.message, preprocess_id.as_deref());
        }
    };
    if trigger.response.is_none() {
        trigger.response = route.trigger_response;
    }
    answer(&state, flow, &route.instance, trigger, route.source, &headers, false).await
}

/// Returns a 401 response unless the request's `Api-Key` passes the flow's endpoint security on
/// the instance; `None` lets the request through. `preprocess_id` names the preprocess
/// execution that already ran, if any.
fn reject_unauthorized(
    state: &AppState,
    flow: &Flow,
    instance: &Instance,
    headers: &HeaderMap,
    preprocess_id: Option<&str>,
) -> Option<Response> {
    let organization_keys = state.organization_keys.get(flow.stable_key()).map_or(&[][..], Vec::as_slice);
    let rejection = check_api_key(flow, instance, organization_keys, headers).err()?;
    tracing::info!(flow = flow.stable_key(), instance = %instance.id, preprocess_id, "routed webhook rejected: unauthorized");
    Some(routed_error(StatusCode::UNAUTHORIZED, rejection.0, preprocess_id))
}

fn route_error(error: RouteError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    routed_error(status, error.message, error.execution_id.as_deref())
}

/// An error response, with the preprocess execution's id as `executionId` when one is given.
fn routed_error(status: StatusCode, message: String, execution_id: Option<&str>) -> Response {
    match execution_id {
        Some(execution_id) => (status, axum::Json(json!({ "error": message, "executionId": execution_id }))).into_response(),
        None => error_response(status, message),
    }
}
