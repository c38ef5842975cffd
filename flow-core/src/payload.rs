//! The trigger payload: everything a flow receives about the request or tick that started it.
//!
//! It serializes to JSON with camelCase field names (`headers`, `queryParameters`, `rawBody`,
//! `body` with `data` and `contentType`, `pathFragment`, `webhookUrls`, ...), so a flow can hand
//! it on as it is. Byte data (the raw body, a body of an unknown media type) serializes as
//! standard base64 text.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::json_body::JsonBody;
use crate::media::MediaKind;

/// A query parameter's values: one string, or every value in order when the key repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// The key appeared once.
    Single(String),
    /// The key appeared several times; values in request order.
    Multiple(Vec<String>),
}

impl ParamValue {
    /// Returns the first value.
    pub fn first(&self) -> &str {
        match self {
            Self::Single(value) => value,
            Self::Multiple(values) => values.first().map_or("", String::as_str),
        }
    }

    /// Returns every value in order.
    pub fn all(&self) -> Vec<&str> {
        match self {
            Self::Single(value) => vec![value.as_str()],
            Self::Multiple(values) => values.iter().map(String::as_str).collect(),
        }
    }

    /// Appends a value, turning a single value into a list.
    pub fn push(&mut self, value: String) {
        match self {
            Self::Single(first) => *self = Self::Multiple(vec![std::mem::take(first), value]),
            Self::Multiple(values) => values.push(value),
        }
    }
}

/// The parsed request body.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum BodyData {
    /// No body; serializes as `null`.
    #[default]
    Empty,
    /// JSON, or a form or multipart body turned into a JSON object. A JSON request body keeps
    /// its text and is parsed into a value only when read as one. See [`JsonBody`].
    Json(JsonBody),
    /// A `text/*` body.
    Text(String),
    /// A body of any other media type.
    Bytes(Vec<u8>),
}

/// The request body after parsing, with its media type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    /// The parsed data.
    pub data: BodyData,
    /// The request's `Content-Type`, as sent.
    pub content_type: Option<String>,
}

/// Why a body could not be read as the requested type.
#[derive(Debug)]
pub struct BodyError(String);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

impl Body {
    /// Creates a JSON body.
    pub fn json_value(value: Value) -> Self {
        Self {
            data: BodyData::Json(value.into()),
            content_type: Some("application/json".to_owned()),
        }
    }

    /// Deserializes the body into `T`.
    ///
    /// JSON bodies deserialize directly; text and byte bodies are parsed as JSON text.
    ///
    /// # Errors
    ///
    /// Returns a [`BodyError`] with serde's reason when the data does not fit `T`, or when the
    /// body is empty.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, BodyError> {
        let result = match &self.data {
            BodyData::Json(json) => json.deserialize::<T>().map_err(|error| error.to_string()),
            BodyData::Text(text) => serde_json::from_str(text).map_err(|error| error.to_string()),
            BodyData::Bytes(bytes) => serde_json::from_slice(bytes).map_err(|error| error.to_string()),
            BodyData::Empty => Err("the body is empty".to_owned()),
        };
        result.map_err(|reason| BodyError(format!("invalid request body for {}: {reason}", std::any::type_name::<T>())))
    }

    /// Returns the body as JSON: `null` when empty, a string for text and base64 for bytes.
    pub fn to_value(&self) -> Value {
        match &self.data {
            BodyData::Empty => Value::Null,
            BodyData::Json(json) => json.value().clone(),
            BodyData::Text(text) => Value::String(text.clone()),
            BodyData::Bytes(bytes) => Value::String(BASE64.encode(bytes)),
        }
    }

    /// Returns whether this body deserializes back unchanged from its serialized form. That
    /// form writes text, base64 bytes and a JSON string alike as a string, and an empty body
    /// and JSON `null` alike as `null`. The reader tells them apart by the content type only.
    pub fn reads_back_from_json(&self) -> bool {
        let media = MediaKind::of(self.content_type.as_deref());
        match (&self.data, media) {
            (BodyData::Empty, _) => true,
            (BodyData::Json(json), media) => match (json.value(), media) {
                (Value::Null, _) | (Value::String(_), MediaKind::Text) => false,
                (Value::String(text), MediaKind::Bytes) => BASE64.decode(text).is_err(),
                _ => true,
            },
            (BodyData::Text(_), media) => media == MediaKind::Text,
            (BodyData::Bytes(_), media) => media == MediaKind::Bytes,
        }
    }

    /// Returns the text of a text body, or of a byte body that is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        match &self.data {
            BodyData::Text(text) => Some(text),
            BodyData::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            BodyData::Empty | BodyData::Json(_) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyRepr {
    data: Value,
    #[serde(default)]
    content_type: Option<String>,
}

