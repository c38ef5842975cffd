//! Paths to a field of the trigger payload, such as `body.data.requestId`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// Top-level fields of the serialized trigger payload that a path may start with.
pub const PAYLOAD_ROOTS: &[&str] = &[
    "body",
    "headers",
    "queryParameters",
    "pathFragment",
    "customer",
    "instance",
    "user",
    "integration",
    "flow",
    "webhookUrls",
    "webhookApiKeys",
    "invokeUrl",
    "executionId",
    "startedAt",
];

/// One step of a [`FieldPath`]: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A key of a JSON object.
    Key(String),
    /// A zero-based index into a JSON array.
    Index(usize),
}

/// A parsed path into the trigger payload: dot-separated keys, each optionally followed by
/// array indices (`body.items[0].sku`).
///
/// The first key must be a payload field from [`PAYLOAD_ROOTS`]. Paths resolve against
/// [`TriggerPayload::field_source`](crate::TriggerPayload::field_source), where `body` is the
/// parsed request body: for a JSON request `{"data":{"requestId":"r1"}}`, the path
/// `body.data.requestId` gives `"r1"`. Keys under `headers` are matched in lowercase because
/// the runtime stores header names in lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: String,
    segments: Vec<Segment>,
}

/// Why a field path did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPathError {
    /// The path as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for FieldPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid field path `{}`: {}; e.g. `body.data.requestId` or `headers.x-request-id`",
            self.path, self.reason
        )
    }
}

impl std::error::Error for FieldPathError {}

impl FieldPath {
    /// Parses a path such as `body.data.requestId` or `body.items[2].id`.
    ///
    /// # Errors
    ///
    /// Returns a [`FieldPathError`] for an empty path or key, an unclosed or non-numeric index,
    /// white space, or a first key that is not a trigger payload field.
    pub fn parse(text: &str) -> Result<Self, FieldPathError> {
        let fail = |reason: String| FieldPathError {
            path: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(fail("the path is empty".to_owned()));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(fail("a path contains no white space".to_owned()));
        }

        let mut segments = Vec::new();
        for part in text.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(open) => (&part[..open], &part[open..]),
                None => (part, ""),
            };
            if key.is_empty() {
                return Err(fail("every key between dots must be non-empty".to_owned()));
            }
            if key.contains(']') {
                return Err(fail(format!("`]` without a matching `[` in `{part}`")));
            }
            segments.push(Segment::Key(key.to_owned()));

