//! The error type every validation rule returns.

use std::fmt;

/// A broken configuration rule: the attribute keys involved and a message with the fix.
///
/// `keys` are attribute paths as an author writes them (`retry.max_attempts`,
/// `queue.sequential`), so the macro can point at the offending tokens and the runtime can name
/// the setting. A rule that spans two options lists both keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Attribute paths of the options that break the rule, first the one to fix.
    pub keys: Vec<&'static str>,
    /// The rule and the fix, with example syntax.
    pub message: String,
}

impl Violation {
    /// Creates a violation of one key.
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            keys: vec![key],
            message: message.into(),
        }
    }

    /// Creates a violation that spans several keys; the first is the one to fix.
    pub fn spanning(keys: &[&'static str], message: impl Into<String>) -> Self {
        Self {
            keys: keys.to_vec(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Violation {}

/// Checks that `value` lies in `range`, naming `key` and an example in the message.
///
/// # Errors
///
/// Returns a [`Violation`] when the value is outside the range.
pub fn check_range(
    key: &'static str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    example: &str,
) -> Result<(), Violation> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Violation::new(
        key,
        format!(
            "`{key}` must be between {} and {}, got {value}; e.g. `{example}`",
            range.start(),
            range.end()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_accepts_both_bounds() {
        assert!(check_range("retry.max_attempts", 0, 0..=10, "max_attempts = 3").is_ok());
        assert!(check_range("retry.max_attempts", 10, 0..=10, "max_attempts = 3").is_ok());
    }

    #[test]
    fn range_rejection_names_key_bounds_and_value() {
        let violation = check_range("retry.max_attempts", 11, 0..=10, "max_attempts = 3")
            .expect_err("11 is outside 0..=10");
        assert_eq!(violation.keys, vec!["retry.max_attempts"]);
        assert_eq!(
            violation.message,
            "`retry.max_attempts` must be between 0 and 10, got 11; e.g. `max_attempts = 3`"
        );
    }
}
