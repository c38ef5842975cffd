//! A JSON body that keeps the text it was sent as and builds a [`Value`] only when read as one.
//!
//! A webhook's JSON body is checked when the request arrives, so a malformed one is rejected
//! with 400 before anything is stored. Building the [`Value`] tree allocates every key and
//! string, and dropping it frees them again. A flow that reads the body as its own type, or
//! not at all, needs neither: [`JsonBody::deserialize`] reads the type straight from the text.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The key by which serde_json's `raw_value` feature marks a raw value inside a map. A parse
/// into a [`Value`] reads such a map's value as JSON text, which the check does not do. The
/// key is compared after its escapes are decoded, as the parser compares it.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// A JSON body: the text as sent, parsed into a [`Value`] the first time it is read as one.
///
/// It dereferences to [`Value`], so `body["id"]`, `body.get("id")` and `body.is_object()`
/// work as on a value. Changing it through `&mut` parses the text and then drops it, so the
/// body is from then on the changed value. Two bodies are equal when their values are.
#[derive(Clone, Default)]
pub struct JsonBody {
    /// The JSON text, known to parse into a [`Value`]. It is `None` for a body built from a
    /// value or changed since.
    text: Option<String>,
    /// The parsed value, set on first read, or from the start for a body built from a value.
    value: OnceLock<Value>,
}

impl JsonBody {
    /// Checks `bytes` as JSON and keeps them as the body's text, without building the value.
    ///
    /// It accepts exactly what `serde_json::from_slice::<Value>` accepts: valid UTF-8, numbers
    /// in range, at most 127 levels of nesting, nothing after the value but white space.
    ///
    /// # Errors
    ///
    /// Returns serde_json's error, with the line and column where the text stopped being JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        // Checking the UTF-8 of the whole text at once is faster than the parser's check of
        // each string. Text that is not UTF-8 is not JSON, and the parser's error names the
        // line and column.
        let Ok(text) = std::str::from_utf8(bytes) else {
            serde_json::from_slice::<Checked>(bytes)?;
            return Err(serde::de::Error::custom("the text is not valid UTF-8"));
        };
        let Checked { raw_value_key } = serde_json::from_str::<Checked>(text)?;
        if raw_value_key {
            // Such a key is rare, so the text is parsed at once, which gives the parser's own result.
            let value: Value = serde_json::from_str(text)?;
            return Ok(Self::from(value));
        }
        Ok(Self {
            text: Some(text.to_owned()),
            value: OnceLock::new(),
        })
    }

    /// Returns the text the body was sent as, while the body is unchanged.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Returns the body as a [`Value`], parsing its text the first time.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.text {
            // The text was checked when the body was made, so the parse succeeds.
            // NOTE: a text that the check accepts and the parser rejects would read as null.
            // The tests of `from_slice` cover the differences known so far.
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    /// Returns the value for changing it. The text is dropped, because it no longer matches.
    pub fn value_mut(&mut self) -> &mut Value {
        self.value();
        self.text = None;
        self.value.get_mut().expect("the value was set just above")
    }

    /// Returns the value, parsing the text when it was not read yet.
    pub fn into_value(mut self) -> Value {
        self.value();
        self.value.take().unwrap_or(Value::Null)
    }

    /// Deserializes the body into `T`: from the text while the body is unchanged, whether or
    /// not its value was read, and from the value after a change.
    ///
    /// Reading from the text skips building the value and reads the text as sent. So an
    /// integer past `u64` reads exactly into a `u128`. A key that appears twice is an error
    /// for a struct field, as `serde_json::from_str::<T>` reports it.
    ///
    /// # Errors
    ///
    /// Returns serde_json's error when the body is not a `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.text {
            Some(text) => serde_json::from_str(text),
            None => T::deserialize(self.value()),
        }
    }
}

impl From<Value> for JsonBody {
    fn from(value: Value) -> Self {
        Self {
            text: None,
            value: OnceLock::from(value),
        }
    }
}

impl From<JsonBody> for Value {
    fn from(body: JsonBody) -> Self {
        body.into_value()
    }
}

