//! What a running flow, trigger or hook can reach: config, logger, state and other flows.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use flow_core::{Customer, FlowError, FlowOutput, FlowRef, InstanceRef, IntegrationRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::BoxFuture;
use crate::instance::Instance;
use crate::logger::Logger;
use crate::polling::PollingState;
use crate::step::StepJournal;

/// The context of a trigger; the same type as an execution's.
pub type TriggerContext = Context;

/// A config variable that is missing or does not fit the requested type.
#[derive(Debug, thiserror::Error)]
pub enum ConfigVarError {
    /// The instance sets no value and the variable has no default.
    #[error("config variable `{name}` is not set for instance `{instance}`; set it in the instance's `config = {{ ... }}` in the config file")]
    Missing {
        /// Variable name.
        name: String,
        /// Instance id.
        instance: String,
    },
    /// The value does not deserialize into the requested type.
    #[error("config variable `{name}` of instance `{instance}` is not a valid {expected}: {reason}")]
    Invalid {
        /// Variable name.
        name: String,
        /// Instance id.
        instance: String,
        /// The requested Rust type.
        expected: &'static str,
        /// serde's reason.
        reason: String,
    },
}

/// A key-value state map of one scope, loaded before a run; the keys the run sets or removes
/// are saved when it succeeds.
#[derive(Debug, Default)]
pub struct StateStore {
    values: Mutex<BTreeMap<String, Value>>,
    changes: Mutex<BTreeMap<String, Option<Value>>>,
}

impl StateStore {
    /// Creates a store holding `values`.
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        Self {
            values: Mutex::new(values),
            changes: Mutex::default(),
        }
    }

    /// Returns the value under `key`, deserialized, or `None` when absent or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.get(key).and_then(|value| T::deserialize(value).ok())
    }

    /// Returns the raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    ///
    /// Returns an error when `value` does not serialize to JSON, or is nested deeper than the
    /// store keeps (508 levels).
    pub fn set<T: Serialize>(&self, key: &str, value: &T) -> Result<(), FlowError> {
        let value = crate::store::json::within_depth(serde_json::to_value(value)?)
            .map_err(|depth| FlowError::new(crate::store::json::too_deep(&format!("state value `{key}`"), depth)))?;
        self.values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), value.clone());
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), Some(value));
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        self.values.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_owned(), None);
    }

    /// Returns whether any value was set or removed since loading.
    pub fn is_changed(&self) -> bool {
        !self.changes.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Returns the keys set (`Some`) or removed (`None`) since loading.
    pub fn changes(&self) -> BTreeMap<String, Option<Value>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Returns a copy of every value.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The four state scopes a flow sees.
#[derive(Debug, Default)]
pub struct States {
    /// State of this flow in this instance.
    pub instance: StateStore,
    /// State shared by every flow of this instance.
    pub cross_flow: StateStore,
    /// State shared by every instance of the integration.
    pub integration: StateStore,
    /// State of this execution only; never persisted.
    pub execution: StateStore,
}

/// Runs another flow of the same instance on behalf of a running one.
pub trait FlowInvoker: Send + Sync {
    /// Runs the flow named `flow` (name or stable key) with `data` as its JSON body and returns
    /// its result.
    fn invoke<'a>(&'a self, parent: &'a Context, flow: &'a str, data: Value) -> BoxFuture<'a, Result<FlowOutput, FlowError>>;
}

/// Identity of one run: which execution, flow and attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Execution id.
    pub execution_id: String,
    /// Flow stable key and name.
    pub flow: FlowRef,
    /// Attempt number, 1 for the first run.
    pub attempt: u32,
    /// When the execution started.
    pub started_at: DateTime<Utc>,
}

/// What a flow, trigger or hook can reach while it runs.
pub struct Context {
    run: RunInfo,
    instance: Arc<Instance>,
    integration: IntegrationRef,
    logger: Logger,
    states: Arc<States>,
    invoker: Option<Arc<dyn FlowInvoker>>,
    steps: Option<Arc<StepJournal>>,
    polling: Option<Arc<PollingState>>,
}

