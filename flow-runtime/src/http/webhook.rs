//! The webhook handler: from an HTTP request to a durably stored execution and an answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flow_core::{FlowOutput, HttpResponse, RawBody, TriggerPayload, TriggerResult};
use serde_json::json;

use super::request::{header_map, parse_body, query_parameters};
use super::security::{API_KEY_HEADER, check_api_key};
use super::{AppState, HttpSettings, error_response};
use crate::definition::Flow;
use crate::engine::{Completion, Source, SubmitError, SubmitMode};
use crate::instance::Instance;

/// Request header that makes an asynchronous flow answer with its result: `Flow-Synchronous: true`.
pub const SYNCHRONOUS_HEADER: &str = "flow-synchronous";

/// Handles `ANY /webhooks/{instance}/{stable_key}[/{*path}]` of a flow-specific integration.
pub(super) async fn handle(
    State(state): State<AppState>,
    segments: Result<RawPathParams, RawPathParamsRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let segments = match decoded(segments) {
        Ok(segments) => segments,
        Err(rejection) => return rejection,
    };
    let (instance_id, flow_key) = (segment(&segments, "instance"), segment(&segments, "stable_key"));

    let Some(instance) = state.runtime.instance(instance_id).cloned() else {
        return error_response(StatusCode::NOT_FOUND, format!("instance \"{instance_id}\" not found"));
    };
    if let Some(rejection) = super::reject_undeployed(&state.runtime, &instance.id) {
        return rejection;
    }
    let Some(flow) = state.runtime.registry().get(flow_key) else {
        return error_response(
            StatusCode::NOT_FOUND,
            format!("flow \"{flow_key}\" not found in instance \"{instance_id}\""),
        );
    };

    let organization_keys = state.organization_keys.get(flow.stable_key()).map_or(&[][..], Vec::as_slice);
    if let Err(rejection) = check_api_key(flow, &instance, organization_keys, &headers) {
        tracing::info!(flow = flow.stable_key(), instance = %instance.id, "webhook rejected: unauthorized");
        return error_response(StatusCode::UNAUTHORIZED, rejection.0);
    }

    let mut payload = match read_payload(&state, &uri, &headers, body, path_fragment(uri.path(), 2)).await {
        Ok(payload) => payload,
        Err(rejection) => return rejection,
    };
    let execution_id = uuid::Uuid::now_v7().to_string();
    state.runtime.describe_payload(&mut payload, flow, &instance, &execution_id);
    tracing::debug!(flow = flow.stable_key(), instance = %instance.id, method = %method, "webhook received");

    let trigger = match run_trigger(&state, flow, &instance, payload).await {
        Ok(trigger) => trigger,
        Err(rejection) => return rejection,
    };

    // Without a custom trigger the flow gets the body exactly as the request parser made it.
    let unchanged_request = flow.handlers.on_trigger.is_none();
    answer(&state, flow, &instance, trigger, Source::Webhook, &headers, unchanged_request).await
}

/// A request that passed its flow's trigger.
pub(super) struct Triggered {
    /// The payload for the execution, boxed so that handing it on moves a pointer.
    pub(super) payload: Box<TriggerPayload>,
    /// The trigger's own response to the caller, if it gave one.
    pub(super) response: Option<HttpResponse>,
}

impl From<TriggerResult> for Triggered {
    fn from(result: TriggerResult) -> Self {
        Self {
            payload: Box::new(result.payload),
            response: result.response,
        }
    }
}

/// Returns a webhook URL's percent-decoded path segments, or a 400 naming the fix when one of
/// them is not UTF-8 once decoded.
#[expect(clippy::result_large_err, reason = "the error is the response that ends the request, built once")]
pub(super) fn decoded(segments: Result<RawPathParams, RawPathParamsRejection>) -> Result<RawPathParams, Response> {
    segments.map_err(|rejection| {
        error_response(
            StatusCode::BAD_REQUEST,
            format!("{}; percent-encode every segment of the webhook URL's path as UTF-8", rejection.body_text()),
        )
    })
}

/// Returns the decoded path segment called `name`, or `""` when the route has none. It is
/// borrowed from the request, so reading it copies nothing.
pub(super) fn segment<'a>(segments: &'a RawPathParams, name: &str) -> &'a str {
    segments.iter().find(|(key, _)| *key == name).map_or("", |(_, value)| value)
}

