//! The stored text of a trigger payload, in a store's `payload` column.
//!
//! Most payloads are kept in their public JSON form, the one flows and the executions API see.
//! A webhook request with a JSON body that its flow receives as parsed, unchanged, is kept in
//! a compact form instead. The JSON form would hold the body twice, once parsed in `body.data`
//! and once as base64 in `rawBody.data`, about 3.5 KB for a 1.1 KB order event. The compact
//! form keeps the request's JSON text once, verbatim, and rebuilds both fields from it when
//! the payload is read:
//!
//! ```text
//! {"compact":1,"headers":null,"json":<the body as sent>,"lead":"<whitespace before it>","trail":"…","bom":true,"payload":{…}}
//! ```
//!
//! `lead`, `trail` and `bom` appear only when the body has them. `payload` is the public form
//! with `rawBody.data` empty and `body.data` null. Stores keep the text as they get it, so
//! both forms live side by side and nothing needs migrating. `"headers":null` makes a reader
//! that knows only the public form fail on a compact text, instead of reading it as an empty
//! payload: a binary from before the compact form, still serving a shared store, fails such
//! an execution with an error naming the stored payload.
//!
//! The public form writes an empty body and a JSON `null` body alike as `null`, and text,
//! base64 bytes and a JSON string alike as a string. Its reader tells them apart by the
//! content type alone, so a JSON `null` body reads back as empty and, for example, bytes sent
//! as `text/plain` read back as their base64 text. A payload whose body would not read back
//! unchanged, and that cannot be stored compact, is wrapped as
//! `{"compact":1,"headers":null,"bodyKind":"json","payload":{…}}` with `payload` in the public
//! form. `bodyKind` is `json`, `text` or `bytes`.

use flow_core::{BodyData, JsonBody, MediaKind, TriggerPayload};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The start of every compact payload text.
const COMPACT_PREFIX: &str = "{\"compact\":1,\"headers\":null,";

/// The UTF-8 byte order mark, which a raw body may start with.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whitespace that JSON allows around a value.
fn is_json_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Returns the stored text of `payload`.
///
/// `body_from_raw` means that `body` was parsed from `raw_body` by the webhook's default parser
/// and not changed since. Only then is the compact form used, because reading it parses the
/// body again from the raw bytes. The payload is borrowed mutably so that its body data can
/// be set aside while the rest serializes; it is whole again when this returns.
///
/// # Errors
///
/// Returns serde's error when the payload does not serialize.
pub(crate) fn encode(payload: &mut TriggerPayload, body_from_raw: bool) -> Result<String, serde_json::Error> {
    let json_media = MediaKind::of(payload.raw_body.content_type.as_deref()) == MediaKind::Json;
    let parsed_json = matches!(payload.body.data, BodyData::Json(_));
    if !(body_from_raw && json_media && parsed_json) {
        return encode_public(payload);
    }

    let raw = std::mem::take(&mut payload.raw_body.data);
    let Some(parts) = CompactParts::split(&raw) else {
        payload.raw_body.data = raw;
        return encode_public(payload);
    };
    let body = std::mem::take(&mut payload.body.data);
    let encoded = encode_compact(payload, &parts);
    payload.raw_body.data = raw;
    payload.body.data = body;
    encoded
}

/// Writes the public form of `payload`, wrapped with its body's kind when the body would not
/// read back unchanged from that form.
fn encode_public(payload: &TriggerPayload) -> Result<String, serde_json::Error> {
    if payload.body.reads_back_from_json() {
        return serde_json::to_string(payload);
    }
    let kind = match &payload.body.data {
        BodyData::Json(_) => "json",
        BodyData::Text(_) => "text",
        BodyData::Bytes(_) => "bytes",
        // An empty body always reads back, so this arm is not reached.
        BodyData::Empty => return serde_json::to_string(payload),
    };

    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(COMPACT_PREFIX.as_bytes());
    out.extend_from_slice(b"\"bodyKind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    finish_compact(out, payload)
}

/// Appends `payload` in the public form and the closing brace to a compact text whose other
/// fields `out` contains, and returns the text.
fn finish_compact(mut out: Vec<u8>, payload: &TriggerPayload) -> Result<String, serde_json::Error> {
    out.extend_from_slice(b",\"payload\":");
    serde_json::to_writer(&mut out, payload)?;
    out.push(b'}');
    // Every piece is UTF-8: the body text was checked by the parser, and serde writes UTF-8.
    String::from_utf8(out).map_err(serde::ser::Error::custom)
}

/// The raw body of a JSON request split around its JSON text.
struct CompactParts<'a> {
    bom: bool,
    lead: &'a str,
    json: &'a str,
    trail: &'a str,
}

