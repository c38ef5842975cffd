//! What flows and triggers return: results, HTTP responses and errors.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::payload::TriggerPayload;

/// A full HTTP response, returned by a synchronous flow or a custom trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Response headers in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// `Content-Type` of the body.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Creates an empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: None,
            body: Vec::new(),
        }
    }

    /// Creates a JSON response.
    pub fn json(status: u16, value: &Value) -> Self {
        Self::new(status).body("application/json", value.to_string().into_bytes())
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its content type.
    #[must_use]
    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(content_type.into());
        self.body = body.into();
        self
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpResponseRepr {
    status_code: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

impl Serialize for HttpResponse {
    /// Writes the body as `body` when it is UTF-8 text, else as `bodyBase64`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (body, body_base64) = match std::str::from_utf8(&self.body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (None, Some(BASE64.encode(&self.body))),
        };
        HttpResponseRepr {
            status_code: self.status,
            headers: self.headers.clone(),
            content_type: self.content_type.clone(),
            body,
            body_base64,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for HttpResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = HttpResponseRepr::deserialize(deserializer)?;
        let body = match (repr.body, repr.body_base64) {
            (_, Some(encoded)) => BASE64.decode(encoded).map_err(serde::de::Error::custom)?,
            (Some(text), None) => text.into_bytes(),
            (None, None) => Vec::new(),
        };
        Ok(Self {
            status: repr.status_code,
            headers: repr.headers,
            content_type: repr.content_type,
            body,
        })
    }
}

/// The result of a successful execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlowOutput {
    /// A JSON value; a synchronous webhook answers it with status 200.
    Data(Value),
    /// A full HTTP response for a synchronous webhook.
    Response(HttpResponse),
}

impl FlowOutput {
    /// Returns the JSON data, or `None` for an HTTP response.
    pub fn data(&self) -> Option<&Value> {
        match self {
            Self::Data(value) => Some(value),
            Self::Response(_) => None,
        }
    }
}

impl From<Value> for FlowOutput {
    fn from(value: Value) -> Self {
        Self::Data(value)
    }
}

impl From<HttpResponse> for FlowOutput {
    fn from(response: HttpResponse) -> Self {
        Self::Response(response)
    }
}

impl From<()> for FlowOutput {
    fn from((): ()) -> Self {
        Self::Data(Value::Null)
    }
}

/// Why an execution failed, and whether retrying can help.
///
/// `?` converts any [`std::error::Error`] into a retryable `FlowError`, keeping its chain of
/// causes in the message. Use [`FlowError::terminal`] for failures that will never succeed,
/// such as a validation error: they stop retries at once.
pub struct FlowError {
    message: String,
    terminal: bool,
}

impl FlowError {
    /// Creates a retryable error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            terminal: false,
        }
    }

    /// Creates an error that stops retries at once.
    pub fn terminal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            terminal: true,
        }
    }

    /// Returns the message, with the chain of causes for converted errors.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns whether retrying can not help.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }
}

impl fmt::Debug for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowError")
            .field("message", &self.message)
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for FlowError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !message.ends_with(&cause_text) {
                message.push_str(": ");
                message.push_str(&cause_text);
            }
            source = cause.source();
        }
        Self::new(message)
    }
}

/// What a flow's execution function returns.
pub type FlowResult = Result<FlowOutput, FlowError>;

/// What an execution receives besides its context.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionParams {
    /// The payload the trigger produced.
    pub trigger: TriggerPayload,
}

/// What a trigger returns: the payload for the execution and, optionally, the HTTP response
/// the caller gets instead of the default one.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TriggerResult {
    /// The payload handed to the execution.
    pub payload: TriggerPayload,
    /// The response sent to the webhook caller, whether or not the flow is synchronous.
    pub response: Option<HttpResponse>,
    /// Set by a polling trigger that found nothing new: no execution starts, and the poll is
    /// recorded as one without changes.
    pub polled_no_changes: bool,
}

impl TriggerResult {
    /// Passes `payload` to the execution with the default response.
    pub fn new(payload: TriggerPayload) -> Self {
        Self {
            payload,
            response: None,
            polled_no_changes: false,
        }
    }

    /// Reports that a polling trigger found nothing new, so no execution starts.
    pub fn no_changes() -> Self {
        Self {
            polled_no_changes: true,
            ..Self::default()
        }
    }

    /// Sends `response` to the caller; the execution still runs.
    #[must_use]
    pub fn with_response(mut self, response: HttpResponse) -> Self {
        self.response = Some(response);
        self
    }
}

impl From<TriggerPayload> for TriggerResult {
    fn from(payload: TriggerPayload) -> Self {
        Self::new(payload)
    }
}

/// A trigger's rejection of a request: the caller gets `status` and `message`, nothing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerError {
    /// HTTP status sent to the caller.
    pub status: u16,
    /// Message sent to the caller in a JSON `error` field.
    pub message: String,
}

impl TriggerError {
    /// Rejects with any status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Rejects with 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// Rejects with 401 Unauthorized, as for a missing or invalid signature.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }

    /// Fails with 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl From<FlowError> for TriggerError {
    fn from(error: FlowError) -> Self {
        Self::internal(error.message)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("could not reach the ERP")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn question_mark_keeps_the_cause_chain() {
        let error = FlowError::from(Outer(std::io::Error::other("connection refused")));
        assert_eq!(error.message(), "could not reach the ERP: connection refused");
        assert!(!error.is_terminal());
    }

    #[test]
    fn terminal_error_is_marked() {
        assert!(FlowError::terminal("order has no lines").is_terminal());
    }

    #[test]
    fn json_value_converts_into_output() {
        let output: FlowOutput = json!({ "ok": true }).into();
        assert_eq!(output.data(), Some(&json!({ "ok": true })));
    }

    #[test]
    fn binary_response_round_trips_through_json() {
        let response = HttpResponse::new(200).body("image/png", vec![0x89, 0x50, 0xff]);
        let back: HttpResponse = serde_json::from_value(serde_json::to_value(&response).expect("serializes")).expect("deserializes");
        assert_eq!(back, response);
    }

    #[test]
    fn text_response_serializes_body_as_text() {
        let response = HttpResponse::new(201).header("X-Id", "7").body("text/plain", "created");
        let value = serde_json::to_value(&response).expect("serializes");
        assert_eq!(value["body"], json!("created"));
        assert_eq!(value["statusCode"], json!(201));
    }
}