/// Stores the execution of a request that passed its trigger and responds with the trigger's
/// own response, the execution id, or, for a synchronous flow, the first attempt's result.
/// `unchanged_request` is [`SubmitMode::unchanged_request`].
pub(super) async fn answer(
    state: &AppState,
    flow: &Flow,
    instance: &Instance,
    trigger: Triggered,
    source: Source,
    headers: &HeaderMap,
    unchanged_request: bool,
) -> Response {
    let mode = SubmitMode {
        wait: trigger.response.is_none() && (flow.config.synchronous || asks_synchronous(headers)),
        run_now: false,
        unchanged_request,
    };
    let submitted = state
        .runtime
        .submit_with(flow.stable_key(), &instance.id, trigger.payload, source, mode)
        .await;
    let submitted = match submitted {
        Ok(submitted) => submitted,
        Err(SubmitError::Store(error)) => {
            tracing::error!(%error, flow = flow.stable_key(), instance = %instance.id, "execution not confirmed as stored");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store did not confirm the execution: {error}; retry the request (if the store committed it before failing, it runs as well)"),
            );
        }
        Err(error) => return error_response(StatusCode::NOT_FOUND, error.to_string()),
    };

    if let Some(response) = trigger.response {
        return http_response(response);
    }
    if submitted.deduplicated {
        return (
            StatusCode::OK,
            axum::Json(json!({ "executionId": submitted.execution_id, "deduplicated": true })),
        )
            .into_response();
    }
    let Some(completion) = submitted.completion else {
        return execution_id_response(&submitted.execution_id);
    };

    match tokio::time::timeout(state.settings.sync_timeout, completion).await {
        Ok(Ok(Completion::Succeeded(FlowOutput::Data(value)))) => axum::Json(value).into_response(),
        Ok(Ok(Completion::Succeeded(FlowOutput::Response(response)))) => http_response(response),
        Ok(Ok(Completion::Failed { error, retrying })) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({ "error": error, "executionId": submitted.execution_id, "retrying": retrying })),
        )
            .into_response(),
        Ok(Err(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({
                "error": "the runtime is shutting down; the execution stays queued and runs after the restart",
                "executionId": submitted.execution_id,
            })),
        )
            .into_response(),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            axum::Json(json!({
                "error": format!(
                    "no result within {} seconds; the execution goes on, follow it at /executions/{}",
                    state.settings.sync_timeout.as_secs(),
                    submitted.execution_id
                ),
                "executionId": submitted.execution_id,
            })),
        )
            .into_response(),
    }
}

