//! The HTTP server: webhooks, the executions API and health.
//!
//! Routes:
//! - webhooks, by the integration's endpoint type: `ANY /webhooks/{instance}/{stable_key}[/{*path}]`
//!   (flow-specific), `ANY /webhooks/{instance}[/{*path}]` (instance-specific) or
//!   `ANY /webhooks[/{*path}]` (shared)
//! - `ANY /mcp/{instance}`: the instance's MCP server, whose tools are its agent flows
//! - `GET /executions?flow=&instance=&status=&parent=&cursor=&limit=` and `GET /executions/{id}`. A
//!   listing's `nextCursor`, passed as `cursor`, lists the next page.
//! - `GET /instances`, `POST /instances/{instance}/deploy`, `POST /instances/{instance}/delete`
//! - `GET /schedules` and `GET /ticks?flow=&instance=&limit=`
//! - `GET /health`

mod admin;
mod decode;
mod executions;
pub(crate) mod request;
mod routed;
pub(crate) mod security;
mod server;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use flow_core::EndpointType;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::engine::Runtime;
use crate::mcp::{self, McpEndpoint};

pub use server::{DRAIN_TIMEOUT, HEADER_READ_TIMEOUT, ServerLimits, serve};
pub use webhook::SYNCHRONOUS_HEADER;
pub(crate) use webhook::read_body;

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes, after content decoding.
    pub body_limit: usize,
    /// Longest wait for a synchronous answer.
    pub sync_timeout: Duration,
    /// Maximum time a client may take to send a whole request body. A slower client gets 408.
    pub body_timeout: Duration,
    /// Bearer token that guards the executions and admin API, when set.
    pub admin_token: Option<String>,
}

/// State shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) runtime: Runtime,
    pub(crate) settings: Arc<HttpSettings>,
    /// Organization keys of each flow, by stable key, resolved at startup.
    pub(crate) organization_keys: Arc<HashMap<String, Vec<String>>>,
    /// The MCP server of each instance, by instance id.
    pub(crate) mcp: Arc<HashMap<String, McpEndpoint>>,
}

/// Builds the router.
///
/// `organization_keys` contains each organization-secured flow's keys, by stable key.
pub fn router(runtime: Runtime, settings: HttpSettings, organization_keys: HashMap<String, Vec<String>>) -> Router {
    let endpoint_type = runtime.registry().integration().endpoint_type;
    let organization_keys = Arc::new(organization_keys);
    let mcp = Arc::new(mcp::endpoints(&runtime, &settings, &organization_keys));
    let state = AppState {
        runtime,
        settings: Arc::new(settings),
        organization_keys,
        mcp,
    };
    // A wildcard segment matches no empty path, so each URL with a trailing slash has a route
    // of its own, served as the URL without it.
    let webhooks = match endpoint_type {
        EndpointType::FlowSpecific => Router::new()
            .route("/webhooks/{instance}/{stable_key}", any(webhook::handle))
            .route("/webhooks/{instance}/{stable_key}/", any(webhook::handle))
            .route("/webhooks/{instance}/{stable_key}/{*path}", any(webhook::handle)),
        EndpointType::InstanceSpecific => Router::new()
            .route("/webhooks/{instance}", any(routed::handle_instance))
            .route("/webhooks/{instance}/", any(routed::handle_instance))
            .route("/webhooks/{instance}/{*path}", any(routed::handle_instance)),
        EndpointType::SharedInstance => Router::new()
            .route("/webhooks", any(routed::handle_shared))
            .route("/webhooks/", any(routed::handle_shared))
            .route("/webhooks/{*path}", any(routed::handle_shared)),
    };
    let webhook_route = webhook_route(endpoint_type);
    let routes = Router::new()
        .merge(webhooks)
        .route("/mcp/{instance}", any(mcp::handle))
        .route("/executions", get(executions::list))
        .route("/executions/{id}", get(executions::show))
        .route("/instances", get(admin::list_instances))
        .route("/instances/{instance}/deploy", post(admin::deploy))
        .route("/instances/{instance}/delete", post(admin::delete))
        .route("/schedules", get(admin::list_schedules))
        .route("/ticks", get(admin::list_ticks))
        .route("/health", get(health))
        .fallback(move || async move {
            error_response(
                StatusCode::NOT_FOUND,
                format!("no such route; webhooks are at {webhook_route}, MCP servers at /mcp/{{instance}}, executions at /executions"),
            )
        })
        .with_state(state);

    // The layers wrap the routes once, as one service. `Router::layer` would wrap each route
    // in a box of its own per layer, and every request would clone each of those boxes.
    let layered = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(describe_bare_errors))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .service(routes);
    Router::new().fallback_service(layered)
}

