//! Turns the parts of an HTTP request into the pieces of a trigger payload: the header map, the
//! query parameters and the body parsed by its media type.
//!
//! Nothing here limits sizes, so the caller bounds the body before it calls [`parse_body`].

use std::collections::BTreeMap;
use std::convert::Infallible;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use flow_core::{BodyData, JsonBody, MediaKind, ParamValue};
use serde_json::{Map, Value};

/// The UTF-8 encoding of U+FEFF, which some clients put before JSON, form or text bodies.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Failure to parse a request body as the media type in its `Content-Type`.
///
/// Each message names what failed and what the sender can change, so it can be returned as the
/// text of a 400 response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyParseError {
    /// The body is not valid JSON, or not valid UTF-8, under a JSON media type.
    #[error("invalid JSON body: {reason}; send valid JSON or change the Content-Type")]
    InvalidJson {
        /// serde_json's error, with the line and column where parsing stopped.
        reason: serde_json::Error,
    },
    /// The `Content-Type` has no usable boundary, or the parts are not well-formed.
    #[error(
        "invalid multipart body: {reason}; send multipart/form-data with a `boundary` parameter \
         and parts closed by that boundary, or change the Content-Type"
    )]
    InvalidMultipart {
        /// The multipart parser's reason for rejecting the body.
        reason: String,
    },
    /// A form or multipart body has more fields than [`MAX_FORM_FIELDS`].
    #[error(
        "the {media} body has more than {MAX_FORM_FIELDS} fields; send fewer fields, or send the data as JSON or \
         with another Content-Type, which keeps the body as sent"
    )]
    TooManyFields {
        /// `form` or `multipart`.
        media: &'static str,
    },
}

/// Maximum number of fields in a form or multipart body.
///
/// Each field becomes a JSON value of its own, which takes many times the bytes that the field
/// took in the body. A 10 MiB form of 5,000,000 one-letter fields took about 500 MB of memory
/// to parse without a limit.
pub(crate) const MAX_FORM_FIELDS: usize = 10_000;

/// Builds the payload's header map from request headers.
///
/// Names are lowercase. A header sent several times has its values joined with `", "` in the
/// order received, except `cookie`, whose values are joined with `"; "`. HTTP/2 clients may
/// split `cookie` into several fields, and RFC 7540 section 8.1.2.5 rejoins them with `"; "`.
/// Names in `excluded` are left out, compared without regard to case, so a credential such as
/// `api-key` stays out of the payload. A value that is not valid UTF-8 is decoded lossily, so
/// each invalid sequence becomes U+FFFD.
pub(crate) fn header_map(headers: &::http::HeaderMap, excluded: &[&str]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for name in headers.keys() {
        if excluded.iter().any(|excluded| excluded.eq_ignore_ascii_case(name.as_str())) {
            continue;
        }

        let separator = if name == ::http::header::COOKIE { "; " } else { ", " };
        let mut joined = String::new();
        for (index, value) in headers.get_all(name).iter().enumerate() {
            if index > 0 {
                joined.push_str(separator);
            }
            joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        map.insert(name.as_str().to_owned(), joined);
    }
    map
}

/// Parses a URL query string, without its leading `?`, into the payload's query parameters.
///
/// Keys and values are percent-decoded and `+` is a space. A key sent once is
/// [`ParamValue::Single`], a repeated key keeps every value in order as
/// [`ParamValue::Multiple`], and a key without `=` has the value `""`. Bytes that are not valid
/// UTF-8 after percent-decoding are decoded lossily: each invalid sequence becomes U+FFFD.
pub(crate) fn query_parameters(query: Option<&str>) -> BTreeMap<String, ParamValue> {
    let mut parameters: BTreeMap<String, ParamValue> = BTreeMap::new();
    let Some(query) = query else {
        return parameters;
    };

    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match parameters.get_mut(key.as_ref()) {
            Some(existing) => existing.push(value.into_owned()),
            None => {
                parameters.insert(key.into_owned(), ParamValue::Single(value.into_owned()));
            }
        }
    }
    parameters
}

