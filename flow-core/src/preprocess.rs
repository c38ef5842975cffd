//! Preprocess configuration: fields that route a shared webhook to a flow and a customer.

use serde::{Deserialize, Serialize};

use crate::field_path::FieldPath;

/// Which payload fields name the target flow, customer and user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreprocessConfig {
    /// Field holding the name of the flow to run.
    pub flow_name_field: Option<FieldPath>,
    /// Field holding the external id of the customer.
    pub external_customer_id_field: Option<FieldPath>,
    /// Field holding the external id of the customer's user.
    pub external_customer_user_id_field: Option<FieldPath>,
}

impl PreprocessConfig {
    /// Returns whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.flow_name_field.is_none()
            && self.external_customer_id_field.is_none()
            && self.external_customer_user_id_field.is_none()
    }
}
