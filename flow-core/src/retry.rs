//! Execution retry configuration: how often and how late a failed execution runs again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::field_path::FieldPath;
use crate::violation::{Violation, check_range};

/// Allowed values of [`RetryConfig::max_attempts`].
pub const RETRY_MAX_ATTEMPTS: std::ops::RangeInclusive<u64> = 0..=10;
/// Allowed values of [`RetryConfig::delay_minutes`].
pub const RETRY_DELAY_MINUTES: std::ops::RangeInclusive<u64> = 0..=60;
/// Upper bound of any retry delay, backoff included: 24 hours.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How a failed execution is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// Retries after the first run: `3` means at most 4 runs.
    pub max_attempts: u32,
    /// Delay before the first retry, in minutes.
    pub delay_minutes: u32,
    /// Doubles the delay after each failed attempt, up to [`MAX_RETRY_DELAY`].
    pub exponential_backoff: bool,
    /// Payload field whose value identifies a request: a new execution with the same value
    /// cancels pending retries of older ones.
    pub unique_request_id_field: Option<FieldPath>,
}

impl RetryConfig {
    /// Checks the ranges of `max_attempts` and `delay_minutes`.
    pub fn validate(&self) -> Vec<Violation> {
        [
            check_range(
                "retry.max_attempts",
                u64::from(self.max_attempts),
                RETRY_MAX_ATTEMPTS,
                "retry(max_attempts = 3, delay_minutes = 5)",
            ),
            check_range(
                "retry.delay_minutes",
                u64::from(self.delay_minutes),
                RETRY_DELAY_MINUTES,
                "retry(max_attempts = 3, delay_minutes = 5)",
            ),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect()
    }

    /// Returns the delay before retry number `retry` (1 for the first retry).
    ///
    /// With backoff the delay is `delay_minutes * 2^(retry - 1)`; every delay is capped at
    /// [`MAX_RETRY_DELAY`], and the arithmetic saturates, so any `retry` is safe.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let base_minutes = u64::from(self.delay_minutes);
        let minutes = if self.exponential_backoff {
            let doublings = retry.saturating_sub(1);
            let factor = 1_u64.checked_shl(doublings).unwrap_or(u64::MAX);
            base_minutes.saturating_mul(factor)
        } else {
            base_minutes
        };
        Duration::from_secs(minutes.saturating_mul(60)).min(MAX_RETRY_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(delay_minutes: u32, exponential_backoff: bool) -> RetryConfig {
        RetryConfig {
            max_attempts: 10,
            delay_minutes,
            exponential_backoff,
            unique_request_id_field: None,
        }
    }

    fn minutes(config: &RetryConfig, retry: u32) -> u64 {
        config.delay_before_retry(retry).as_secs() / 60
    }

    #[test]
    fn backoff_doubles_until_the_cap() {
        let config = retry(3, true);
        let delays: Vec<u64> = (1..=10).map(|n| minutes(&config, n)).collect();
        assert_eq!(delays, vec![3, 6, 12, 24, 48, 96, 192, 384, 768, 1440]);
    }

    #[test]
    fn backoff_saturates_for_huge_retry_numbers() {
        let config = retry(3, true);
        assert_eq!(minutes(&config, 64), 1440);
        assert_eq!(minutes(&config, 65), 1440);
        assert_eq!(minutes(&config, 1000), 1440);
        assert_eq!(minutes(&config, u32::MAX), 1440);
    }

    #[test]
    fn backoff_from_sixty_minutes_caps_at_a_day() {
        let config = retry(60, true);
        let delays: Vec<u64> = (1..=7).map(|n| minutes(&config, n)).collect();
        assert_eq!(delays, vec![60, 120, 240, 480, 960, 1440, 1440]);
    }

    #[test]
    fn fixed_delay_stays_constant() {
        let config = retry(4, false);
        assert!((1..=5).all(|n| minutes(&config, n) == 4));
    }

    #[test]
    fn validate_rejects_eleven_attempts() {
        let mut config = retry(5, false);
        config.max_attempts = 11;
        let violations = config.validate();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].keys, vec!["retry.max_attempts"]);
    }

    #[test]
    fn validate_rejects_delay_over_an_hour() {
        let config = retry(61, false);
        let violations = config.validate();
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].keys, vec!["retry.delay_minutes"]);
    }
}