/// Parses a request body by the media type of its `Content-Type`.
///
/// A leading UTF-8 byte order mark is skipped before JSON, form, multipart and text bodies are
/// parsed. `bytes` itself is not changed, so the raw body keeps the mark. A body with no bytes
/// left after that is [`BodyData::Empty`] for every media type, so an empty body sent as JSON
/// is accepted.
///
/// - JSON (`application/json` and every `+json` type) becomes [`BodyData::Json`], checked here
///   and parsed when the flow reads it (see [`JsonBody`]). Integers within the `i64` or `u64`
///   range keep their exact values. NOTE: a larger integer read as a value becomes an `f64`
///   and loses precision, because serde_json's `arbitrary_precision` feature is off. A flow's
///   own type can read it from the text exactly, for example as a `u128`.
/// - `application/x-www-form-urlencoded` becomes a JSON object of strings, decoded as
///   [`query_parameters`] decodes a query. A repeated key becomes an array of its values in
///   order.
/// - `multipart/form-data` becomes a JSON object. A text field is a string, decoded lossily
///   when it is not valid UTF-8. A file is an object with `filename`, `contentType` (the part's
///   `Content-Type` as sent, or `null`), `data` (standard base64) and `size` (in bytes). A
///   repeated field name becomes an array in order.
/// - `text/*` becomes [`BodyData::Text`]. A byte order mark picks the encoding. Without one,
///   the body is decoded in the encoding its `charset` parameter names (UTF-8 by default), as
///   the WHATWG Encoding Standard reads the label, so `iso-8859-1` is read as `windows-1252`.
///   A body that is not valid in that encoding becomes [`BodyData::Bytes`] with every byte of
///   `bytes`.
/// - Any other media type, and a missing `Content-Type`, becomes [`BodyData::Bytes`] with every
///   byte of `bytes`, a byte order mark included.
///
/// # Errors
///
/// Returns [`BodyParseError::InvalidJson`] when a JSON body is malformed or not valid UTF-8,
/// and [`BodyParseError::InvalidMultipart`] when a multipart `Content-Type` has no boundary or
/// the parts are malformed.
pub(crate) async fn parse_body(content_type: Option<&str>, bytes: &Bytes) -> Result<BodyData, BodyParseError> {
    let kind = MediaKind::of(content_type);
    if kind == MediaKind::Bytes {
        return Ok(if bytes.is_empty() {
            BodyData::Empty
        } else {
            BodyData::Bytes(bytes.to_vec())
        });
    }

    let content = bytes.slice(bom_length(bytes)..);
    if content.is_empty() {
        return Ok(BodyData::Empty);
    }

    match kind {
        MediaKind::Json => {
            let json = JsonBody::from_slice(&content).map_err(|reason| BodyParseError::InvalidJson { reason })?;
            Ok(BodyData::Json(json))
        }
        MediaKind::Form => form_object(&content).map(|object| BodyData::Json(object.into())),
        // `kind` is Multipart only when `content_type` is present.
        MediaKind::Multipart => multipart_object(content_type.unwrap_or_default(), content)
            .await
            .map(|object| BodyData::Json(object.into())),
        MediaKind::Text => Ok(text_body(content_type, bytes)),
        MediaKind::Bytes => unreachable!("byte bodies return before the byte order mark is skipped"),
    }
}

/// Decodes a `text/*` body into [`BodyData::Text`] as the Encoding Standard's `decode` does:
/// a UTF-8 or UTF-16 byte order mark picks the encoding and is dropped. Without one, the
/// encoding is the one its `charset` parameter names, or UTF-8 when it names none or one that
/// the standard does not know. A body that is not valid in that encoding becomes
/// [`BodyData::Bytes`] with every byte of `bytes`.
fn text_body(content_type: Option<&str>, bytes: &Bytes) -> BodyData {
    let (encoding, mark) = encoding_rs::Encoding::for_bom(bytes).unwrap_or_else(|| {
        let named = content_type.and_then(|value| value.parse::<mime::Mime>().ok()).and_then(|media| {
            let label = media.get_param(mime::CHARSET)?;
            encoding_rs::Encoding::for_label(label.as_str().as_bytes())
        });
        (named.unwrap_or(encoding_rs::UTF_8), 0)
    });

    match encoding.decode_without_bom_handling_and_without_replacement(&bytes[mark..]) {
        Some(text) => BodyData::Text(text.into_owned()),
        None => BodyData::Bytes(bytes.to_vec()),
    }
}

