//! The "Record Payment" flow: the payment provider's webhook for a captured payment.
//!
//! Providers deliver a webhook at least once and resend it when they get no response in time,
//! so the flow's queue drops a request whose `paymentId` matches a queued or running execution.
//! A copy that arrives after the first execution finished runs again; the runtime keeps no
//! record of finished dedupe ids.

use flow_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// A captured payment as the payment provider sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Payment {
    /// The provider's payment id; unique per payment and the queue's dedupe id.
    pub(crate) payment_id: String,
    /// The shop's order number the payment belongs to.
    pub(crate) order_id: String,
    /// Captured amount in cents, at least 1.
    pub(crate) amount_cents: u64,
    /// ISO 4217 code of the amount.
    pub(crate) currency: String,
}

/// The receipt the flow books for a payment, journaled so that a retried or recovered
/// execution books the same receipt again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    /// Receipt number, derived from the execution that booked it.
    pub(crate) receipt_id: String,
    /// When the receipt was booked, in milliseconds since the Unix epoch.
    pub(crate) booked_at_millis: u64,
}

/// The result of the "Record Payment" flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordedPayment {
    /// The provider's payment id.
    pub(crate) payment_id: String,
    /// The order the payment belongs to.
    pub(crate) order_id: String,
    /// Captured amount in cents.
    pub(crate) amount_cents: u64,
    /// Currency of the amount.
    pub(crate) currency: String,
    /// Receipt number of the booking.
    pub(crate) receipt_id: String,
    /// Number of the attempt that produced this result, 1 for the first.
    pub(crate) attempt: u32,
}

impl Payment {
    /// Checks that both ids are present, the amount is positive and the currency is a
    /// three-letter upper-case code.
    ///
    /// # Errors
    ///
    /// Returns a message naming the invalid field.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.payment_id.trim().is_empty() {
            return Err("payment has an empty `paymentId`".to_owned());
        }
        if self.order_id.trim().is_empty() {
            return Err(format!("payment {} has an empty `orderId`", self.payment_id));
        }
        if self.amount_cents == 0 {
            return Err(format!("payment {} has `amountCents` 0", self.payment_id));
        }
        let is_code = self.currency.len() == 3 && self.currency.bytes().all(|byte| byte.is_ascii_uppercase());
        if !is_code {
            return Err(format!(
                "payment {} has currency \"{}\"; expected an ISO 4217 code such as \"EUR\"",
                self.payment_id, self.currency
            ));
        }
        Ok(())
    }
}

#[flow(
    name = "Record Payment",
    stable_key = "record-payment",
    description = "Records a captured payment from the payment provider and books its receipt",
    endpoint_security = "customer_required",
    retry(max_attempts = 3, delay_minutes = 1, exponential_backoff),
    queue(parallel, dedupe_id_field = "body.paymentId"),
)]
async fn record_payment(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let payment: Payment = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    payment.validate().map_err(FlowError::terminal)?;
    let currency = ctx.config_var("Currency")?;
    if payment.currency != currency {
        return Err(FlowError::terminal(format!(
            "payment {} is in {}, but this instance books {currency}",
            payment.payment_id, payment.currency
        )));
    }

    let receipt_id = format!("RCPT-{}", ctx.execution_id());
    let receipt = ctx
        .step("book receipt", || {
            let receipt = Receipt {
                receipt_id: receipt_id.clone(),
                booked_at_millis: unix_millis(),
            };
            async move { Ok::<_, FlowError>(receipt) }
        })
        .await?
        .ok_or_else(|| FlowError::new("step `book receipt` returned no receipt"))?;
    ctx.logger().info(format!(
        "recorded payment {} of {} cents for order {} as {}",
        payment.payment_id, payment.amount_cents, payment.order_id, receipt.receipt_id
    ));

    let recorded = RecordedPayment {
        payment_id: payment.payment_id,
        order_id: payment.order_id,
        amount_cents: payment.amount_cents,
        currency: payment.currency,
        receipt_id: receipt.receipt_id,
        attempt: ctx.attempt(),
    };
    Ok(serde_json::to_value(recorded)?.into())
}

/// Returns the current time in milliseconds since the Unix epoch, 0 when the clock is set
/// before 1970.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}