impl std::fmt::Debug for Context {
    /// Lists ids only; config values may be secret and are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("execution_id", &self.run.execution_id)
            .field("flow", &self.run.flow.stable_key)
            .field("instance", &self.instance.id)
            .field("attempt", &self.run.attempt)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Creates a context; the runtime and the testing harness call this.
    pub fn new(
        run: RunInfo,
        instance: Arc<Instance>,
        integration: IntegrationRef,
        logger: Logger,
        states: Arc<States>,
        invoker: Option<Arc<dyn FlowInvoker>>,
    ) -> Self {
        Self {
            run,
            instance,
            integration,
            logger,
            states,
            invoker,
            steps: None,
            polling: None,
        }
    }

    /// Gives a polling trigger's context its saved state.
    #[must_use]
    pub fn with_polling(mut self, polling: Arc<PollingState>) -> Self {
        self.polling = Some(polling);
        self
    }

    /// Returns the polling state of a polling flow's trigger: `get_state` and `set_state`.
    ///
    /// # Errors
    ///
    /// Returns an error outside a polling trigger, which has no polling state.
    pub fn polling(&self) -> Result<&PollingState, FlowError> {
        self.polling.as_deref().ok_or_else(|| {
            FlowError::new(format!(
                "flow `{}` has no polling state here: it exists only in the `on_trigger` of a `polling` flow when it runs on its schedule",
                self.run.flow.stable_key.as_deref().unwrap_or_default()
            ))
        })
    }

    /// Sets the journal that [`Context::step`] records into.
    #[must_use]
    pub fn with_steps(mut self, steps: Arc<StepJournal>) -> Self {
        self.steps = Some(steps);
        self
    }

