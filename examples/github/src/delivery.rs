//! Parts common to every GitHub webhook delivery: the signature and event headers, the body in
//! either content type GitHub offers, and the repository and account objects that events share.

use flow_runtime::prelude::*;
use flow_runtime::signature::verify_github_payload;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Config variable with the secret entered in the GitHub webhook settings.
pub(crate) const SECRET_VAR: &str = "GitHub Webhook Secret";

/// Header that names the event of a delivery, such as `push`.
const EVENT_HEADER: &str = "x-github-event";
/// Header with the delivery's GUID, which GitHub keeps when it redelivers.
const DELIVERY_HEADER: &str = "x-github-delivery";

/// Event GitHub sends once when a webhook is created, to test the URL.
pub(crate) const PING_EVENT: &str = "ping";

/// Verifies a delivery for a flow that handles `expected` events, and returns a pong response to
/// pings.
///
/// The signature is checked first, so an unsigned request learns nothing about the event
/// check. The server parses the body before any trigger runs, so a body that is not valid JSON
/// or form data gets the parser's 400, signed or not. A `ping` gets
/// `{"pong": true, "executionId": ...}` at once, and its execution still runs and records the
/// webhook.
///
/// # Errors
///
/// - 401 when `X-Hub-Signature-256` is missing, malformed or does not match the raw body.
/// - 400 when `X-GitHub-Event` is missing or names an event other than `expected` or `ping`.
/// - 500 when the instance has no secret, which startup prevents because the variable is
///   required.
pub(crate) fn accept(
    ctx: &TriggerContext,
    payload: TriggerPayload,
    expected: &str,
) -> Result<TriggerResult, TriggerError> {
    let secret = ctx
        .config_var(SECRET_VAR)
        .map_err(|error| TriggerError::internal(error.to_string()))?;
    verify_github_payload(&secret, &payload)?;

    let Some(event) = event_name(&payload) else {
        return Err(TriggerError::bad_request(
            "the request has no `X-GitHub-Event` header; GitHub sends it with every delivery",
        ));
    };
    if event == PING_EVENT {
        let pong = json!({ "pong": true, "executionId": payload.execution_id });
        return Ok(TriggerResult::new(payload).with_response(HttpResponse::json(200, &pong)));
    }
    if event != expected {
        return Err(TriggerError::bad_request(format!(
            "this URL receives `{expected}` events, but the delivery is a `{event}` event; \
             in the GitHub webhook settings, select only the `{expected}` event for this URL"
        )));
    }
    Ok(TriggerResult::new(payload))
}

/// Returns the value of the `X-GitHub-Event` header.
pub(crate) fn event_name(payload: &TriggerPayload) -> Option<&str> {
    payload.header(EVENT_HEADER)
}

/// Returns the value of the `X-GitHub-Delivery` header.
pub(crate) fn delivery_id(payload: &TriggerPayload) -> Option<String> {
    payload.header(DELIVERY_HEADER).map(str::to_owned)
}

/// Deserializes the event from the body.
///
/// GitHub sends either `application/json` or, when the webhook's content type is set to
/// `application/x-www-form-urlencoded`, a form whose `payload` field contains the same JSON text.
///
/// # Errors
///
/// Returns a terminal error naming the problem when the body is not the event's JSON, because
/// running the flow again would not change the body.
pub(crate) fn parse_event<T: DeserializeOwned>(body: &Body) -> Result<T, FlowError> {
    let is_form = body
        .content_type
        .as_deref()
        .and_then(|content_type| content_type.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return body
            .json()
            .map_err(|error| FlowError::terminal(error.to_string()));
    }

    let form = body.to_value();
    let Some(text) = form.get("payload").and_then(Value::as_str) else {
        return Err(FlowError::terminal(
            "the form-encoded delivery has no `payload` field with the event JSON",
        ));
    };
    serde_json::from_str(text).map_err(|error| {
        FlowError::terminal(format!(
            "the `payload` field of the form-encoded delivery is not a valid {}: {error}",
            std::any::type_name::<T>()
        ))
    })
}

/// The repository an event happened in.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Repository {
    /// `owner/name`, such as `Codertocat/Hello-World`.
    pub(crate) full_name: String,
}

/// A GitHub user or organization.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    /// Username.
    pub(crate) login: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Numbered {
        number: u64,
    }

    #[test]
    fn json_body_is_parsed() {
        let body = Body::json_value(json!({ "number": 7 }));

        let parsed: Numbered = parse_event(&body).expect("valid event");

        assert_eq!(parsed.number, 7);
    }

    #[test]
    fn form_body_is_parsed_from_its_payload_field() {
        let body = Body {
            data: BodyData::Json(json!({ "payload": "{\"number\":7}" }).into()),
            content_type: Some("application/x-www-form-urlencoded".to_owned()),
        };

        let parsed: Numbered = parse_event(&body).expect("valid event");

        assert_eq!(parsed.number, 7);
    }

    #[test]
    fn form_without_payload_fails_terminally() {
        let body = Body {
            data: BodyData::Json(json!({ "number": "7" }).into()),
            content_type: Some("application/x-www-form-urlencoded".to_owned()),
        };

        let error = parse_event::<Numbered>(&body).expect_err("no payload field");

        assert!(error.is_terminal());
        assert!(error.message().contains("`payload`"), "{error}");
    }

    #[test]
    fn body_of_other_shape_fails_terminally() {
        let body = Body::json_value(json!({ "zen": "Design for failure." }));

        let error = parse_event::<Numbered>(&body).expect_err("no number");

        assert!(error.is_terminal());
    }
}