/// Handles `GET /health`.
async fn health(State(state): State<AppState>) -> Response {
    health_response(state.runtime.store().stopped())
}

/// Returns `200 {"status": "ok", "pid": ...}`, or `503 {"status": "failed", "error": ...}` once
/// the store has stopped accepting writes for the reason `stopped`, so that a health check
/// restarts the process.
fn health_response(stopped: Option<String>) -> Response {
    let pid = std::process::id();
    match stopped {
        None => axum::Json(json!({ "status": "ok", "pid": pid })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "failed", "error": reason, "pid": pid })),
        )
            .into_response(),
    }
}

/// Returns the webhook route of an endpoint type, as the 404 response for unknown routes names it.
fn webhook_route(endpoint_type: EndpointType) -> &'static str {
    match endpoint_type {
        EndpointType::FlowSpecific => "/webhooks/{instance}/{stable_key}",
        EndpointType::InstanceSpecific => "/webhooks/{instance}",
        EndpointType::SharedInstance => "/webhooks",
    }
}

/// Maximum time a client may leave between two parts of a request body. The whole body is
/// limited by [`HttpSettings::body_timeout`].
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Gives error answers that carry no body (a 405, or a 415 for an unsupported
/// `Content-Encoding` or `Content-Type`) the JSON `{"error": ...}` shape every other error has.
///
/// It also decodes a compressed body with [`decode::decode_body`], after joining its
/// `Content-Encoding` into one lowercase line as [`normalize_content_encoding`] describes, and
/// names that coding when the body could not be decoded.
async fn describe_bare_errors(mut request: Request, next: Next) -> Response {
    normalize_content_encoding(request.headers_mut());
    let content_encoding = header_text(request.headers(), header::CONTENT_ENCODING);
    let content_type = header_text(request.headers(), header::CONTENT_TYPE);
    let response = match decode::decode_body(&mut request) {
        None => next.run(request).await,
        Some(rejection) => rejection,
    };

    // Decoding removed `Content-Encoding` from the request, so the coding read before it is named.
    if let (Some(UnreadableBody(reason)), Some(coding)) = (response.extensions().get::<UnreadableBody>(), &content_encoding) {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "could not decode the request body sent with Content-Encoding \"{coding}\": {reason}; send the body \
                 compressed in that coding (deflate means zlib-wrapped data, RFC 1950), or uncompressed"
            ),
        );
    }

    let status = response.status();
    let bare = (status.is_client_error() || status.is_server_error()) && !response.headers().contains_key(header::CONTENT_TYPE);
    if !bare {
        return response;
    }
    let message = match status {
        // Decoding's 415 names the codings it decodes in `Accept-Encoding`.
        StatusCode::UNSUPPORTED_MEDIA_TYPE if response.headers().contains_key(header::ACCEPT_ENCODING) => format!(
            "unsupported Content-Encoding \"{}\"; send the body uncompressed, or compressed once with gzip or \
             deflate",
            content_encoding.unwrap_or_default()
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => match content_type {
            Some(content_type) => format!(
                "unsupported Content-Type \"{content_type}\" on this route; send the body with a Content-Type the \
                 route accepts, such as application/json"
            ),
            None => "unsupported media type, and the request has no Content-Type header; send the body with a \
                     Content-Type the route accepts, such as application/json"
                .to_owned(),
        },
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_owned(),
        other => other.canonical_reason().unwrap_or("request failed").to_lowercase(),
    };
    let mut described = error_response(status, message);
    // `Allow` and `Accept-Encoding` tell the client what to send instead.
    for name in [header::ALLOW, header::ACCEPT_ENCODING] {
        if let Some(value) = response.headers().get(&name) {
            described.headers_mut().insert(name, value.clone());
        }
    }
    described
}

