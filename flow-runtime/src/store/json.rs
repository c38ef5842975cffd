//! Reading back the JSON texts a store wrote.
//!
//! serde_json stops at 128 levels of nesting by default, and the webhook parser keeps that
//! limit for request bodies. A stored text nests its values deeper than they were sent: a
//! payload's body sits two or three levels down, inside `body.data` and the compact form's
//! `payload`. So a body the parser accepted would not read back. Stored texts are written by
//! the runtime, so they are read without the limit, on a stack that grows as needed instead of
//! overflowing.

use serde::Deserialize;

/// Reads a JSON text that the store wrote, at any depth of nesting.
///
/// # Errors
///
/// Returns serde_json's error when the text is not JSON of type `T`.
pub(crate) fn from_stored<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.disable_recursion_limit();

    let value = T::deserialize(serde_stacker::Deserializer::new(&mut deserializer))?;
    deserializer.end()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn nested_arrays(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn deeply_nested_text_reads_back() {
        let text = nested_arrays(200);

        let value: Value = from_stored(&text).expect("reads");

        assert_eq!(value.to_string(), text);
    }

    #[test]
    fn trailing_characters_are_rejected() {
        let error = from_stored::<Value>("[] x").expect_err("rejected");

        assert!(error.to_string().contains("trailing characters"), "{error}");
    }
}