    /// Runs a named step under the flow's `error_config` and journals its result.
    ///
    /// - `fail` (the default): the step's error fails the execution.
    /// - `ignore`: the error is logged and the step gives `None`.
    /// - `retry`: the step runs again up to `max_attempts` more times, `delay_seconds` apart
    ///   (doubling with `exponential_backoff`); after the last failure the error fails the
    ///   execution, or with `ignore_final_error` is logged and the step gives `None`.
    ///
    /// A step that succeeded is journaled in the store, so when the whole execution runs again
    /// (a retry, or recovery after a crash) it returns the recorded result without running.
    /// Names must be stable between attempts; a name used again in one execution is journaled
    /// as `name#2`, `name#3`, ...
    ///
    /// # Errors
    ///
    /// Returns the step's error, prefixed with the step name, when it fails the execution.
    pub async fn step<T, E, F, Fut>(&self, name: &str, step: F) -> Result<Option<T>, FlowError>
    where
        T: Serialize + DeserializeOwned,
        E: Into<FlowError>,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        match &self.steps {
            Some(journal) => journal.run(&self.logger, name, step).await,
            None => {
                let unrecorded = StepJournal::unrecorded(flow_core::StepErrorConfig::default(), Arc::new(crate::clock::SystemClock));
                unrecorded.run(&self.logger, name, step).await
            }
        }
    }

    /// Returns the execution id.
    pub fn execution_id(&self) -> &str {
        &self.run.execution_id
    }

    /// Returns when the execution started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.run.started_at
    }

    /// Returns the attempt number, 1 for the first run.
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// Returns the flow's stable key and name.
    pub fn flow(&self) -> &FlowRef {
        &self.run.flow
    }

    /// Returns the instance's id and name.
    pub fn instance(&self) -> InstanceRef {
        InstanceRef {
            id: Some(self.instance.id.clone()),
            name: Some(self.instance.name.clone()),
        }
    }

    /// Returns the instance's customer.
    pub fn customer(&self) -> &Customer {
        &self.instance.customer
    }

    /// Returns the integration's id, name and version.
    pub fn integration(&self) -> &IntegrationRef {
        &self.integration
    }

    /// Returns the webhook URL of every flow of the instance, keyed by flow name.
    pub fn webhook_urls(&self) -> &BTreeMap<String, String> {
        &self.instance.webhook_urls
    }

    /// Returns the API keys of every flow of the instance, keyed by flow name.
    pub fn webhook_api_keys(&self) -> &BTreeMap<String, Vec<String>> {
        &self.instance.webhook_api_keys_by_name
    }

    /// Returns the URL that invokes the current flow.
    pub fn invoke_url(&self) -> String {
        let name = self.run.flow.name.as_deref().unwrap_or_default();
        self.instance.webhook_urls.get(name).cloned().unwrap_or_default()
    }

    /// Returns a config variable's value as text; a JSON string gives its content, any other
    /// value its JSON text.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigVarError::Missing`] naming the variable and the instance.
    pub fn config_var(&self, name: &str) -> Result<String, ConfigVarError> {
        match self.config_value(name)? {
            Value::String(text) => Ok(text.clone()),
            other => Ok(other.to_string()),
        }
    }

    /// Returns a config variable deserialized into `T`; a string value that holds JSON text
    /// (`"42"`, `"true"`) is parsed first when `T` is not a string.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigVarError::Missing`] or [`ConfigVarError::Invalid`] naming the variable.
    pub fn config<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigVarError> {
        let value = self.config_value(name)?;
        let direct = T::deserialize(value);
        let result = match (direct, value) {
            (Ok(parsed), _) => Ok(parsed),
            (Err(error), Value::String(text)) => serde_json::from_str(text).map_err(|_| error),
            (Err(error), _) => Err(error),
        };
        result.map_err(|error| ConfigVarError::Invalid {
            name: name.to_owned(),
            instance: self.instance.id.clone(),
            expected: std::any::type_name::<T>(),
            // serde's reason quotes the value, which a secret variable must not show.
            reason: if self.instance.secret_config.contains(name) {
                "the value is not shown because the variable is secret".to_owned()
            } else {
                error.to_string()
            },
        })
    }

    fn config_value(&self, name: &str) -> Result<&Value, ConfigVarError> {
        self.instance.config.get(name).ok_or_else(|| ConfigVarError::Missing {
            name: name.to_owned(),
            instance: self.instance.id.clone(),
        })
    }

    /// Returns the logger; its lines are stored with the execution.
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// Returns the state of this flow in this instance.
    pub fn instance_state(&self) -> &StateStore {
        &self.states.instance
    }

    /// Returns the state shared by every flow of this instance.
    pub fn cross_flow_state(&self) -> &StateStore {
        &self.states.cross_flow
    }

    /// Returns the state shared by every instance of the integration.
    pub fn integration_state(&self) -> &StateStore {
        &self.states.integration
    }

    /// Returns the state of this execution only, never persisted.
    pub fn execution_state(&self) -> &StateStore {
        &self.states.execution
    }

    /// Returns the shared state handles, for the runtime to save after a run.
    pub fn states(&self) -> &Arc<States> {
        &self.states
    }

    /// Returns the instance this context runs in.
    pub fn instance_settings(&self) -> &Arc<Instance> {
        &self.instance
    }

    /// Runs another flow of this instance, by name or stable key, with `data` as its JSON
    /// body, and returns its result. The child execution is recorded with this one as parent.
    ///
    /// # Errors
    ///
    /// Returns the child's error, or an error when no flow has that name or key.
    pub async fn invoke_flow(&self, flow: &str, data: Value) -> Result<FlowOutput, FlowError> {
        let Some(invoker) = &self.invoker else {
            return Err(FlowError::new(format!(
                "cannot invoke flow `{flow}`: this context has no runtime attached"
            )));
        };
        invoker.invoke(self, flow, data).await
    }
}
