//! The supplier's stock API, as the flows call it.
//!
//! - `GET {base}/stock?after=N` returns the stock changes with a sequence number above `N`,
//!   oldest first, and the highest sequence number as `cursor`.
//! - `POST {base}/subscriptions` with `{"url": ...}` subscribes a URL to stock alerts and
//!   returns the subscription's `id`; `DELETE {base}/subscriptions/{id}` ends it.

use flow_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// One change of a SKU's stock level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StockChange {
    pub(crate) sku: String,
    pub(crate) quantity: u64,
    /// The supplier's sequence number of the change.
    pub(crate) seq: u64,
}

/// A page of stock changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StockPage {
    pub(crate) changes: Vec<StockChange>,
    /// The highest sequence number the supplier has; the next poll requests changes after it.
    pub(crate) cursor: u64,
}

/// A new alert subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Subscription {
    pub(crate) id: String,
}

/// Calls the supplier at the instance's `Supplier API URL`.
pub(crate) struct SupplierClient {
    base: String,
    http: reqwest::Client,
}

impl SupplierClient {
    /// Creates a client for the instance's supplier.
    pub(crate) fn for_instance(ctx: &Context) -> Result<Self, FlowError> {
        let base = ctx.config_var("Supplier API URL")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// Returns the stock changes after sequence number `after`.
    pub(crate) async fn stock_after(&self, after: u64) -> Result<StockPage, FlowError> {
        let url = format!("{}/stock?after={after}", self.base);
        let response = self.http.get(&url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    /// Subscribes `url` to the supplier's stock alerts.
    pub(crate) async fn subscribe(&self, url: &str) -> Result<Subscription, FlowError> {
        let response = self
            .http
            .post(format!("{}/subscriptions", self.base))
            .json(&serde_json::json!({ "url": url }))
            .send()
            .await?
            .error_for_status()?;
        Ok(response.json().await?)
    }

    /// Ends a subscription.
    pub(crate) async fn unsubscribe(&self, id: &str) -> Result<(), FlowError> {
        self.http
            .delete(format!("{}/subscriptions/{id}", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
