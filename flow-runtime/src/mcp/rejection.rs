//! Error messages for MCP requests that the `rmcp` transport rejects before any JSON-RPC
//! handling. The transport responds to those with a plain-text body and no `Content-Type`.
//! This module replaces such a response with a JSON `{"error": ...}` that names the header or the
//! part of the body that is wrong and what to send instead.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rmcp::model::ClientJsonRpcMessage;
use serde_json::Value;

use crate::http::error_response;

/// The `Accept` value that MCP's Streamable HTTP transport requires on a POST.
const ACCEPT: &str = "application/json, text/event-stream";

/// Max bytes of the transport's plain-text response that are read into a message.
const TRANSPORT_MESSAGE_LIMIT: usize = 4096;

/// The parts of an MCP request that the error messages name.
pub(super) struct SentRequest {
    /// The `Host` header, or the URI's authority when the header is absent.
    pub(super) host: Option<String>,
    /// The `Accept` header.
    pub(super) accept: Option<String>,
    /// The `Content-Type` header.
    pub(super) content_type: Option<String>,
    /// The body after `Content-Encoding` decoding.
    pub(super) body: Bytes,
}

/// Replaces a transport rejection, a 4xx response without `Content-Type`, with a JSON error
/// that names the problem and the fix. Other responses pass through unchanged.
pub(super) async fn describe(response: Response, sent: &SentRequest, allowed_hosts: &[String], instance: &str) -> Response {
    let status = response.status();
    if !status.is_client_error() || response.headers().contains_key(header::CONTENT_TYPE) {
        return response;
    }

    let allow = response.headers().get(header::ALLOW).cloned();
    let transport_message = read_text(response.into_body()).await;
    let (status, message) = match status {
        StatusCode::FORBIDDEN => (status, host_message(sent.host.as_deref(), allowed_hosts)),
        StatusCode::NOT_ACCEPTABLE => (status, accept_message(sent.accept.as_deref())),
        StatusCode::UNSUPPORTED_MEDIA_TYPE if !is_json(sent.content_type.as_deref()) => {
            (status, content_type_message(sent.content_type.as_deref()))
        }
        // The transport sends 415 for a body that is not one JSON-RPC message, even when the
        // `Content-Type` is right. The body is what the client must fix, so the status is 400.
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (StatusCode::BAD_REQUEST, body_message(&sent.body)),
        StatusCode::METHOD_NOT_ALLOWED => (
            status,
            format!("MCP requests use POST; send each JSON-RPC message as POST /mcp/{instance}"),
        ),
        _ if transport_message.is_empty() => (status, status.canonical_reason().unwrap_or("bad request").to_lowercase()),
        _ => (status, transport_message.clone()),
    };
    tracing::info!(instance, status = status.as_u16(), transport_message, "MCP request rejected");

    let mut described = error_response(status, message);
    if let Some(allow) = allow {
        described.headers_mut().insert(header::ALLOW, allow);
    }
    described
}

async fn read_text(body: Body) -> String {
    match axum::body::to_bytes(body, TRANSPORT_MESSAGE_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    }
}

fn host_message(host: Option<&str>, allowed_hosts: &[String]) -> String {
    let allowed = allowed_hosts.join(", ");
    let fix = format!(
        "send a Host of one of: {allowed}, or set server.public_url to the URL that clients use, whose host \
         is then accepted"
    );
    match host {
        Some(host) => format!(
            "the Host header \"{host}\" is not allowed on MCP requests, which guards against DNS rebinding; {fix}"
        ),
        None => format!("the request has no Host header; {fix}"),
    }
}

fn accept_message(accept: Option<&str>) -> String {
    match accept {
        Some(accept) => format!(
            "the Accept header \"{accept}\" does not accept both application/json and text/event-stream, as MCP \
             requests must; send \"Accept: {ACCEPT}\""
        ),
        None => format!(
            "the Accept header is missing; MCP requests must accept both application/json and text/event-stream, \
             so send \"Accept: {ACCEPT}\""
        ),
    }
}

fn content_type_message(content_type: Option<&str>) -> String {
    match content_type {
        Some(content_type) => format!(
            "the Content-Type \"{content_type}\" is not supported on MCP requests; send the JSON-RPC message with \
             \"Content-Type: application/json\""
        ),
        None => "the Content-Type header is missing; send the JSON-RPC message with \"Content-Type: application/json\""
            .to_owned(),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Describes why a body with the right `Content-Type` is not one JSON-RPC message.
fn body_message(body: &[u8]) -> String {
    const EXAMPLE: &str = r#"{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}"#;
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(value) => value,
        Err(error) => {
            return format!("the body is not valid JSON: {error}; send one JSON-RPC 2.0 message such as {EXAMPLE}");
        }
    };
    let object = match &value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return "the body is a JSON-RPC batch (a JSON array), which MCP does not accept; send each message \
                    in a request of its own"
                .to_owned();
        }
        other => {
            return format!(
                "the body is the JSON {}, not a JSON-RPC message; send one JSON-RPC 2.0 message as a JSON object, \
                 such as {EXAMPLE}",
                json_kind(other)
            );
        }
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return format!(
            "the body has no \"jsonrpc\": \"2.0\" member, so it is not a JSON-RPC 2.0 message; send one such as \
             {EXAMPLE}"
        );
    }
    if !["method", "result", "error"].iter().any(|member| object.contains_key(*member)) {
        return format!(
            "the body has no \"method\", so it is neither a JSON-RPC request nor a notification; send one such as \
             {EXAMPLE}"
        );
    }
    match serde_json::from_value::<ClientJsonRpcMessage>(value) {
        Err(error) => format!("the body is not a JSON-RPC message that an MCP client sends: {error}; send one such as {EXAMPLE}"),
        Ok(_) => format!("the body is not a JSON-RPC message that an MCP client sends; send one such as {EXAMPLE}"),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_the_parser_error() {
        let message = body_message(b"{\"jsonrpc\":");

        assert!(message.starts_with("the body is not valid JSON: EOF"), "{message}");
    }

    #[test]
    fn batch_is_named_a_batch() {
        let message = body_message(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);

        assert!(message.contains("batch"), "{message}");
    }

    #[test]
    fn object_without_jsonrpc_member_names_it() {
        let message = body_message(br#"{"hello":1}"#);

        assert!(message.contains("\"jsonrpc\": \"2.0\""), "{message}");
    }

    #[test]
    fn scalar_body_names_its_json_type() {
        let message = body_message(b"5");

        assert!(message.contains("the JSON number"), "{message}");
    }

    #[test]
    fn json_content_type_with_charset_is_json() {
        assert!(is_json(Some("application/json; charset=utf-8")));
    }
}
