//! Step error handling: what `ctx.step(...)` does when a step fails.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::violation::{Violation, check_range};

/// Allowed values of [`StepErrorConfig::max_attempts`].
pub const STEP_MAX_ATTEMPTS: std::ops::RangeInclusive<u64> = 0..=5;
/// Allowed values of [`StepErrorConfig::delay_seconds`].
pub const STEP_DELAY_SECONDS: std::ops::RangeInclusive<u64> = 0..=60;

/// Step retries when `handler = "retry"` sets no `max_attempts`.
pub const DEFAULT_STEP_MAX_ATTEMPTS: u32 = 3;
/// Step retry delay when `handler = "retry"` sets no `delay_seconds`.
pub const DEFAULT_STEP_DELAY_SECONDS: u32 = 0;

/// What a failed step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepErrorHandler {
    /// The step's error fails the execution.
    #[default]
    Fail,
    /// The error is logged and the execution continues with no value for the step.
    Ignore,
    /// The step runs again, as set by the retry options.
    Retry,
}

impl StepErrorHandler {
    /// Attribute spellings, in the order the docs list them.
    pub const NAMES: &'static [&'static str] = &["fail", "ignore", "retry"];

    /// Parses an attribute spelling (`"fail"`, `"ignore"` or `"retry"`).
    ///
    /// # Errors
    ///
    /// Returns a [`Violation`] on `error_config.handler` listing the valid values.
    pub fn parse(text: &str) -> Result<Self, Violation> {
        match text {
            "fail" => Ok(Self::Fail),
            "ignore" => Ok(Self::Ignore),
            "retry" => Ok(Self::Retry),
            other => Err(Violation::new(
                "error_config.handler",
                format!(
                    "`error_config.handler` must be one of \"fail\", \"ignore\" or \"retry\", got \"{other}\"; \
                     e.g. `error_config(handler = \"retry\", max_attempts = 3, delay_seconds = 10)`"
                ),
            )),
        }
    }
}

/// Error handling for the steps of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepErrorConfig {
    /// What a failed step does.
    pub handler: StepErrorHandler,
    /// Retries of a step after its first run (retry handler only);
    /// [`DEFAULT_STEP_MAX_ATTEMPTS`] when absent.
    pub max_attempts: Option<u32>,
    /// Delay before the first step retry, in seconds (retry handler only);
    /// [`DEFAULT_STEP_DELAY_SECONDS`] when absent.
    pub delay_seconds: Option<u32>,
    /// Doubles the step delay after each failed attempt (retry handler only).
    pub exponential_backoff: bool,
    /// After the last failed retry, continues with no value instead of failing (retry handler only).
    pub ignore_final_error: bool,
}

impl StepErrorConfig {
    /// Checks ranges, that the retry handler has its options, and that fail and ignore have none.
    pub fn validate(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        let example = "error_config(handler = \"retry\", max_attempts = 3, delay_seconds = 10)";

        if self.handler != StepErrorHandler::Retry {
            let handler = match self.handler {
                StepErrorHandler::Fail => "fail",
                StepErrorHandler::Ignore => "ignore",
                StepErrorHandler::Retry => unreachable!("the retry handler is excluded above"),
            };
            let retry_only = [
                ("error_config.max_attempts", self.max_attempts.is_some()),
                ("error_config.delay_seconds", self.delay_seconds.is_some()),
                ("error_config.exponential_backoff", self.exponential_backoff),
                ("error_config.ignore_final_error", self.ignore_final_error),
            ];
            for (key, is_set) in retry_only {
                if is_set {
                    violations.push(Violation::spanning(
                        &[key, "error_config.handler"],
                        format!(
                            "`{key}` applies only to `handler = \"retry\"`, but the handler is \"{handler}\"; \
                             remove it or use `{example}`"
                        ),
                    ));
                }
            }
            return violations;
        }

        if let Some(value) = self.max_attempts {
            violations.extend(check_range("error_config.max_attempts", u64::from(value), STEP_MAX_ATTEMPTS, example).err());
        }
        if let Some(value) = self.delay_seconds {
            violations.extend(
                check_range("error_config.delay_seconds", u64::from(value), STEP_DELAY_SECONDS, example).err(),
            );
        }
        violations
    }

    /// Returns how many times a failed step runs again: `max_attempts`, or its default.
    pub fn retries(&self) -> u32 {
        self.max_attempts.unwrap_or(DEFAULT_STEP_MAX_ATTEMPTS)
    }

    /// Returns the delay before step retry number `retry` (1 for the first retry).
    ///
    /// With backoff the delay doubles after each failed attempt; the arithmetic saturates.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let base = u64::from(self.delay_seconds.unwrap_or(DEFAULT_STEP_DELAY_SECONDS));
        let seconds = if self.exponential_backoff {
            let factor = 1_u64.checked_shl(retry.saturating_sub(1)).unwrap_or(u64::MAX);
            base.saturating_mul(factor)
        } else {
            base
        };
        Duration::from_secs(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_config(max_attempts: u32, delay_seconds: u32) -> StepErrorConfig {
        StepErrorConfig {
            handler: StepErrorHandler::Retry,
            max_attempts: Some(max_attempts),
            delay_seconds: Some(delay_seconds),
            ..StepErrorConfig::default()
        }
    }

    #[test]
    fn handler_parse_rejects_unknown_value() {
        let violation = StepErrorHandler::parse("panic").expect_err("unknown handler");
        assert!(violation.message.contains("got \"panic\""), "{}", violation.message);
    }

    #[test]
    fn retry_handler_accepts_its_bounds() {
        assert!(retry_config(5, 60).validate().is_empty());
        assert!(retry_config(0, 0).validate().is_empty());
    }

    #[test]
    fn retry_handler_rejects_six_attempts() {
        let violations = retry_config(6, 10).validate();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].keys, vec!["error_config.max_attempts"]);
    }

    #[test]
    fn retry_handler_rejects_delay_over_a_minute() {
        let violations = retry_config(3, 61).validate();
        assert_eq!(violations[0].keys, vec!["error_config.delay_seconds"]);
    }

    #[test]
    fn retry_handler_alone_is_valid() {
        let config = StepErrorConfig {
            handler: StepErrorHandler::Retry,
            ..StepErrorConfig::default()
        };
        assert!(config.validate().is_empty());
    }

    #[test]
    fn fail_handler_rejects_every_retry_option() {
        let config = StepErrorConfig {
            handler: StepErrorHandler::Fail,
            max_attempts: Some(2),
            delay_seconds: Some(1),
            exponential_backoff: true,
            ignore_final_error: true,
        };
        let keys: Vec<&str> = config.validate().iter().map(|v| v.keys[0]).collect();
        assert_eq!(
            keys,
            vec![
                "error_config.max_attempts",
                "error_config.delay_seconds",
                "error_config.exponential_backoff",
                "error_config.ignore_final_error",
            ]
        );
    }

    #[test]
    fn step_backoff_doubles() {
        let config = StepErrorConfig {
            exponential_backoff: true,
            ..retry_config(5, 10)
        };
        let delays: Vec<u64> = (1..=4).map(|n| config.delay_before_retry(n).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80]);
    }
}