/// The serialized form of [`Body`], borrowing its fields. It writes the shape that
/// [`BodyRepr`] reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BodyReprRef<'a> {
    data: BodyDataRef<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
}

/// Serializes body data as [`Body::to_value`] returns it, without copying a JSON value.
struct BodyDataRef<'a>(&'a BodyData);

impl Serialize for BodyDataRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            BodyData::Empty => serializer.serialize_unit(),
            BodyData::Json(json) => json.serialize(serializer),
            BodyData::Text(text) => serializer.serialize_str(text),
            BodyData::Bytes(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
        }
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BodyReprRef {
            data: BodyDataRef(&self.data),
            content_type: self.content_type.as_deref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Body {
    /// Reads the shape [`Serialize`] writes; the content type tells text and base64 bytes apart.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = BodyRepr::deserialize(deserializer)?;
        let data = match (repr.data, MediaKind::of(repr.content_type.as_deref())) {
            (Value::Null, _) => BodyData::Empty,
            (Value::String(text), MediaKind::Text) => BodyData::Text(text),
            (Value::String(text), MediaKind::Bytes) => match BASE64.decode(&text) {
                Ok(bytes) => BodyData::Bytes(bytes),
                Err(_) => BodyData::Json(Value::String(text).into()),
            },
            (value, _) => BodyData::Json(value.into()),
        };
        Ok(Self {
            data,
            content_type: repr.content_type,
        })
    }
}

/// Writes an instant as chrono's own `Serialize` does (RFC 3339 in UTC with `Z`, and 0, 3, 6
/// or 9 digits of fractional seconds), formatted into one string first. Serializing through
/// chrono's `Display` makes serde_json escape each piece of the text separately.
fn serialize_instant<S: Serializer>(instant: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match instant {
        Some(instant) => serializer.serialize_str(&instant.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => serializer.serialize_none(),
    }
}

/// The request body exactly as received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawBody {
    /// The bytes, unchanged (a byte order mark included).
    pub data: Vec<u8>,
    /// The request's `Content-Type`, as sent.
    pub content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBodyRepr {
    data: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// The serialized form of [`RawBody`], borrowing its content type. It writes the shape that
/// [`RawBodyRepr`] reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RawBodyReprRef<'a> {
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
}

impl Serialize for RawBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawBodyReprRef {
            data: BASE64.encode(&self.data),
            content_type: self.content_type.as_deref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = RawBodyRepr::deserialize(deserializer)?;
        let data = BASE64.decode(repr.data.as_bytes()).map_err(serde::de::Error::custom)?;
        Ok(Self {
            data,
            content_type: repr.content_type,
        })
    }
}

/// The customer an instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Identifier in this runtime.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Identifier in the customer's own systems.
    pub external_id: Option<String>,
}

/// The instance that received the trigger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRef {
    /// Instance id, as in the webhook URL.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// The customer's user on whose behalf the trigger ran, when known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Identifier in this runtime.
    pub id: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Identifier in the customer's own systems.
    pub external_id: Option<String>,
}

/// The integration the flow belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRef {
    /// Identifier (the crate name unless the integration sets one).
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Version of the integration binary.
    pub version: Option<String>,
}

/// The flow that the trigger belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRef {
    /// Stable key.
    pub stable_key: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// Everything a trigger and an execution receive about the request or tick that started them.
///
/// Header names are lowercase; a header sent several times has its values joined with `", "`.
/// A query parameter sent once is a string, one sent several times a list of every value in
/// order ([`ParamValue`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TriggerPayload {
    /// Request headers by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// Query parameters by name.
    pub query_parameters: BTreeMap<String, ParamValue>,
    /// The body as received.
    pub raw_body: RawBody,
    /// The body parsed by its media type.
    pub body: Body,
    /// The part of the URL path after the flow's webhook URL, as sent (empty when none).
    pub path_fragment: String,
    /// Webhook URLs of the instance's flows, keyed by flow name.
    pub webhook_urls: BTreeMap<String, String>,
    /// API keys of the instance's flows, keyed by flow name.
    pub webhook_api_keys: BTreeMap<String, Vec<String>>,
    /// URL that invokes this flow.
    pub invoke_url: String,
    /// Id of the execution this trigger starts.
    pub execution_id: String,
    /// The instance's customer.
    pub customer: Customer,
    /// The instance.
    pub instance: InstanceRef,
    /// The customer's user, when known.
    pub user: User,
    /// The integration.
    pub integration: IntegrationRef,
    /// The flow.
    pub flow: FlowRef,
    /// When the trigger started.
    #[serde(serialize_with = "serialize_instant")]
    pub started_at: Option<DateTime<Utc>>,
}

