//! Steps: named parts of an execution whose results are journaled and whose errors follow the
//! flow's `error_config`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use flow_core::{FlowError, StepErrorConfig, StepErrorHandler};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock::Clock;
use crate::logger::Logger;
use crate::store::{StepRecord, Store};

/// The step journal of one attempt: results recorded by earlier attempts, and where new ones go.
pub struct StepJournal {
    config: StepErrorConfig,
    recorded: Mutex<BTreeMap<String, Value>>,
    occurrences: Mutex<HashMap<String, u32>>,
    store: Option<(Arc<dyn Store>, String)>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StepJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepJournal").field("config", &self.config).finish_non_exhaustive()
    }
}

impl StepJournal {
    /// Creates a journal that records into `store` for `execution_id`, starting from the
    /// results earlier attempts recorded.
    pub fn new(
        config: StepErrorConfig,
        recorded: BTreeMap<String, Value>,
        store: Arc<dyn Store>,
        execution_id: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config,
            recorded: Mutex::new(recorded),
            occurrences: Mutex::default(),
            store: Some((store, execution_id.to_owned())),
            clock,
        }
    }

    /// Creates a journal that records nothing, for triggers and hooks.
    pub fn unrecorded(config: StepErrorConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            config,
            recorded: Mutex::default(),
            occurrences: Mutex::default(),
            store: None,
            clock,
        }
    }

    /// Returns the journal key of the next use of `name`: the name, then `name#2`, `name#3`, ...
    fn next_key(&self, name: &str) -> String {
        let mut occurrences = self.occurrences.lock().unwrap_or_else(PoisonError::into_inner);
        let count = occurrences.entry(name.to_owned()).or_insert(0);
        *count += 1;
        if *count == 1 { name.to_owned() } else { format!("{name}#{count}") }
    }

    async fn record(&self, key: &str, result: Value) -> Result<(), FlowError> {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), result.clone());
        let Some((store, execution_id)) = &self.store else {
            return Ok(());
        };
        let step = StepRecord {
            name: key.to_owned(),
            result,
            recorded_at: self.clock.now(),
        };
        store
            .record_step(execution_id, step)
            .await
            .map_err(|error| FlowError::new(format!("could not journal step `{key}`: {error}")))
    }

    /// Runs a step; see [`Context::step`](crate::Context::step).
    pub(crate) async fn run<T, E, F, Fut>(&self, logger: &Logger, name: &str, mut step: F) -> Result<Option<T>, FlowError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<FlowError>,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let key = self.next_key(name);
        let journaled = self.recorded.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        if let Some(value) = journaled {
            if value.is_null() {
                return Ok(None);
            }
            let result = T::deserialize(value)
                .map_err(|error| FlowError::terminal(format!("journaled result of step `{key}` no longer fits its type: {error}")))?;
            return Ok(Some(result));
        }

        let mut retries = 0_u32;
        loop {
            let error = match step().await {
                Ok(result) => {
                    let value = serde_json::to_value(&result)
                        .map_err(|error| FlowError::terminal(format!("result of step `{key}` does not serialize: {error}")))?;
                    let value = crate::store::json::within_depth(value).map_err(|depth| {
                        FlowError::terminal(crate::store::json::too_deep(&format!("result of step `{key}`"), depth))
                    })?;
                    self.record(&key, value).await?;
                    return Ok(Some(result));
                }
                Err(error) => error.into(),
            };

            match self.config.handler {
                StepErrorHandler::Fail => {
                    return Err(step_failed(&key, &error));
                }
                StepErrorHandler::Ignore => {
                    logger.warn(format!("step `{key}` failed and was ignored: {}", error.message()));
                    self.record(&key, Value::Null).await?;
                    return Ok(None);
                }
                StepErrorHandler::Retry => {
                    let max_retries = self.config.retries();
                    if retries < max_retries && !error.is_terminal() {
                        retries += 1;
                        let delay = self.config.delay_before_retry(retries);
                        logger.warn(format!(
                            "step `{key}` failed, retry {retries} of {max_retries} in {} s: {}",
                            delay.as_secs(),
                            error.message()
                        ));
                        self.clock.sleep(delay).await;
                        continue;
                    }
                    if self.config.ignore_final_error {
                        logger.warn(format!("step `{key}` failed after {retries} retries; error ignored: {}", error.message()));
                        self.record(&key, Value::Null).await?;
                        return Ok(None);
                    }
                    return Err(step_failed(&key, &error));
                }
            }
        }
    }
}

fn step_failed(key: &str, error: &FlowError) -> FlowError {
    let message = format!("step `{key}` failed: {}", error.message());
    if error.is_terminal() { FlowError::terminal(message) } else { FlowError::new(message) }
}
