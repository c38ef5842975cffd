//! The execution logger: lines kept with the execution and emitted through `tracing`.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use serde::{Deserialize, Serialize};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the flow handled.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// Returns the lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One log line of an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// Writes log lines of one execution: they are kept for the store and emitted as `tracing`
/// events with `execution_id`, `flow` and `instance` fields.
#[derive(Debug, Clone)]
pub struct Logger {
    clock: Arc<dyn Clock>,
    execution_id: Arc<str>,
    flow: Arc<str>,
    instance: Arc<str>,
    entries: Arc<Mutex<Vec<LogEntry>>>,
}

impl Logger {
    /// Creates a logger for one execution; lines are stamped with `clock`'s time.
    pub fn new(clock: Arc<dyn Clock>, execution_id: &str, flow: &str, instance: &str) -> Self {
        Self {
            clock,
            execution_id: execution_id.into(),
            flow: flow.into(),
            instance: instance.into(),
            entries: Arc::default(),
        }
    }

    /// Writes a debug line.
    pub fn debug(&self, message: impl Into<String>) {
        self.write(LogLevel::Debug, message.into());
    }

    /// Writes an info line.
    pub fn info(&self, message: impl Into<String>) {
        self.write(LogLevel::Info, message.into());
    }

    /// Writes a warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.write(LogLevel::Warn, message.into());
    }

    /// Writes an error line.
    pub fn error(&self, message: impl Into<String>) {
        self.write(LogLevel::Error, message.into());
    }

    /// Returns a copy of every line written so far.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn write(&self, level: LogLevel, message: String) {
        let (execution_id, flow, instance) = (&*self.execution_id, &*self.flow, &*self.instance);
        match level {
            LogLevel::Debug => tracing::debug!(execution_id, flow, instance, message = %message, "flow log"),
            LogLevel::Info => tracing::info!(execution_id, flow, instance, message = %message, "flow log"),
            LogLevel::Warn => tracing::warn!(execution_id, flow, instance, message = %message, "flow log"),
            LogLevel::Error => tracing::error!(execution_id, flow, instance, message = %message, "flow log"),
        }
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(LogEntry {
                at: self.clock.now(),
                level,
                message,
            });
    }
}