/// Returns the length of the UTF-8 byte order mark at the start of `bytes`, or 0 when there is none.
fn bom_length(bytes: &[u8]) -> usize {
    if bytes.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 }
}

/// Decodes an `application/x-www-form-urlencoded` body into a JSON object of strings.
fn form_object(content: &[u8]) -> Result<Value, BodyParseError> {
    let mut object = Map::new();
    for (index, (key, value)) in form_urlencoded::parse(content).enumerate() {
        if index == MAX_FORM_FIELDS {
            return Err(BodyParseError::TooManyFields { media: "form" });
        }
        insert_field(&mut object, key.into_owned(), Value::String(value.into_owned()));
    }
    Ok(Value::Object(object))
}

/// Reads every part of a `multipart/form-data` body into a JSON object keyed by field name.
async fn multipart_object(content_type: &str, content: Bytes) -> Result<Value, BodyParseError> {
    let boundary = multer::parse_boundary(content_type).map_err(multipart_error)?;
    let stream = futures::stream::once(async move { Ok::<Bytes, Infallible>(content) });
    let mut multipart = multer::Multipart::new(stream, boundary);

    let mut object = Map::new();
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.index() == MAX_FORM_FIELDS {
            return Err(BodyParseError::TooManyFields { media: "multipart" });
        }
        let Some(name) = field.name().map(str::to_owned) else {
            return Err(BodyParseError::InvalidMultipart {
                reason: format!("part {} has no `name` in its Content-Disposition header", field.index() + 1),
            });
        };

        let value = match field.file_name().map(str::to_owned) {
            Some(filename) => {
                let content_type = field
                    .headers()
                    .get(::http::header::CONTENT_TYPE)
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
                let data = field.bytes().await.map_err(multipart_error)?;
                serde_json::json!({
                    "filename": filename,
                    "contentType": content_type,
                    "data": BASE64.encode(&data),
                    "size": data.len(),
                })
            }
            None => {
                let data = field.bytes().await.map_err(multipart_error)?;
                Value::String(String::from_utf8_lossy(&data).into_owned())
            }
        };
        insert_field(&mut object, name, value);
    }
    Ok(Value::Object(object))
}

/// Converts a multer error into [`BodyParseError::InvalidMultipart`], keeping the cause that
/// multer's own message leaves out (the header parser's reason, for example).
fn multipart_error(error: multer::Error) -> BodyParseError {
    let reason = match std::error::Error::source(&error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    };
    BodyParseError::InvalidMultipart { reason }
}

