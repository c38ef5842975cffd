//! The saved state of a polling trigger, such as the cursor of the last record it saw.

use std::sync::{Mutex, PoisonError};

use flow_core::FlowError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Key of the polling state in its state map.
pub(crate) const POLLING_STATE_KEY: &str = "state";

/// A polling trigger's state: loaded before the trigger runs, and saved with the poll's
/// record only when the trigger succeeds, so a failed poll reads the same state next time.
#[derive(Debug, Default)]
pub struct PollingState {
    value: Mutex<Option<Value>>,
    changed: Mutex<bool>,
}

impl PollingState {
    /// Creates a state holding `value` (`None` before the first successful poll).
    pub fn new(value: Option<Value>) -> Self {
        Self {
            value: Mutex::new(value),
            changed: Mutex::new(false),
        }
    }

    /// Returns the saved state deserialized into `T`, or `None` before the first save.
    ///
    /// # Errors
    ///
    /// Returns an error naming `T` when the saved value does not deserialize into it, as after
    /// a change of the state's type. Save a new value with [`PollingState::set_state`].
    pub fn get_state<T: DeserializeOwned>(&self) -> Result<Option<T>, FlowError> {
        let value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(value) = value.as_ref() else {
            return Ok(None);
        };
        T::deserialize(value).map(Some).map_err(|error| {
            FlowError::new(format!(
                "the saved polling state is not a valid {}: {error}; set a new state of that type",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Replaces the state; it is saved when the trigger returns successfully.
    ///
    /// # Errors
    ///
    /// Returns an error when `value` does not serialize to JSON, or is nested deeper than the
    /// store keeps (508 levels).
    pub fn set_state<T: Serialize>(&self, value: &T) -> Result<(), FlowError> {
        let value = crate::store::json::within_depth(serde_json::to_value(value)?)
            .map_err(|depth| FlowError::new(crate::store::json::too_deep("polling state", depth)))?;
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        *self.changed.lock().unwrap_or_else(PoisonError::into_inner) = true;
        Ok(())
    }

    /// Returns the value to save when the trigger set one.
    pub(crate) fn changed_value(&self) -> Option<Value> {
        if !*self.changed.lock().unwrap_or_else(PoisonError::into_inner) {
            return None;
        }
        self.value.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unset_state_reads_as_none() {
        let state = PollingState::new(None);
        assert_eq!(state.get_state::<u64>().expect("reads"), None);
    }

    #[test]
    fn wrong_state_type_names_the_type() {
        let state = PollingState::new(Some(json!("not a number")));
        let error = state.get_state::<u64>().expect_err("wrong type");
        assert!(error.to_string().contains("u64"), "{error}");
    }

    #[test]
    fn unchanged_state_is_not_saved() {
        let state = PollingState::new(Some(json!(3)));
        assert_eq!(state.changed_value(), None);
    }

    #[test]
    fn too_deep_state_is_rejected() {
        let state = PollingState::new(None);
        let nested = (0..600).fold(Value::Null, |inner, _| Value::Array(vec![inner]));

        let error = state.set_state(&nested).expect_err("rejected");

        assert!(error.message().contains("nested 600 levels deep"), "{}", error.message());
        assert_eq!(state.changed_value(), None);
    }

    #[test]
    fn set_state_is_saved() {
        let state = PollingState::new(None);
        state.set_state(&json!({ "cursor": 7 })).expect("sets");
        assert_eq!(state.changed_value(), Some(json!({ "cursor": 7 })));
    }
}