/// The reason a request body could not be read, which a 400 response carries so that
/// [`describe_bare_errors`] can name the body's `Content-Encoding`.
#[derive(Debug, Clone)]
pub(crate) struct UnreadableBody(pub(crate) String);

/// Lowercases the `Content-Encoding` codings, drops `identity`, which changes nothing, and joins
/// repeated lines into one list, as RFC 9110 reads them. So `GZIP` and `gzip, identity` are
/// decoded as gzip, and a body sent with two `gzip` lines is rejected, never decoded once.
fn normalize_content_encoding(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_ENCODING) {
        return;
    }
    let mut codings: Vec<String> = Vec::new();
    for line in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(line.as_bytes()).to_ascii_lowercase();
        let named = text.split(',').map(str::trim).filter(|coding| !coding.is_empty() && *coding != "identity");
        codings.extend(named.map(str::to_owned));
    }

    if codings.is_empty() {
        headers.remove(header::CONTENT_ENCODING);
    } else if let Ok(value) = header::HeaderValue::from_str(&codings.join(", ")) {
        headers.insert(header::CONTENT_ENCODING, value);
    }
}

/// Returns a header's value as text, or `None` when it is absent or not visible ASCII.
pub(crate) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}

/// Returns a 409 naming the instance when it does not serve: its last deploy failed or it
/// was deleted.
pub(crate) fn reject_undeployed(runtime: &Runtime, instance_id: &str) -> Option<Response> {
    if runtime.is_serving(instance_id) {
        return None;
    }
    Some(error_response(
        StatusCode::CONFLICT,
        format!(
            "instance \"{instance_id}\" is not deployed (its last deploy failed or it was deleted); deploy it with `deploy {instance_id}`"
        ),
    ))
}

/// Returns `value` unless it is empty, so that a query such as `?flow=` filters nothing.
pub(crate) fn given(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// Reads the `limit` of a list request: `default` when it is absent or empty, or a 400 naming
/// it, followed by `usage`, when it is not a whole number from 1 to `max`.
#[expect(clippy::result_large_err, reason = "the error is the response that ends the request, built once")]
pub(crate) fn list_limit(text: Option<String>, default: usize, max: usize, usage: &str) -> Result<usize, Response> {
    let Some(text) = given(text) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
        _ => Err(error_response(StatusCode::BAD_REQUEST, format!("limit \"{text}\" is invalid; {usage}"))),
    }
}

/// Returns a parsed query string, or a 400 with the parser's reason followed by `usage`.
#[expect(clippy::result_large_err, reason = "the error is the response that ends the request, built once")]
pub(crate) fn parsed_query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
    usage: &str,
) -> Result<T, Response> {
    match query {
        Ok(axum::extract::Query(query)) => Ok(query),
        Err(rejection) => {
            // The source is serde's reason, without axum's "Failed to deserialize query string".
            let reason = std::error::Error::source(&rejection).map_or_else(|| rejection.body_text(), ToString::to_string);
            Err(error_response(StatusCode::BAD_REQUEST, format!("invalid query string: {reason}; {usage}")))
        }
    }
}

/// Returns the one decoded segment of a URL such as `/executions/{id}`, or a 400 with axum's
/// reason when it is not UTF-8 once percent-decoded.
#[expect(clippy::result_large_err, reason = "the error is the response that ends the request, built once")]
pub(crate) fn path_value(
    segment: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, Response> {
    match segment {
        Ok(axum::extract::Path(value)) => Ok(value),
        Err(rejection) => Err(error_response(
            StatusCode::BAD_REQUEST,
            format!("{}; percent-encode the path as UTF-8", rejection.body_text()),
        )),
    }
}

/// A JSON error answer: `{"error": message}` plus any extra fields.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096).await.expect("reads");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn health_is_ok_while_store_writes() {
        let response = health_response(None);

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_of(response).await["status"], "ok");
    }

    #[tokio::test]
    async fn health_fails_once_store_stopped() {
        let response = health_response(Some("a sync failed".to_owned()));

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = body_of(response).await;
        assert_eq!(body["status"], "failed");
        assert_eq!(body["error"], "a sync failed");
    }
}