/// Inserts a form or multipart field, turning a repeated name into an array of values in order.
///
/// A field's own value is a string or a file object, never an array, so an array already under
/// `name` is the list of earlier values.
fn insert_field(object: &mut Map<String, Value>, name: String, value: Value) {
    match object.get_mut(&name) {
        Some(Value::Array(values)) => values.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            object.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use ::http::header::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;

    /// A form body with plus signs, an encoded plus, a repeated key, an empty value and a key
    /// without `=`.
    const FORM_CASE: &[u8] = b"message=hello+world&expr=This+%2B+is+a+plus&tag=a&tag=b&empty=&flag";

    /// A multipart body with two `tag` fields and one file whose bytes are not valid UTF-8.
    const MULTIPART_BODY: &[u8] = b"--XyZ\r\n\
        Content-Disposition: form-data; name=\"tag\"\r\n\r\n\
        a\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"tag\"\r\n\r\n\
        b\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"upload\"; filename=\"data.bin\"\r\n\
        Content-Type: application/octet-stream\r\n\r\n\
        \x00\x9f\xff\r\n\
        --XyZ--\r\n";

    async fn parse(content_type: Option<&str>, body: &[u8]) -> Result<BodyData, BodyParseError> {
        parse_body(content_type, &Bytes::copy_from_slice(body)).await
    }

    /// Returns a form body of `count` fields named `f`.
    fn form_of(count: usize) -> Vec<u8> {
        vec!["f=1"; count].join("&").into_bytes()
    }

    /// Returns a multipart body of `count` text fields named `f`, with the boundary `XyZ`.
    fn multipart_of(count: usize) -> Vec<u8> {
        let part = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n1\r\n";
        format!("{}--XyZ--\r\n", part.repeat(count)).into_bytes()
    }

    #[tokio::test]
    async fn form_at_field_limit_is_parsed() {
        let parsed = parse(Some("application/x-www-form-urlencoded"), &form_of(MAX_FORM_FIELDS)).await;

        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[tokio::test]
    async fn form_over_field_limit_is_rejected() {
        let error = parse(Some("application/x-www-form-urlencoded"), &form_of(MAX_FORM_FIELDS + 1)).await.expect_err("rejected");

        assert_eq!(error.to_string(), format!(
            "the form body has more than {MAX_FORM_FIELDS} fields; send fewer fields, or send the data as JSON or with \
             another Content-Type, which keeps the body as sent"
        ));
    }

    #[tokio::test]
    async fn multipart_at_field_limit_is_parsed() {
        let parsed = parse(Some("multipart/form-data; boundary=XyZ"), &multipart_of(MAX_FORM_FIELDS)).await;

        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[tokio::test]
    async fn multipart_over_field_limit_is_rejected() {
        let error = parse(Some("multipart/form-data; boundary=XyZ"), &multipart_of(MAX_FORM_FIELDS + 1)).await.expect_err("rejected");

        assert!(matches!(error, BodyParseError::TooManyFields { media: "multipart" }), "{error}");
    }

    async fn parse_json_object(content_type: &str, body: &[u8]) -> Value {
        match parse(Some(content_type), body).await {
            Ok(BodyData::Json(json)) => json.into_value(),
            other => panic!("expected a JSON body from {content_type}, got {other:?}"),
        }
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
            map.append(name, HeaderValue::from_bytes(value).expect("valid header value"));
        }
        map
    }

    #[tokio::test]
    async fn json_after_byte_order_mark_parses() {
        let body = b"\xEF\xBB\xBF{\"a\":1,\"name\":\"Zo\xC3\xAB\"}";
        let value = parse_json_object("application/json", body).await;
        assert_eq!(value, json!({ "a": 1, "name": "Zoë" }));
    }

    #[tokio::test]
    async fn parsing_leaves_input_bytes_unchanged() {
        let body = Bytes::from_static(b"\xEF\xBB\xBF{\"a\":1}");
        parse_body(Some("application/json"), &body).await.expect("valid JSON");
        assert_eq!(&body[..], b"\xEF\xBB\xBF{\"a\":1}");
    }

    #[tokio::test]
    async fn form_after_byte_order_mark_parses() {
        let value = parse_json_object("application/x-www-form-urlencoded", b"\xEF\xBB\xBFa=1&b=2").await;
        assert_eq!(value, json!({ "a": "1", "b": "2" }));
    }

    #[tokio::test]
    async fn empty_json_body_is_empty() {
        let data = parse(Some("application/json"), b"").await.expect("empty body is accepted");
        assert_eq!(data, BodyData::Empty);
    }

    #[tokio::test]
    async fn byte_order_mark_alone_is_empty_json_body() {
        let data = parse(Some("application/json"), b"\xEF\xBB\xBF").await.expect("empty body is accepted");
        assert_eq!(data, BodyData::Empty);
    }

    #[tokio::test]
    async fn empty_body_is_empty_for_every_media_type() {
        let content_types = [
            None,
            Some("application/json"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=XyZ"),
            Some("multipart/form-data"),
            Some("text/plain"),
            Some("application/octet-stream"),
        ];
        for content_type in content_types {
            let data = parse(content_type, b"").await;
            assert!(matches!(data, Ok(BodyData::Empty)), "{content_type:?} gave {data:?}");
        }
    }

    #[tokio::test]
    async fn truncated_json_is_invalid_json() {
        let error = parse(Some("application/json"), b"{\"a\":").await.expect_err("truncated JSON");
        assert!(matches!(error, BodyParseError::InvalidJson { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn invalid_json_message_mentions_json() {
        let error = parse(Some("application/json"), b"{\"a\":").await.expect_err("truncated JSON");
        assert!(error.to_string().contains("JSON"), "{error}");
    }

    #[tokio::test]
    async fn invalid_json_message_gives_line_and_column() {
        let error = parse(Some("application/json"), b"{\"a\": nope}").await.expect_err("malformed JSON");
        assert_eq!(
            error.to_string(),
            "invalid JSON body: expected ident at line 1 column 8; send valid JSON or change the Content-Type"
        );
    }

    #[tokio::test]
    async fn json_with_invalid_utf8_is_invalid_json() {
        let error = parse(Some("application/json"), b"{\"a\":\"\xFF\"}").await.expect_err("invalid UTF-8");
        assert!(matches!(error, BodyParseError::InvalidJson { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn json_keeps_integers_beyond_f64_precision() {
        let value = parse_json_object("application/json", b"{\"id\":9007199254740993}").await;
        assert_eq!(value["id"].as_u64(), Some(9_007_199_254_740_993));
    }

    #[tokio::test]
    async fn json_integer_beyond_u64_becomes_float() {
        let value = parse_json_object("application/json", b"{\"id\":18446744073709551617}").await;
        assert!(value["id"].is_f64(), "{value}");
    }

    #[tokio::test]
    async fn suffix_json_type_parses_as_json() {
        let value = parse_json_object("application/vnd.api+json", b"{\"a\":1}").await;
        assert_eq!(value, json!({ "a": 1 }));
    }

    #[tokio::test]
    async fn content_type_matching_ignores_case() {
        let value = parse_json_object("Application/JSON; Charset=UTF-8", b"{\"a\":1}").await;
        assert_eq!(value, json!({ "a": 1 }));
    }

    #[tokio::test]
    async fn form_plus_is_a_space() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        assert_eq!(value["message"], "hello world");
    }

    #[tokio::test]
    async fn form_encoded_plus_is_a_plus() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        assert_eq!(value["expr"], "This + is a plus");
    }

    #[tokio::test]
    async fn form_repeated_key_keeps_every_value_in_order() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        assert_eq!(value["tag"], json!(["a", "b"]));
    }

    #[tokio::test]
    async fn form_empty_value_is_empty_string() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        assert_eq!(value["empty"], "");
    }

    #[tokio::test]
    async fn form_key_without_equals_is_empty_string() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        assert_eq!(value["flag"], "");
    }

    #[tokio::test]
    async fn form_has_only_the_sent_keys() {
        let value = parse_json_object("application/x-www-form-urlencoded", FORM_CASE).await;
        let keys: Vec<_> = value.as_object().expect("an object").keys().cloned().collect();
        assert_eq!(keys, ["empty", "expr", "flag", "message", "tag"]);
    }

    #[tokio::test]
    async fn form_invalid_utf8_is_decoded_lossily() {
        let value = parse_json_object("application/x-www-form-urlencoded", b"name=Zo%FF").await;
        assert_eq!(value["name"], "Zo\u{FFFD}");
    }

    #[tokio::test]
    async fn multipart_repeated_field_becomes_array() {
        let value = parse_json_object("multipart/form-data; boundary=XyZ", MULTIPART_BODY).await;
        assert_eq!(value["tag"], json!(["a", "b"]));
    }

    #[tokio::test]
    async fn multipart_file_becomes_object_with_base64_data() {
        let value = parse_json_object("multipart/form-data; boundary=XyZ", MULTIPART_BODY).await;
        let expected = json!({
            "filename": "data.bin",
            "contentType": "application/octet-stream",
            "data": "AJ//",
            "size": 3,
        });
        assert_eq!(value["upload"], expected);
    }

    #[tokio::test]
    async fn multipart_file_without_content_type_has_null() {
        let body = b"--XyZ\r\n\
            Content-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\r\n\
            hi\r\n\
            --XyZ--\r\n";
        let value = parse_json_object("multipart/form-data; boundary=XyZ", body).await;
        assert_eq!(value["upload"]["contentType"], Value::Null);
    }

    #[tokio::test]
    async fn multipart_content_type_ignores_case_but_keeps_boundary() {
        let value = parse_json_object("Multipart/Form-Data; Boundary=XyZ", MULTIPART_BODY).await;
        assert_eq!(value["tag"], json!(["a", "b"]));
    }

    #[tokio::test]
    async fn multipart_quoted_boundary_is_accepted() {
        let value = parse_json_object("multipart/form-data; boundary=\"XyZ\"", MULTIPART_BODY).await;
        assert_eq!(value["tag"], json!(["a", "b"]));
    }

    #[tokio::test]
    async fn multipart_without_boundary_is_rejected() {
        let error = parse(Some("multipart/form-data"), MULTIPART_BODY).await.expect_err("no boundary");
        assert!(matches!(error, BodyParseError::InvalidMultipart { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn multipart_without_boundary_message_names_boundary() {
        let error = parse(Some("multipart/form-data"), MULTIPART_BODY).await.expect_err("no boundary");
        assert!(error.to_string().contains("boundary not found"), "{error}");
    }

    #[tokio::test]
    async fn multipart_without_closing_boundary_is_rejected() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\na";
        let error = parse(Some("multipart/form-data; boundary=XyZ"), body).await.expect_err("truncated");
        assert!(matches!(error, BodyParseError::InvalidMultipart { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn multipart_with_other_boundary_is_rejected() {
        let error = parse(Some("multipart/form-data; boundary=Other"), MULTIPART_BODY).await.expect_err("wrong boundary");
        assert!(matches!(error, BodyParseError::InvalidMultipart { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn multipart_part_without_name_is_rejected() {
        let body = b"--XyZ\r\nContent-Disposition: form-data\r\n\r\na\r\n--XyZ--\r\n";
        let error = parse(Some("multipart/form-data; boundary=XyZ"), body).await.expect_err("nameless part");
        assert_eq!(
            error.to_string(),
            "invalid multipart body: part 1 has no `name` in its Content-Disposition header; send \
             multipart/form-data with a `boundary` parameter and parts closed by that boundary, or \
             change the Content-Type"
        );
    }

    #[tokio::test]
    async fn text_csv_becomes_text() {
        let data = parse(Some("text/csv"), b"a,b\n1,2\n").await.expect("text");
        assert_eq!(data, BodyData::Text("a,b\n1,2\n".to_owned()));
    }

    #[tokio::test]
    async fn text_after_byte_order_mark_drops_the_mark() {
        let data = parse(Some("text/plain"), b"\xEF\xBB\xBFhello").await.expect("text");
        assert_eq!(data, BodyData::Text("hello".to_owned()));
    }

    #[tokio::test]
    async fn text_with_invalid_utf8_becomes_bytes() {
        let data = parse(Some("text/plain"), b"caf\xE9").await.expect("bytes");
        assert_eq!(data, BodyData::Bytes(b"caf\xE9".to_vec()));
    }

    #[tokio::test]
    async fn latin1_text_is_decoded_by_its_charset() {
        let data = parse(Some("text/plain; charset=ISO-8859-1"), b"caf\xE9").await.expect("text");
        assert_eq!(data, BodyData::Text("café".to_owned()));
    }

    #[tokio::test]
    async fn quoted_shift_jis_charset_is_decoded() {
        let data = parse(Some("text/plain; charset=\"Shift_JIS\""), b"\x93\xfa\x96\x7b").await.expect("text");
        assert_eq!(data, BodyData::Text("日本".to_owned()));
    }

    #[tokio::test]
    async fn text_invalid_in_its_charset_becomes_bytes() {
        let data = parse(Some("text/plain; charset=utf-8"), b"caf\xE9").await.expect("bytes");
        assert_eq!(data, BodyData::Bytes(b"caf\xE9".to_vec()));
    }

    #[tokio::test]
    async fn utf16_byte_order_mark_picks_the_encoding() {
        let data = parse(Some("text/plain; charset=utf-8"), b"\xFE\xFF\x00h\x00i").await.expect("text");
        assert_eq!(data, BodyData::Text("hi".to_owned()));
    }

    #[tokio::test]
    async fn utf8_byte_order_mark_overrides_utf16_charset() {
        let data = parse(Some("text/plain; charset=utf-16le"), b"\xEF\xBB\xBFhi").await.expect("text");
        assert_eq!(data, BodyData::Text("hi".to_owned()));
    }

    #[tokio::test]
    async fn unknown_charset_is_read_as_utf8() {
        let data = parse(Some("text/plain; charset=x-made-up"), "café".as_bytes()).await.expect("text");
        assert_eq!(data, BodyData::Text("café".to_owned()));
    }

    #[tokio::test]
    async fn octet_stream_keeps_bytes() {
        let data = parse(Some("application/octet-stream"), b"\x00\x9f\xff").await.expect("bytes");
        assert_eq!(data, BodyData::Bytes(vec![0x00, 0x9f, 0xff]));
    }

    #[tokio::test]
    async fn octet_stream_keeps_leading_byte_order_mark() {
        let data = parse(Some("application/octet-stream"), b"\xEF\xBB\xBF\x01").await.expect("bytes");
        assert_eq!(data, BodyData::Bytes(b"\xEF\xBB\xBF\x01".to_vec()));
    }

    #[tokio::test]
    async fn missing_content_type_gives_bytes() {
        let data = parse(None, b"{\"a\":1}").await.expect("bytes");
        assert_eq!(data, BodyData::Bytes(b"{\"a\":1}".to_vec()));
    }

    #[test]
    fn header_names_are_lowercase() {
        let map = header_map(&headers(&[("X-Request-ID", b"42")]), &[]);
        assert_eq!(map.get("x-request-id").map(String::as_str), Some("42"));
    }

    #[test]
    fn repeated_header_joins_values_in_order() {
        let map = header_map(&headers(&[("accept", b"text/html"), ("accept", b"application/json")]), &[]);
        assert_eq!(map["accept"], "text/html, application/json");
    }

    #[test]
    fn repeated_cookie_header_joins_with_semicolon() {
        let map = header_map(&headers(&[("cookie", b"a=1"), ("cookie", b"b=2")]), &[]);
        assert_eq!(map["cookie"], "a=1; b=2");
    }

    #[test]
    fn excluded_header_is_dropped() {
        let map = header_map(&headers(&[("api-key", b"secret"), ("accept", b"*/*")]), &["api-key"]);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn excluded_header_matching_ignores_case() {
        let map = header_map(&headers(&[("Api-Key", b"secret")]), &["API-KEY"]);
        assert!(map.is_empty(), "{map:?}");
    }

    #[test]
    fn non_utf8_header_value_is_decoded_lossily() {
        let map = header_map(&headers(&[("x-name", b"Zo\xEB")]), &[]);
        assert_eq!(map["x-name"], "Zo\u{FFFD}");
    }

    #[test]
    fn query_key_sent_once_is_single() {
        let parameters = query_parameters(Some("page=2"));
        assert_eq!(parameters["page"], ParamValue::Single("2".to_owned()));
    }

    #[test]
    fn repeated_query_key_keeps_every_value_in_order() {
        let parameters = query_parameters(Some("id=3&id=1&id=2"));
        assert_eq!(parameters["id"], ParamValue::Multiple(vec!["3".to_owned(), "1".to_owned(), "2".to_owned()]));
    }

    #[test]
    fn query_value_is_percent_decoded() {
        let parameters = query_parameters(Some("q=caf%C3%A9%20%26%20tea"));
        assert_eq!(parameters["q"].first(), "café & tea");
    }

    #[test]
    fn query_key_is_percent_decoded() {
        let parameters = query_parameters(Some("a%3Db=1"));
        assert_eq!(parameters["a=b"].first(), "1");
    }

    #[test]
    fn query_plus_is_a_space() {
        let parameters = query_parameters(Some("q=hello+world"));
        assert_eq!(parameters["q"].first(), "hello world");
    }

    #[test]
    fn query_key_without_equals_is_empty_string() {
        let parameters = query_parameters(Some("flag"));
        assert_eq!(parameters["flag"], ParamValue::Single(String::new()));
    }

    #[test]
    fn missing_query_has_no_parameters() {
        assert!(query_parameters(None).is_empty());
    }
}