impl TriggerPayload {
    /// Creates a payload whose body is the given JSON value.
    pub fn from_json(value: Value) -> Self {
        let raw = serde_json::to_vec(&value).unwrap_or_default();
        Self {
            raw_body: RawBody {
                data: raw,
                content_type: Some("application/json".to_owned()),
            },
            body: Body::json_value(value),
            ..Self::default()
        }
    }

    /// Returns a header by name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Returns the payload as JSON, with the field names of its serialized form.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Returns the JSON that [`FieldPath`](crate::FieldPath)s resolve against: the serialized
    /// payload with `body` standing for the parsed request body itself. For a JSON request
    /// `{"data":{"requestId":"r1"}}`, `body.data.requestId` is `"r1"`.
    pub fn field_source(&self) -> Value {
        let mut value = self.to_value();
        if let Some(object) = value.as_object_mut() {
            object.insert("body".to_owned(), self.body.to_value());
            object.remove("rawBody");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn started_at_is_written_as_chrono_writes_it() {
        for nanos in [0, 5_000_000, 718_155_000, 718_155_950, 999_999_999] {
            let instant = Utc.with_ymd_and_hms(2026, 12, 5, 11, 30, 46).single().expect("valid") + chrono::Duration::nanoseconds(nanos);
            let payload = TriggerPayload {
                started_at: Some(instant),
                ..TriggerPayload::default()
            };
            let written = serde_json::to_value(&payload).expect("serializes")["startedAt"].clone();
            assert_eq!(written, serde_json::to_value(instant).expect("serializes"), "{nanos} ns");
        }
    }

    fn body(data: BodyData, content_type: Option<&str>) -> Body {
        Body {
            data,
            content_type: content_type.map(str::to_owned),
        }
    }

    #[test]
    fn reads_back_from_json_matches_a_round_trip() {
        let bodies = [
            body(BodyData::Empty, None),
            body(BodyData::Empty, Some("application/json")),
            body(BodyData::Json(Value::Null.into()), Some("application/json")),
            body(BodyData::Json(json!({ "a": 1 }).into()), Some("application/json")),
            body(BodyData::Json(json!("hi").into()), Some("application/json")),
            body(BodyData::Json(json!("hi").into()), Some("text/plain")),
            body(BodyData::Json(json!("abcd").into()), None),
            body(BodyData::Json(json!("not base64!").into()), None),
            body(BodyData::Json(json!([1, 2]).into()), Some("text/plain")),
            body(BodyData::Text("abcd".to_owned()), Some("text/plain")),
            body(BodyData::Text("abcd".to_owned()), None),
            body(BodyData::Text("not base64!".to_owned()), None),
            body(BodyData::Text("hi".to_owned()), Some("application/json")),
            body(BodyData::Bytes(vec![233, 116, 233]), None),
            body(BodyData::Bytes(vec![233, 116, 233]), Some("text/plain")),
            body(BodyData::Bytes(vec![1, 2]), Some("application/json")),
            body(BodyData::Json(json!({ "field": ["a", "b"] }).into()), Some("application/x-www-form-urlencoded")),
        ];

        for original in bodies {
            let read_back: Body = serde_json::from_value(serde_json::to_value(&original).expect("serializes")).expect("reads");

            assert_eq!(original.reads_back_from_json(), read_back == original, "{original:?} read back as {read_back:?}");
        }
    }

    #[test]
    fn payload_serializes_with_camel_case_names() {
        let payload = TriggerPayload::from_json(json!({ "a": 1 }));
        let value = payload.to_value();
        for key in ["headers", "queryParameters", "rawBody", "body", "pathFragment", "webhookUrls", "webhookApiKeys", "invokeUrl", "executionId", "customer", "instance", "user", "integration", "flow", "startedAt"] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
        assert_eq!(value["body"]["data"], json!({ "a": 1 }));
        assert_eq!(value["body"]["contentType"], json!("application/json"));
    }

    #[test]
    fn field_source_reads_body_as_the_parsed_request() {
        let payload = TriggerPayload::from_json(json!({ "data": { "requestId": "req-42" } }));
        let path = crate::FieldPath::parse("body.data.requestId").expect("valid path");
        assert_eq!(path.resolve_id(&payload.field_source()).as_deref(), Some("req-42"));
    }

    #[test]
    fn bytes_body_round_trips_through_json() {
        let body = Body {
            data: BodyData::Bytes(vec![0, 159, 255]),
            content_type: Some("application/octet-stream".into()),
        };
        let text = serde_json::to_string(&body).expect("serializes");
        let back: Body = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back, body);
    }

    #[test]
    fn text_body_round_trips_through_json() {
        let body = Body {
            data: BodyData::Text("a,b\n1,2".into()),
            content_type: Some("text/csv".into()),
        };
        let back: Body = serde_json::from_value(serde_json::to_value(&body).expect("serializes")).expect("deserializes");
        assert_eq!(back, body);
    }

    #[test]
    fn body_serializes_each_kind_of_data() {
        let cases = [
            (BodyData::Empty, None, r#"{"data":null}"#),
            (BodyData::Json(json!({ "b": [1], "a": "x" }).into()), Some("application/json"), r#"{"data":{"a":"x","b":[1]},"contentType":"application/json"}"#),
            (BodyData::Text("a\"b".into()), Some("text/plain"), r#"{"data":"a\"b","contentType":"text/plain"}"#),
            (BodyData::Bytes(vec![0, 159, 255]), None, r#"{"data":"AJ//"}"#),
        ];
        for (data, content_type, expected) in cases {
            let body = Body {
                data,
                content_type: content_type.map(str::to_owned),
            };
            assert_eq!(serde_json::to_string(&body).expect("serializes"), expected);
        }
    }

    #[test]
    fn raw_body_serializes_as_base64() {
        let mut raw = RawBody {
            data: b"{}".to_vec(),
            content_type: Some("application/json".into()),
        };
        assert_eq!(serde_json::to_string(&raw).expect("serializes"), r#"{"data":"e30=","contentType":"application/json"}"#);
        raw.content_type = None;
        assert_eq!(serde_json::to_string(&raw).expect("serializes"), r#"{"data":"e30="}"#);
    }

    #[test]
    fn empty_body_serializes_as_null() {
        let body = Body {
            data: BodyData::Empty,
            content_type: Some("application/json".into()),
        };
        assert_eq!(serde_json::to_value(&body).expect("serializes")["data"], Value::Null);
    }

    #[test]
    fn raw_body_round_trips_bytes_exactly() {
        let raw = RawBody {
            data: b"\xEF\xBB\xBF{\"a\":1}".to_vec(),
            content_type: Some("application/json".into()),
        };
        let back: RawBody = serde_json::from_value(serde_json::to_value(&raw).expect("serializes")).expect("deserializes");
        assert_eq!(back, raw);
    }

    #[test]
    fn large_integers_survive_a_round_trip() {
        let payload = TriggerPayload::from_json(json!({ "id": 9_007_199_254_740_993_u64 }));
        let back: TriggerPayload = serde_json::from_str(&serde_json::to_string(&payload).expect("serializes")).expect("deserializes");
        assert_eq!(back.body.to_value()["id"], json!(9_007_199_254_740_993_u64));
    }

    #[test]
    fn json_reads_a_typed_body() {
        #[derive(Deserialize)]
        struct Order {
            id: u32,
        }
        let body = Body::json_value(json!({ "id": 7 }));
        assert_eq!(body.json::<Order>().expect("fits").id, 7);
    }

    #[test]
    fn json_error_names_the_type_and_reason() {
        let body = Body::json_value(json!({ "id": "x" }));
        let error = body.json::<u32>().expect_err("does not fit");
        assert!(error.to_string().starts_with("invalid request body for u32: "), "{error}");
    }

    #[test]
    fn repeated_parameter_becomes_a_list() {
        let mut value = ParamValue::Single("a".into());
        value.push("b".into());
        assert_eq!(value, ParamValue::Multiple(vec!["a".into(), "b".into()]));
        assert_eq!(value.first(), "a");
    }
}