impl<'a> CompactParts<'a> {
    /// Splits a raw body that is valid UTF-8 with a non-empty text in it.
    fn split(raw: &'a [u8]) -> Option<Self> {
        let bom = raw.starts_with(UTF8_BOM);
        let content = if bom { &raw[UTF8_BOM.len()..] } else { raw };
        let text = std::str::from_utf8(content).ok()?;
        let start = text.bytes().position(|byte| !is_json_whitespace(byte))?;
        let end = text.bytes().rposition(|byte| !is_json_whitespace(byte))? + 1;
        Some(Self {
            bom,
            lead: &text[..start],
            json: &text[start..end],
            trail: &text[end..],
        })
    }
}

/// Writes the compact form of `payload`, whose body data has been taken out.
fn encode_compact(payload: &TriggerPayload, parts: &CompactParts<'_>) -> Result<String, serde_json::Error> {
    // The JSON text was parsed into `body.data` already, so it is written as it is, unchecked.
    let mut out = Vec::with_capacity(parts.json.len() + 1024);
    out.extend_from_slice(COMPACT_PREFIX.as_bytes());
    out.extend_from_slice(b"\"json\":");
    out.extend_from_slice(parts.json.as_bytes());
    if parts.bom {
        out.extend_from_slice(b",\"bom\":true");
    }
    if !parts.lead.is_empty() {
        out.extend_from_slice(b",\"lead\":");
        serde_json::to_writer(&mut out, parts.lead)?;
    }
    if !parts.trail.is_empty() {
        out.extend_from_slice(b",\"trail\":");
        serde_json::to_writer(&mut out, parts.trail)?;
    }
    finish_compact(out, payload)
}

/// The compact form as read back.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compact<'a> {
    /// The body text; absent when `payload` contains the whole payload.
    #[serde(borrow, default, deserialize_with = "present_raw")]
    json: Option<&'a RawValue>,
    /// Kind of the body in `payload`, when the public form does not read it back unchanged.
    #[serde(default)]
    body_kind: Option<String>,
    #[serde(default)]
    bom: bool,
    #[serde(default)]
    lead: String,
    #[serde(default)]
    trail: String,
    payload: TriggerPayload,
}

/// Reads a present `json` field, `null` included, which a plain `Option` would read as absent.
fn present_raw<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Rebuilds body data of `kind` from its public JSON form, `value`.
fn body_of_kind(kind: Option<&str>, value: Value) -> Result<BodyData, String> {
    match (kind, value) {
        (Some("json"), value) => Ok(BodyData::Json(value.into())),
        (Some("text"), Value::String(text)) => Ok(BodyData::Text(text)),
        (Some("bytes"), Value::String(text)) => BASE64
            .decode(&text)
            .map(BodyData::Bytes)
            .map_err(|error| format!("stored payload's byte body is not base64: {error}")),
        (Some(kind), value) => Err(format!("stored payload has body kind {kind:?} with body data {value}")),
        (None, _) => Err("stored compact payload is unreadable: it has neither `json` nor `bodyKind`".to_owned()),
    }
}

/// Reads a stored payload text back into the payload it was made from.
///
/// # Errors
///
/// Returns a message naming what could not be read.
pub(crate) fn decode(text: &str) -> Result<TriggerPayload, String> {
    if !text.starts_with(COMPACT_PREFIX) {
        return super::json::from_stored(text).map_err(|error| format!("stored payload is unreadable: {error}"));
    }

    let compact: Compact<'_> =
        super::json::from_stored(text).map_err(|error| format!("stored compact payload is unreadable: {error}"))?;
    let Some(json) = compact.json.map(RawValue::get) else {
        let mut payload = compact.payload;
        payload.body.data = body_of_kind(compact.body_kind.as_deref(), payload.body.to_value())?;
        return Ok(payload);
    };
    // The body is checked here and parsed when the flow reads it, as when it arrived.
    let data = JsonBody::from_slice(json.as_bytes()).map_err(|error| format!("stored request body is unreadable: {error}"))?;

    let mut payload = compact.payload;
    let mut raw = Vec::with_capacity(UTF8_BOM.len() + compact.lead.len() + json.len() + compact.trail.len());
    if compact.bom {
        raw.extend_from_slice(UTF8_BOM);
    }
    raw.extend_from_slice(compact.lead.as_bytes());
    raw.extend_from_slice(json.as_bytes());
    raw.extend_from_slice(compact.trail.as_bytes());
    payload.raw_body.data = raw;
    payload.body.data = BodyData::Json(data);
    Ok(payload)
}