            while !rest.is_empty() {
                let Some(close) = rest.find(']') else {
                    return Err(fail(format!("unclosed `[` in `{part}`")));
                };
                let index_text = &rest[1..close];
                let index = index_text
                    .parse::<usize>()
                    .map_err(|_| fail(format!("array index `{index_text}` is not a non-negative integer")))?;
                segments.push(Segment::Index(index));
                rest = &rest[close + 1..];
                if !rest.is_empty() && !rest.starts_with('[') {
                    return Err(fail(format!("unexpected `{rest}` after an index; separate keys with `.`")));
                }
            }
        }

        let Some(Segment::Key(root)) = segments.first() else {
            return Err(fail("the path must start with a key".to_owned()));
        };
        if !PAYLOAD_ROOTS.contains(&root.as_str()) {
            return Err(fail(format!(
                "it must start with a trigger payload field ({}), not `{root}`",
                PAYLOAD_ROOTS.join(", ")
            )));
        }
        if root == "headers" {
            for segment in segments.iter_mut().skip(1).take(1) {
                if let Segment::Key(name) = segment {
                    *name = name.to_ascii_lowercase();
                }
            }
        }

        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// Returns the path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Returns the parsed steps of the path.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Returns the value at this path in a serialized trigger payload, if present.
    pub fn resolve<'v>(&self, payload: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(payload, |value, segment| match segment {
            Segment::Key(key) => value.as_object()?.get(key),
            Segment::Index(index) => value.as_array()?.get(*index),
        })
    }

    /// Returns the value at this path as an identifier: strings as they are, numbers and
    /// booleans in their JSON text. Missing, null, array and object values give `None`.
    ///
    /// NOTE: a number that was parsed into an `f64`, such as an integer beyond the 64-bit
    /// range, has lost digits, so two such ids can be equal here. [`Self::resolve_id_in`]
    /// reads them from the body's text.
    pub fn resolve_id(&self, payload: &Value) -> Option<String> {
        match self.resolve(payload)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Returns the identifier at this path like [`Self::resolve_id`], but takes a number under
    /// `body` that did not parse into an integer exactly from `body_text`, the JSON text the
    /// body was sent as. So `100000000000000000001` and `100000000000000000000` stay different
    /// ids.
    pub fn resolve_id_in(&self, payload: &Value, body_text: Option<&str>) -> Option<String> {
        if let (Some(Value::Number(number)), Some(text)) = (self.resolve(payload), body_text)
            && number.is_f64()
            && let Some(exact) = self.number_text_in_body(text)
        {
            return Some(exact);
        }
        self.resolve_id(payload)
    }

    /// Returns the text of the number at this `body` path in the JSON text of a body.
    ///
    /// NOTE: each step of the path parses the value it enters again, so a path of n steps reads
    /// up to n times the body's text. Dedupe and routing paths are a few steps long.
    fn number_text_in_body(&self, text: &str) -> Option<String> {
        let [Segment::Key(body), rest @ ..] = self.segments.as_slice() else {
            return None;
        };
        if body != "body" {
            return None;
        }

        let mut current: &RawValue = serde_json::from_str(text).ok()?;
        for segment in rest {
            current = match segment {
                Segment::Key(key) => {
                    // serde_json keeps the last of repeated keys, and so does this map.
                    let object: HashMap<String, &RawValue> = serde_json::from_str(current.get()).ok()?;
                    object.get(key).copied()?
                }
                Segment::Index(index) => {
                    let array: Vec<&RawValue> = serde_json::from_str(current.get()).ok()?;
                    array.get(*index).copied()?
                }
            };
        }
        let number = current.get().trim();
        number.starts_with(|first: char| first == '-' || first.is_ascii_digit()).then(|| number.to_owned())
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for FieldPath {
    type Err = FieldPathError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parse_splits_keys_and_indices() {
        let path = FieldPath::parse("body.items[2].sku").expect("valid path");
        assert_eq!(
            path.segments(),
            &[
                Segment::Key("body".into()),
                Segment::Key("items".into()),
                Segment::Index(2),
                Segment::Key("sku".into()),
            ]
        );
    }

    #[test]
    fn parse_rejects_empty_key() {
        let error = FieldPath::parse("body..id").expect_err("empty key");
        assert_eq!(error.reason, "every key between dots must be non-empty");
    }

    #[test]
    fn parse_rejects_unknown_root() {
        let error = FieldPath::parse("data.requestId").expect_err("unknown root");
        assert!(error.reason.contains("not `data`"), "{}", error.reason);
    }

    #[test]
    fn parse_rejects_unclosed_index() {
        let error = FieldPath::parse("body.items[0").expect_err("unclosed");
        assert_eq!(error.reason, "unclosed `[` in `items[0`");
    }

    #[test]
    fn parse_rejects_non_numeric_index() {
        let error = FieldPath::parse("body.items[x]").expect_err("bad index");
        assert_eq!(error.reason, "array index `x` is not a non-negative integer");
    }

    #[test]
    fn parse_rejects_white_space() {
        assert!(FieldPath::parse("body.order id").is_err());
    }

    #[test]
    fn parse_rejects_empty_path() {
        assert_eq!(FieldPath::parse("").expect_err("empty").reason, "the path is empty");
    }

    #[test]
    fn error_message_shows_path_and_example() {
        let error = FieldPath::parse("body.").expect_err("trailing dot");
        assert_eq!(
            error.to_string(),
            "invalid field path `body.`: every key between dots must be non-empty; \
             e.g. `body.data.requestId` or `headers.x-request-id`"
        );
    }

    #[test]
    fn resolve_follows_keys_and_indices() {
        let payload = json!({ "body": { "data": { "items": [{ "id": 7 }] } } });
        let path = FieldPath::parse("body.data.items[0].id").expect("valid path");
        assert_eq!(path.resolve(&payload), Some(&json!(7)));
    }

    #[test]
    fn resolve_header_names_in_lowercase() {
        let payload = json!({ "headers": { "x-request-id": "abc" } });
        let path = FieldPath::parse("headers.X-Request-Id").expect("valid path");
        assert_eq!(path.resolve_id(&payload).as_deref(), Some("abc"));
    }

    #[test]
    fn resolve_id_of_missing_field_is_none() {
        let payload = json!({ "body": { "data": {} } });
        let path = FieldPath::parse("body.data.requestId").expect("valid path");
        assert_eq!(path.resolve_id(&payload), None);
    }

    #[test]
    fn large_ids_stay_distinct_with_text() {
        let path = FieldPath::parse("body.items[1].id").expect("valid path");
        let first = r#"{"items":[{"id":1},{"id":100000000000000000001}]}"#;
        let second = r#"{"items":[{"id":1},{"id":100000000000000000000}]}"#;
        let fields = |text: &str| json!({ "body": serde_json::from_str::<Value>(text).expect("valid JSON") });

        let first_id = path.resolve_id_in(&fields(first), Some(first));
        let second_id = path.resolve_id_in(&fields(second), Some(second));

        assert_eq!(first_id.as_deref(), Some("100000000000000000001"));
        assert_eq!(second_id.as_deref(), Some("100000000000000000000"));
    }

    #[test]
    fn id_without_text_uses_the_value() {
        let path = FieldPath::parse("body.id").expect("valid path");
        let payload = json!({ "body": { "id": 1.5 } });

        assert_eq!(path.resolve_id_in(&payload, None).as_deref(), Some("1.5"));
    }

    #[test]
    fn resolve_id_keeps_large_integers_exact() {
        let payload = json!({ "body": { "data": { "id": 9_007_199_254_740_993_u64 } } });
        let path = FieldPath::parse("body.data.id").expect("valid path");
        assert_eq!(path.resolve_id(&payload).as_deref(), Some("9007199254740993"));
    }
}