/// Returns `200 {"executionId": "..."}`, the response to every accepted asynchronous request,
/// written straight into its body without building a JSON value first.
fn execution_id_response(execution_id: &str) -> Response {
    let mut body = Vec::with_capacity(execution_id.len() + 20);
    body.extend_from_slice(b"{\"executionId\":");
    if serde_json::to_writer(&mut body, execution_id).is_err() {
        return axum::Json(json!({ "executionId": execution_id })).into_response();
    }
    body.push(b'}');
    ([(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Reads and parses the request into a trigger payload without the `Api-Key` header. The
/// fields that describe where it runs are left for [`crate::engine::Runtime::describe_payload`].
/// A `Flow-Synchronous` header other than `true` or `false` gets a 400 before the body is read.
pub(super) async fn read_payload(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    path_fragment: String,
) -> Result<Box<TriggerPayload>, Response> {
    if let Some(rejection) = reject_unknown_synchronous(headers) {
        return Err(rejection);
    }
    let bytes = read_body(body, headers, &state.settings).await?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let data = match parse_body(content_type.as_deref(), &bytes).await {
        Ok(data) => data,
        Err(error) => return Err(error_response(StatusCode::BAD_REQUEST, error.to_string())),
    };

    Ok(Box::new(TriggerPayload {
        headers: header_map(headers, &[API_KEY_HEADER]),
        query_parameters: query_parameters(uri.query()),
        raw_body: RawBody {
            data: bytes.to_vec(),
            content_type: content_type.clone(),
        },
        body: flow_core::Body { data, content_type },
        path_fragment,
        ..TriggerPayload::default()
    }))
}

/// Reads the whole body within the settings' limits.
///
/// A body larger than `body_limit` bytes gets 413: a declared `Content-Length` over the limit
/// is rejected before reading, and a chunked body is cut off as soon as it passes the limit.
/// A body not received within `body_timeout` gets 408, so a client that sends a byte now and
/// then cannot hold the connection for hours.
pub(crate) async fn read_body(body: Body, headers: &HeaderMap, settings: &HttpSettings) -> Result<bytes::Bytes, Response> {
    let limit = settings.body_limit;
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes; send a smaller body or raise server.body_limit"),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    // A compressed body's declared length is not its decoded length; the stream limit applies.
    let encoded = headers.contains_key(axum::http::header::CONTENT_ENCODING);
    if let (Some(length), false) = (declared, encoded)
        && length > limit as u64
    {
        return Err(too_large());
    }

    let Ok(read) = tokio::time::timeout(settings.body_timeout, axum::body::to_bytes(body, limit)).await else {
        tracing::info!(timeout_seconds = settings.body_timeout.as_secs(), "reading a request body timed out");
        return Err(error_response(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "reading the request body timed out after {} seconds; send the body faster or raise server.body_timeout_seconds",
                settings.body_timeout.as_secs()
            ),
        ));
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let is_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if is_limit {
                return Err(too_large());
            }
            let mut rejection = error_response(StatusCode::BAD_REQUEST, format!("could not read the request body: {error}"));
            rejection.extensions_mut().insert(super::UnreadableBody(error.to_string()));
            Err(rejection)
        }
    }
}

/// Returns the part of the path after `/webhooks/` and `segments` more segments, as sent: two
/// for `/webhooks/{instance}/{stable_key}/`, one for `/webhooks/{instance}/`, none for
/// `/webhooks/`.
pub(super) fn path_fragment(path: &str, segments: usize) -> String {
    let rest = path.strip_prefix("/webhooks/").unwrap_or_default();
    rest.splitn(segments + 1, '/').nth(segments).unwrap_or_default().to_owned()
}

/// Returns a 400 when the request's `Flow-Synchronous` header is neither `true` nor `false`,
/// so that a value such as `yes` is not read as asynchronous without a word.
fn reject_unknown_synchronous(headers: &HeaderMap) -> Option<Response> {
    let value = headers.get(SYNCHRONOUS_HEADER)?;
    let text = value.to_str().unwrap_or_default().trim();
    if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
        return None;
    }
    Some(error_response(
        StatusCode::BAD_REQUEST,
        format!(
            "the Flow-Synchronous header is \"{}\"; send `true` to wait for the flow's result, or `false` or no header \
             for an execution id",
            String::from_utf8_lossy(value.as_bytes())
        ),
    ))
}

fn asks_synchronous(headers: &HeaderMap) -> bool {
    headers
        .get(SYNCHRONOUS_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Runs the flow's custom trigger, or passes the payload on when the flow has none.
///
/// The custom trigger's future is boxed. Held in place, it would enlarge the future of every
/// webhook request, which is copied each time it moves.
pub(super) async fn run_trigger(
    state: &AppState,
    flow: &Flow,
    instance: &Arc<Instance>,
    payload: Box<TriggerPayload>,
) -> Result<Triggered, Response> {
    if flow.handlers.on_trigger.is_none() {
        return Ok(Triggered { payload, response: None });
    }
    match Box::pin(state.runtime.run_trigger(flow, instance, *payload)).await {
        Ok(result) => Ok(Triggered::from(result)),
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(error_response(status, rejection.message))
        }
    }
}

/// Headers the server sets from the body and the connection; a flow's values for them would
/// contradict the body actually sent.
const FRAMING_HEADERS: [&str; 4] = ["content-length", "transfer-encoding", "connection", "keep-alive"];

/// Turns a flow's or trigger's response into an HTTP response. Framing headers
/// (`Content-Length`, `Transfer-Encoding`, `Connection`, `Keep-Alive`) and invalid header
/// names or values are dropped with a warning.
pub(super) fn http_response(response: HttpResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = (status, response.body).into_response();
    let headers = answer.headers_mut();
    if let Some(content_type) = response.content_type.and_then(|value| HeaderValue::from_str(&value).ok()) {
        headers.insert(axum::http::header::CONTENT_TYPE, content_type);
    }
    for (name, value) in response.headers {
        if FRAMING_HEADERS.iter().any(|framing| name.eq_ignore_ascii_case(framing)) {
            tracing::warn!(header = %name, "dropped a framing header from a flow's response");
            continue;
        }
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(header = %name, "dropped an invalid response header"),
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_fragment_is_empty_without_extra_path() {
        assert_eq!(path_fragment("/webhooks/acme/orders", 2), "");
    }

    #[test]
    fn path_fragment_keeps_the_rest_as_sent() {
        assert_eq!(path_fragment("/webhooks/acme/orders/a/b%20c", 2), "a/b%20c");
    }

    #[test]
    fn path_fragment_after_instance_url() {
        assert_eq!(path_fragment("/webhooks/acme/orders/7", 1), "orders/7");
    }

    #[test]
    fn path_fragment_after_shared_url() {
        assert_eq!(path_fragment("/webhooks/orders/7", 0), "orders/7");
        assert_eq!(path_fragment("/webhooks", 0), "");
    }
}