impl Deref for JsonBody {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl DerefMut for JsonBody {
    fn deref_mut(&mut self) -> &mut Value {
        self.value_mut()
    }
}

impl PartialEq for JsonBody {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for JsonBody {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl fmt::Debug for JsonBody {
    /// Formats the value, as a [`Value`] in its place would be formatted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl Serialize for JsonBody {
    /// Writes the value, so the output is the same whether or not the text was read.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

/// Proof that a JSON value parsed, without the value. It requests each item from the parser
/// the way parsing into a [`Value`] does, so the parser applies the same checks.
struct Checked {
    /// Whether a map in the value has the key [`RAW_VALUE_TOKEN`].
    raw_value_key: bool,
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl CheckedVisitor {
    const SCALAR: Checked = Checked { raw_value_key: false };
}

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Self::SCALAR)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Checked, A::Error> {
        let mut raw_value_key = false;
        while let Some(item) = items.next_element::<Checked>()? {
            raw_value_key |= item.raw_value_key;
        }
        Ok(Checked { raw_value_key })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Checked, A::Error> {
        let mut raw_value_key = false;
        while let Some((key, value)) = entries.next_entry::<CheckedKey, Checked>()? {
            raw_value_key |= key.0 || value.raw_value_key;
        }
        Ok(Checked { raw_value_key })
    }
}

/// A map key that parsed, and whether it is [`RAW_VALUE_TOKEN`] once its escapes are decoded.
struct CheckedKey(bool);

impl<'de> Deserialize<'de> for CheckedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CheckedKeyVisitor)
    }
}

struct CheckedKeyVisitor;

impl Visitor<'_> for CheckedKeyVisitor {
    type Value = CheckedKey;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_str<E>(self, key: &str) -> Result<CheckedKey, E> {
        Ok(CheckedKey(key == RAW_VALUE_TOKEN))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Texts that `serde_json::from_slice::<Value>` rejects, each for another reason.
    const INVALID: [&[u8]; 12] = [
        b"{\"a\":",
        b"[1,]",
        b"{\"a\":1} x",
        b"1e400",
        b"\"\xff\"",
        b"{\"\xc3\x28\":1}",
        b"\"\\ud800\"",
        b"{\"$serde_json::private::RawValue\":\"[1,\"}",
        b"{\"$serde_json::private::RawValu\\u0065\":5}",
        b"{\"\\u0024serde_json::private::RawValue\":\"nul\"}",
        b"{\"a\":[{\"$serde_json::private::RawValu\\u0065\":\"{\"}]}",
        b"nul",
    ];

    #[test]
    fn check_rejects_invalid_json() {
        for text in INVALID {
            assert!(serde_json::from_slice::<Value>(text).is_err(), "the value parser accepts {text:?}");
            assert!(JsonBody::from_slice(text).is_err(), "the check accepts {text:?}");
        }
    }

    #[test]
    fn check_limits_nesting_depth() {
        let deepest_accepted = format!("{}{}", "[".repeat(127), "]".repeat(127));
        let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(serde_json::from_str::<Value>(&deepest_accepted).is_ok());
        assert!(JsonBody::from_slice(deepest_accepted.as_bytes()).is_ok());
        assert!(serde_json::from_str::<Value>(&too_deep).is_err());
        assert!(JsonBody::from_slice(too_deep.as_bytes()).is_err());
    }

    #[test]
    fn check_error_matches_the_parser() {
        for text in [&b"{\"a\": [1, 2,]}"[..], b"{\"a\": \"caf\xe9\"}"] {
            let expected = serde_json::from_slice::<Value>(text).expect_err("invalid").to_string();
            let actual = JsonBody::from_slice(text).expect_err("invalid").to_string();
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn text_is_kept_as_sent() {
        let body = JsonBody::from_slice(b"{ \"b\": 1, \"a\": 2 }").expect("valid");
        assert_eq!(body.text(), Some("{ \"b\": 1, \"a\": 2 }"));
    }

    #[test]
    fn value_reads_the_text() {
        let body = JsonBody::from_slice(b"{\"id\": 7, \"items\": [\"x\"]}").expect("valid");
        assert_eq!(body.value(), &json!({ "id": 7, "items": ["x"] }));
        assert_eq!(body["items"][0], "x");
    }

    #[test]
    fn typed_read_comes_from_the_text() {
        #[derive(Deserialize, PartialEq, Debug)]
        struct Order {
            id: u64,
        }
        let body = JsonBody::from_slice(b"{\"id\": 18446744073709551615}").expect("valid");
        assert_eq!(body.deserialize::<Order>().expect("an order"), Order { id: u64::MAX });
        assert!(body.value.get().is_none(), "the value was built");
    }

    #[test]
    fn typed_read_ignores_a_built_value() {
        #[derive(Deserialize, Debug)]
        struct Total {
            cents: u128,
        }
        let body = JsonBody::from_slice(b"{\"cents\": 100000000000000000000001}").expect("valid");
        let before = body.deserialize::<Total>().expect("a total").cents;
        assert!(body.is_object());
        let after = body.deserialize::<Total>().expect("a total").cents;
        assert_eq!(before, after);
    }

    #[test]
    fn integer_past_u64_reads_exactly_into_u128() {
        #[derive(Deserialize)]
        struct Total {
            cents: u128,
        }
        let body = JsonBody::from_slice(b"{\"cents\": 100000000000000000000001}").expect("valid");
        assert_eq!(body.deserialize::<Total>().expect("a total").cents, 100_000_000_000_000_000_000_001);
    }

    #[test]
    fn change_drops_the_text() {
        let mut body = JsonBody::from_slice(b"{\"id\": 7}").expect("valid");
        body["id"] = json!(8);
        assert_eq!(body.text(), None);
        assert_eq!(body.deserialize::<Value>().expect("a value"), json!({ "id": 8 }));
    }

    #[test]
    fn serialized_form_is_the_compact_value() {
        let body = JsonBody::from_slice(b"{ \"b\": 1, \"a\": 2 }").expect("valid");
        assert_eq!(serde_json::to_string(&body).expect("serializes"), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn bodies_with_equal_values_are_equal() {
        let sent = JsonBody::from_slice(b"{\"a\": 1}").expect("valid");
        assert_eq!(sent, JsonBody::from(json!({ "a": 1 })));
        assert_eq!(sent, json!({ "a": 1 }));
    }
}
