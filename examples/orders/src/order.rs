//! The order document the webhook receives, and what the flows answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order as the shop sends it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    /// The shop's order number.
    pub(crate) order_id: String,
    /// Ordered items.
    pub(crate) lines: Vec<OrderLine>,
}

/// One item of an order.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderLine {
    /// Stock keeping unit.
    pub(crate) sku: String,
    /// Units ordered, at least 1.
    pub(crate) quantity: u32,
    /// Price of one unit in cents.
    pub(crate) unit_price_cents: u64,
}

/// The answer of the "Process Order" flow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderResult {
    /// Always true: a rejected order fails the execution instead.
    pub(crate) fulfilled: bool,
    /// The shop's order number.
    pub(crate) order_id: String,
    /// Sum of all lines in cents.
    pub(crate) total_cents: u64,
    /// Currency of the prices.
    pub(crate) currency: String,
    /// Id of the stock reservation.
    pub(crate) reservation_id: String,
    /// Orders this instance has processed, this one included.
    pub(crate) order_count: u64,
}

/// The answer of the "Reserve Stock" flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Reservation {
    /// Reservation id.
    pub(crate) reservation_id: String,
    /// Warehouse that holds the stock.
    pub(crate) warehouse: String,
}

impl Order {
    /// Checks that the order has lines, every quantity is positive and no SKU is blank.
    ///
    /// # Errors
    ///
    /// Returns a message naming the first invalid line.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.order_id.trim().is_empty() {
            return Err("order has an empty `orderId`".to_owned());
        }
        if self.lines.is_empty() {
            return Err(format!("order {} has no lines", self.order_id));
        }
        for (index, line) in self.lines.iter().enumerate() {
            if line.quantity == 0 {
                return Err(format!("line {} of order {} has quantity 0", index + 1, self.order_id));
            }
            if line.sku.trim().is_empty() {
                return Err(format!("line {} of order {} has an empty `sku`", index + 1, self.order_id));
            }
        }
        if self.total_cents().is_none() {
            return Err(format!(
                "the total of order {} is over {} cents; check `unitPriceCents` and `quantity`",
                self.order_id,
                u64::MAX
            ));
        }
        Ok(())
    }

    /// Returns the order total in cents, or `None` when it does not fit in a `u64`.
    pub(crate) fn total_cents(&self) -> Option<u64> {
        self.lines.iter().try_fold(0_u64, |total, line| {
            total.checked_add(line.unit_price_cents.checked_mul(u64::from(line.quantity))?)
        })
    }
}
