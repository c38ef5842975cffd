//! Queue configuration: how many executions of a flow run at once and in what order.

use serde::{Deserialize, Serialize};

use crate::field_path::FieldPath;
use crate::violation::{Violation, check_range};

/// Allowed values of a throttled queue's concurrency limit.
pub const CONCURRENCY_LIMIT: std::ops::RangeInclusive<u64> = 2..=15;

/// The order and concurrency of a flow's executions, per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum QueueMode {
    /// Executions run as soon as a worker is free.
    #[default]
    Parallel,
    /// At most `concurrency_limit` executions run at once; the rest wait in arrival order.
    #[serde(rename_all = "camelCase")]
    Throttled {
        /// Executions allowed to run at once.
        concurrency_limit: u32,
    },
    /// One execution at a time, in strict arrival order.
    Sequential,
}

impl QueueMode {
    /// Builds the mode from the attribute's flags: at most one of `parallel`, `throttled` and
    /// `sequential`, and `concurrency_limit` only with `throttled`. No flag means parallel.
    ///
    /// # Errors
    ///
    /// Returns every [`Violation`]: two modes at once, a limit without `throttled`, or
    /// `throttled` without a limit.
    pub fn from_flags(
        parallel: bool,
        throttled: bool,
        sequential: bool,
        concurrency_limit: Option<u32>,
    ) -> Result<Self, Vec<Violation>> {
        let mut violations = Vec::new();
        let chosen: Vec<&'static str> = [
            ("queue.parallel", parallel),
            ("queue.throttled", throttled),
            ("queue.sequential", sequential),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        if chosen.len() > 1 {
            violations.push(Violation::spanning(
                &chosen,
                "a queue has one mode; keep one of `parallel`, `throttled` or `sequential`",
            ));
        }
        if concurrency_limit.is_some() && !throttled {
            violations.push(Violation::new(
                "queue.concurrency_limit",
                "`concurrency_limit` applies only to throttled queues; e.g. `queue(throttled, concurrency_limit = 4)`",
            ));
        }
        if throttled && concurrency_limit.is_none() {
            violations.push(Violation::new(
                "queue.throttled",
                "`throttled` needs a `concurrency_limit` from 2 to 15; e.g. `queue(throttled, concurrency_limit = 4)`",
            ));
        }
        if !violations.is_empty() {
            return Err(violations);
        }

        Ok(match (throttled, sequential, concurrency_limit) {
            (true, _, Some(concurrency_limit)) => Self::Throttled { concurrency_limit },
            (_, true, _) => Self::Sequential,
            _ => Self::Parallel,
        })
    }
}

/// Queue settings of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueConfig {
    /// Ordering and concurrency.
    pub mode: QueueMode,
    /// Payload field whose value identifies a request: a request matching a queued or running
    /// execution is acknowledged with that execution's id and not run again.
    pub dedupe_id_field: Option<FieldPath>,
    /// For scheduled flows: a tick is skipped while the previous run is still going.
    pub singleton: bool,
}

impl QueueConfig {
    /// Checks the concurrency limit range.
    pub fn validate(&self) -> Vec<Violation> {
        match self.mode {
            QueueMode::Throttled { concurrency_limit } => check_range(
                "queue.concurrency_limit",
                u64::from(concurrency_limit),
                CONCURRENCY_LIMIT,
                "queue(throttled, concurrency_limit = 4)",
            )
            .err()
            .into_iter()
            .collect(),
            QueueMode::Parallel | QueueMode::Sequential => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_limit_of_one_is_rejected() {
        let config = QueueConfig {
            mode: QueueMode::Throttled { concurrency_limit: 1 },
            ..QueueConfig::default()
        };
        assert_eq!(config.validate()[0].keys, vec!["queue.concurrency_limit"]);
    }

    #[test]
    fn throttled_limit_of_fifteen_is_accepted() {
        let config = QueueConfig {
            mode: QueueMode::Throttled { concurrency_limit: 15 },
            ..QueueConfig::default()
        };
        assert!(config.validate().is_empty());
    }

    #[test]
    fn two_modes_are_rejected_on_both_keys() {
        let violations = QueueMode::from_flags(true, false, true, None).expect_err("two modes");
        assert_eq!(violations[0].keys, vec!["queue.parallel", "queue.sequential"]);
    }

    #[test]
    fn limit_without_throttled_is_rejected() {
        let violations = QueueMode::from_flags(false, false, true, Some(4)).expect_err("limit");
        assert_eq!(violations[0].keys, vec!["queue.concurrency_limit"]);
    }

    #[test]
    fn no_flag_means_parallel() {
        assert_eq!(QueueMode::from_flags(false, false, false, None), Ok(QueueMode::Parallel));
    }

    #[test]
    fn mode_serializes_with_a_type_tag() {
        let json = serde_json::to_value(QueueMode::Throttled { concurrency_limit: 4 }).expect("serializes");
        assert_eq!(json, serde_json::json!({ "type": "throttled", "concurrencyLimit": 4 }));
    }
}
