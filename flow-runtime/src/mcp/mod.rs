//! MCP servers: each instance serves its agent flows as tools at `/mcp/{instance}` over the
//! Streamable HTTP transport of the `rmcp` crate.
//!
//! The server is stateless: every POST carries one JSON-RPC message and gets a JSON response, so
//! no session outlives a request. Each request needs an `Api-Key` that at least one agent flow
//! of the instance accepts, and `tools/call` checks the key against the called flow's own
//! endpoint security, as its webhook does.

mod rejection;
mod server;
mod tools;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tower::ServiceExt as _;

pub(crate) use tools::{check_arguments, check_object_schema, input_validator};
pub use tools::{tool_definition, tool_definitions, tool_payload};

use crate::engine::Runtime;
use crate::http::{AppState, HttpSettings, error_response, header_text, read_body};
use rejection::SentRequest;
use server::InstanceTools;

/// The MCP server of one instance.
#[derive(Clone)]
pub(crate) struct McpEndpoint {
    tools: InstanceTools,
    service: StreamableHttpService<InstanceTools, NeverSessionManager>,
    /// The `Host` header values the transport accepts, as its 403 message lists them.
    allowed_hosts: Arc<Vec<String>>,
}

/// Builds the MCP server of every instance, by instance id.
pub(crate) fn endpoints(
    runtime: &Runtime,
    settings: &HttpSettings,
    organization_keys: &Arc<HashMap<String, Vec<String>>>,
) -> HashMap<String, McpEndpoint> {
    let allowed_hosts = Arc::new(allowed_hosts(runtime));
    let validators = Arc::new(tools::input_validators(runtime.registry()));
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(allowed_hosts.iter().cloned())
        .with_max_request_body_bytes(settings.body_limit);

    runtime
        .instances()
        .map(|instance| {
            let tools = InstanceTools {
                runtime: runtime.clone(),
                instance: Arc::clone(instance),
                organization_keys: Arc::clone(organization_keys),
                validators: Arc::clone(&validators),
                timeout: settings.sync_timeout,
            };
            let factory = tools.clone();
            let service = StreamableHttpService::new(
                move || Ok(factory.clone()),
                Arc::new(NeverSessionManager::default()),
                config.clone(),
            );
            let endpoint = McpEndpoint {
                tools,
                service,
                allowed_hosts: Arc::clone(&allowed_hosts),
            };
            (instance.id.clone(), endpoint)
        })
        .collect()
}

/// Returns the `Host` header values the MCP endpoints accept, which guards a local server
/// against DNS rebinding: `localhost`, `127.0.0.1`, `::1`, and the host of the webhook URLs,
/// which is `server.public_url` or, when that is unset, the listen address.
fn allowed_hosts(runtime: &Runtime) -> Vec<String> {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let public = runtime.instances().flat_map(|instance| instance.webhook_urls.values()).map(|url| url_authority(url));
    hosts.extend(public.filter(|authority| !authority.is_empty()).map(str::to_owned));
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Returns the `host[:port]` part of a URL such as `https://flows.example.com/webhooks`.
fn url_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// Handles `ANY /mcp/{instance}`: checks the API key, then passes the request to the
/// instance's MCP server. A request that the transport rejects gets a JSON error naming the
/// header or body part to fix.
pub(crate) async fn handle(State(state): State<AppState>, Path(instance_id): Path<String>, request: Request) -> Response {
    let Some(endpoint) = state.mcp.get(&instance_id) else {
        return error_response(StatusCode::NOT_FOUND, format!("instance \"{instance_id}\" not found"));
    };
    if let Some(rejection) = crate::http::reject_undeployed(&state.runtime, &instance_id) {
        return rejection;
    }
    if !endpoint.tools.admits(request.headers()) {
        tracing::info!(instance = %instance_id, "MCP request rejected: unauthorized");
        return error_response(
            StatusCode::UNAUTHORIZED,
            format!(
                "missing or invalid Api-Key header for the MCP server of instance \"{instance_id}\"; send the key \
                 of one of its agent flows"
            ),
        );
    }

    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers, &state.settings).await {
        Ok(body) => body,
        Err(rejection) => return rejection,
    };
    let sent = SentRequest {
        host: header_text(&parts.headers, header::HOST).or_else(|| parts.uri.authority().map(ToString::to_string)),
        accept: header_text(&parts.headers, header::ACCEPT),
        content_type: header_text(&parts.headers, header::CONTENT_TYPE),
        body: body.clone(),
    };

    let request = Request::from_parts(parts, Body::from(body));
    let response = match endpoint.service.clone().oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(infallible) => match infallible {},
    };
    rejection::describe(response, &sent, &endpoint.allowed_hosts, &instance_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_authority_keeps_host_and_port() {
        assert_eq!(url_authority("http://127.0.0.1:9000/webhooks/acme/orders"), "127.0.0.1:9000");
    }

    #[test]
    fn url_authority_of_a_bare_host() {
        assert_eq!(url_authority("https://flows.example.com"), "flows.example.com");
    }
}
