//! How deep the JSON that the store writes and reads back may nest.
//!
//! serde_json stops at 128 levels of nesting by default, and the webhook parser keeps that
//! limit for request bodies. A stored text nests its values deeper than they were sent: a
//! payload's body sits two or three levels down, inside `body.data` and the compact form's
//! `payload`. So a body the parser accepted would not read back under that limit.
//!
//! Stored texts are read up to [`MAX_STORED_DEPTH`] levels instead. Dropping, serializing and
//! cloning a value recurse once per level on the thread's own stack. So a deeper text is
//! reported as unreadable, because its value could overflow the stack and abort the process.
//! The parse itself runs through serde_stacker, which grows the stack when it runs low.

use serde::Deserialize;
use serde::de::Error as _;
use serde_json::Value;

/// Deepest nesting of arrays and objects that a stored JSON text may have to be read back.
///
/// It leaves room for the deepest request body the webhook parser accepts (127 levels) inside
/// a stored payload. A debug build aborted when it serialized a value about 1,500 levels deep
/// on a 2 MiB tokio worker stack, so this limit keeps a wide margin below that.
pub(crate) const MAX_STORED_DEPTH: usize = 512;

/// Deepest nesting of a value that a flow hands to the store: its result, a state value, a
/// step's result or the data of `invoke_flow`. Its stored text wraps it in at most three more
/// levels, so it reads back within [`MAX_STORED_DEPTH`].
pub(crate) const MAX_VALUE_DEPTH: usize = MAX_STORED_DEPTH - 4;

/// Returns `value` when it is nested at most [`MAX_VALUE_DEPTH`] levels deep.
///
/// # Errors
///
/// Returns the value's depth when it is deeper, after dropping the value without recursion.
pub(crate) fn within_depth(value: Value) -> Result<Value, usize> {
    let depth = value_depth(&value);
    if depth <= MAX_VALUE_DEPTH {
        return Ok(value);
    }
    drop_without_recursion(value);
    Err(depth)
}

/// Returns the message for `what`, nested `depth` levels deep, past [`MAX_VALUE_DEPTH`].
pub(crate) fn too_deep(what: &str, depth: usize) -> String {
    format!("{what} is nested {depth} levels deep, more than the {MAX_VALUE_DEPTH} the store keeps")
}

/// Returns the deepest nesting of arrays and objects in `value`, using a stack on the heap.
fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0_usize)];
    while let Some((value, depth)) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|child| (child, depth + 1))),
            Value::Object(entries) => pending.extend(entries.values().map(|child| (child, depth + 1))),
            _ => continue,
        }
        deepest = deepest.max(depth + 1);
    }
    deepest
}

/// Drops `value` one level at a time, because the recursive drop of a deeply nested value
/// overflows the stack.
fn drop_without_recursion(value: Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(entries) => pending.extend(entries.into_iter().map(|(_, child)| child)),
            _ => {}
        }
    }
}

/// Reads a JSON text that the store wrote, nested at most [`MAX_STORED_DEPTH`] levels deep.
///
/// # Errors
///
/// Returns serde_json's error when the text is not JSON of type `T`, or is nested deeper.
pub(crate) fn from_stored<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    let depth = nesting_depth(text);
    if depth > MAX_STORED_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "the stored JSON is nested {depth} levels deep, more than the {MAX_STORED_DEPTH} this runtime reads back"
        )));
    }

    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(serde_stacker::Deserializer::new(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

/// Returns the deepest nesting of arrays and objects in a JSON text, skipping brackets inside
/// strings. For text that is not JSON the count is meaningless, and the parser reports the error.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn text_at_the_depth_limit_reads_back() {
        let text = nested_arrays(MAX_STORED_DEPTH);

        let value: Value = from_stored(&text).expect("reads");

        assert_eq!(value.to_string(), text);
    }

    #[test]
    fn text_past_the_depth_limit_is_rejected() {
        let text = nested_arrays(MAX_STORED_DEPTH + 1);

        let error = from_stored::<Value>(&text).expect_err("rejected");

        assert!(error.to_string().contains("nested 513 levels deep"), "{error}");
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = r#"{"a": "[[[{{\"[", "b": [{"c": "]]]"}]}"#;

        assert_eq!(nesting_depth(text), 3);
    }

    /// Builds nested arrays without recursion; dropping the result recurses once per level.
    fn nested_value(depth: usize) -> Value {
        (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn value_at_the_depth_limit_is_kept() {
        let depth = within_depth(nested_value(MAX_VALUE_DEPTH)).map(|value| value_depth(&value));

        assert_eq!(depth, Ok(MAX_VALUE_DEPTH));
    }

    #[test]
    fn far_too_deep_value_is_rejected() {
        let rejected = within_depth(nested_value(1_000_000));

        assert_eq!(rejected, Err(1_000_000));
    }

    #[test]
    fn object_depth_counts_every_level() {
        let value = serde_json::json!({ "a": [1, { "b": {} }], "c": [] });

        assert_eq!(value_depth(&value), 4);
    }

    #[test]
    fn trailing_characters_are_rejected() {
        let error = from_stored::<Value>("[] x").expect_err("rejected");

        assert!(error.to_string().contains("trailing characters"), "{error}");
    }
}