/// Returns a stored payload text in the public JSON form, as the executions API shows it.
///
/// # Errors
///
/// Returns a message naming what could not be read.
pub(crate) fn public_value(text: &str) -> Result<Value, String> {
    if text.starts_with(COMPACT_PREFIX) {
        return Ok(decode(text)?.to_value());
    }
    super::json::from_stored(text).map_err(|error| format!("stored payload is unreadable: {error}"))
}

#[cfg(test)]
mod tests {
    use flow_core::{Body, RawBody};
    use serde_json::json;

    use super::*;

    fn json_request(raw: &[u8]) -> TriggerPayload {
        let content = raw.strip_prefix(UTF8_BOM).unwrap_or(raw);
        TriggerPayload {
            headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
            raw_body: RawBody {
                data: raw.to_vec(),
                content_type: Some("application/json".to_owned()),
            },
            body: Body {
                data: BodyData::Json(JsonBody::from_slice(content).expect("valid JSON")),
                content_type: Some("application/json".to_owned()),
            },
            execution_id: "e1".to_owned(),
            ..TriggerPayload::default()
        }
    }

    #[test]
    fn json_request_is_stored_compact() {
        let mut payload = json_request(br#"{"order": 7}"#);

        let text = encode(&mut payload, true).expect("encodes");

        assert!(text.starts_with(COMPACT_PREFIX), "{text}");
    }

    #[test]
    fn compact_form_keeps_the_body_text_once() {
        let mut payload = json_request(br#"{"order": "a-rather-unique-order-number"}"#);

        let text = encode(&mut payload, true).expect("encodes");

        assert_eq!(text.matches("a-rather-unique-order-number").count(), 1, "{text}");
    }

    #[test]
    fn compact_form_reads_back_byte_for_byte() {
        let raw = "\u{feff} \n{\"total\": 12345678901234567890, \"note\": \"caf\\u00e9\"}\r\n\t".as_bytes();
        let mut payload = json_request(raw);

        let decoded = decode(&encode(&mut payload, true).expect("encodes")).expect("decodes");

        assert_eq!(decoded, payload);
    }

    #[test]
    fn json_null_body_reads_back_as_json() {
        let mut payload = TriggerPayload::from_json(Value::Null);

        let decoded = decode(&encode(&mut payload, false).expect("encodes")).expect("decodes");

        assert_eq!(decoded.body.data, BodyData::Json(Value::Null.into()));
    }

    #[test]
    fn json_null_body_payload_reads_back() {
        let mut payload = TriggerPayload::from_json(Value::Null);
        payload.headers.insert("x-request-id".to_owned(), "r-1".to_owned());

        let decoded = decode(&encode(&mut payload, false).expect("encodes")).expect("decodes");

        assert_eq!(decoded, payload);
    }

    #[test]
    fn json_null_body_public_form() {
        let mut payload = TriggerPayload::from_json(Value::Null);

        let public = public_value(&encode(&mut payload, false).expect("encodes")).expect("reads");

        assert_eq!(public, payload.to_value());
    }

    #[test]
    fn every_body_kind_reads_back() {
        let bodies = [
            (BodyData::Empty, None),
            (BodyData::Json(Value::Null.into()), Some("application/json")),
            (BodyData::Json(json!("hi").into()), Some("text/plain")),
            (BodyData::Json(json!("abcd").into()), None),
            (BodyData::Json(json!({ "a": [1, 2] }).into()), Some("application/json")),
            (BodyData::Text("abcd".to_owned()), None),
            (BodyData::Text("hi".to_owned()), Some("application/json")),
            (BodyData::Text("plain text".to_owned()), Some("text/plain")),
            (BodyData::Bytes(vec![233, 116, 233]), Some("text/plain")),
            (BodyData::Bytes(vec![0, 255]), Some("application/json")),
            (BodyData::Bytes(vec![0, 255]), None),
        ];

        for (data, content_type) in bodies {
            let mut payload = TriggerPayload {
                body: Body {
                    data,
                    content_type: content_type.map(str::to_owned),
                },
                ..TriggerPayload::default()
            };

            let decoded = decode(&encode(&mut payload, false).expect("encodes")).expect("decodes");

            assert_eq!(decoded, payload);
        }
    }

    #[test]
    fn wrapped_body_shows_the_public_form() {
        let mut payload = TriggerPayload {
            body: Body {
                data: BodyData::Bytes(vec![233, 116, 233]),
                content_type: Some("text/plain".to_owned()),
            },
            ..TriggerPayload::default()
        };

        let public = public_value(&encode(&mut payload, false).expect("encodes")).expect("reads");

        assert_eq!(public, payload.to_value());
    }

    #[test]
    fn empty_body_is_stored_in_the_public_form() {
        let mut payload = TriggerPayload::default();

        let text = encode(&mut payload, false).expect("encodes");

        assert!(!text.starts_with(COMPACT_PREFIX), "{text}");
    }

    #[test]
    fn compact_text_without_body_is_rejected() {
        let text = format!("{COMPACT_PREFIX}\"payload\":{}}}", TriggerPayload::default().to_value());

        let error = decode(&text).expect_err("rejected");

        assert!(error.contains("neither `json` nor `bodyKind`"), "{error}");
    }

    #[test]
    fn scalar_json_body_reads_back() {
        let mut payload = json_request(b"42\n");

        let decoded = decode(&encode(&mut payload, true).expect("encodes")).expect("decodes");

        assert_eq!(decoded, payload);
    }

    #[test]
    fn changed_body_is_stored_in_the_public_form() {
        let mut payload = json_request(br#"{"order": 7}"#);
        payload.body.data = BodyData::Json(json!({ "order": 8 }).into());

        let text = encode(&mut payload, false).expect("encodes");

        assert_eq!(decode(&text).expect("decodes").body.data, BodyData::Json(json!({ "order": 8 }).into()));
    }

    #[test]
    fn form_body_is_stored_in_the_public_form() {
        let mut payload = json_request(br#"{"a": 1}"#);
        payload.raw_body.content_type = Some("application/x-www-form-urlencoded".to_owned());

        let text = encode(&mut payload, true).expect("encodes");

        assert!(!text.starts_with(COMPACT_PREFIX), "{text}");
    }

    #[test]
    fn public_value_of_compact_form_equals_public_form() {
        let mut payload = json_request(br#"{"order": 7, "lines": [1, 2.5, null]}"#);

        let value = public_value(&encode(&mut payload, true).expect("encodes")).expect("reads");

        assert_eq!(value, payload.to_value());
    }

    /// Request bodies that the webhook parser accepts as JSON, with their edge cases.
    const JSON_BODIES: &[&[u8]] = &[
        b"null",
        b"-0",
        b"-0.0",
        b"12345678901234567890",
        b"18446744073709551617",
        b"-9223372036854775809",
        b"1.7976931348623157e308",
        b"5e-324",
        b"0.1000000000000000055511151231257827",
        b"2.2250738585072011e-308",
        b"\"a bare string\"",
        b"\"\\ud83d\\ude00 \\u2028 \\u0000 \\/\"",
        b"[]",
        b"{}",
        b"{\"a\":1,\"a\":2}",
        b"\t[1, 2.50, 3e2]\r\n",
        b"\xEF\xBB\xBF\"after a mark\"",
        "{\"caf\u{e9}\": \"\u{1F600}\"}".as_bytes(),
    ];

    #[test]
    fn compact_json_bodies_read_back_unchanged() {
        for raw in JSON_BODIES {
            let mut payload = json_request(raw);

            let decoded = decode(&encode(&mut payload, true).expect("encodes")).expect("decodes");

            assert_eq!(decoded, payload, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn compact_public_value_matches_public_form() {
        for raw in JSON_BODIES {
            let mut payload = json_request(raw);
            let public: Value = serde_json::from_str(&serde_json::to_string(&payload).expect("serializes")).expect("reads");

            let api_value = public_value(&encode(&mut payload, true).expect("encodes")).expect("reads");

            assert_eq!(api_value, public, "{}", String::from_utf8_lossy(raw));
        }
    }

    /// The webhook parser accepts 127 levels of nesting, and both stored forms nest the body
    /// deeper than that.
    #[test]
    fn deeply_nested_json_body_reads_back() {
        let raw = format!("{}{}", "[".repeat(127), "]".repeat(127));
        for compact in [true, false] {
            let mut payload = json_request(raw.as_bytes());

            let decoded = decode(&encode(&mut payload, compact).expect("encodes")).expect("decodes");

            assert_eq!(decoded, payload, "compact: {compact}");
        }
    }

    #[test]
    fn large_json_body_reads_back() {
        let raw = serde_json::to_vec(&json!({ "items": vec!["x".repeat(100); 50_000] })).expect("serializes");
        let mut payload = json_request(&raw);

        let decoded = decode(&encode(&mut payload, true).expect("encodes")).expect("decodes");

        assert_eq!(decoded, payload);
    }

    #[test]
    fn public_form_reader_rejects_the_compact_form() {
        let mut payload = json_request(br#"{"order": 7}"#);
        let text = encode(&mut payload, true).expect("encodes");

        let read = serde_json::from_str::<TriggerPayload>(&text);

        assert!(read.is_err(), "read as {read:?}");
    }

    #[test]
    fn public_form_text_reads_as_it_is() {
        let value = public_value(r#"{"body":{"data":{"id":"e1"}}}"#).expect("reads");

        assert_eq!(value, json!({ "body": { "data": { "id": "e1" } } }));
    }
}
