//! Stock levels: the polling sync and the pushed alerts, both writing the `stock` state.

use std::collections::BTreeMap;

use flow_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::supplier::{StockChange, SupplierClient};

/// Key of the stock levels, by SKU, in the state shared by the instance's flows.
pub(crate) const STOCK_KEY: &str = "stock";

/// Key of the alert subscription id in the state of the "Stock Alerts" flow.
const SUBSCRIPTION_KEY: &str = "subscription";

/// The polling cursor: the supplier's highest sequence number already applied.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) after: u64,
}

/// The body of a sync execution and of a pushed alert.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StockChanges {
    pub(crate) changes: Vec<StockChange>,
}

/// Requests the stock changes after the saved cursor. A failed request keeps the cursor, so
/// the next poll requests the same changes again.
async fn poll_supplier(ctx: &TriggerContext, mut payload: TriggerPayload) -> Result<TriggerResult, TriggerError> {
    let client = SupplierClient::for_instance(ctx).map_err(|error| TriggerError::internal(error.to_string()))?;
    let polling = ctx.polling().map_err(|error| TriggerError::internal(error.to_string()))?;
    let cursor: Cursor = polling
        .get_state()
        .map_err(|error| TriggerError::internal(error.to_string()))?
        .unwrap_or_default();

    let page = client
        .stock_after(cursor.after)
        .await
        .map_err(|error| TriggerError::internal(format!("the supplier's stock API failed: {error}")))?;
    if page.changes.is_empty() {
        return Ok(TriggerResult::no_changes());
    }

    polling
        .set_state(&Cursor { after: page.cursor })
        .map_err(|error| TriggerError::internal(error.to_string()))?;
    ctx.logger().info(format!("{} stock changes after {}", page.changes.len(), cursor.after));
    payload.body = Body {
        data: BodyData::Json(serde_json::to_value(StockChanges { changes: page.changes }).map_err(|error| TriggerError::internal(error.to_string()))?.into()),
        content_type: Some("application/json".to_owned()),
    };
    Ok(TriggerResult::new(payload))
}

/// Writes stock changes into the `stock` state and returns how many SKUs changed.
fn apply(ctx: &Context, changes: &[StockChange]) -> Result<usize, FlowError> {
    let mut stock: BTreeMap<String, u64> = ctx.cross_flow_state().get(STOCK_KEY).unwrap_or_default();
    for change in changes {
        stock.insert(change.sku.clone(), change.quantity);
    }
    ctx.cross_flow_state().set(STOCK_KEY, &stock)?;
    Ok(changes.len())
}

#[flow(
    name = "Sync Stock Levels",
    stable_key = "sync-stock",
    description = "Polls the supplier for stock changes and applies them",
    polling,
    schedule(config_var = "Poll Schedule"),
    on_trigger = poll_supplier,
    queue(parallel, singleton),
)]
pub(crate) async fn sync_stock(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let body: StockChanges = params.trigger.body.json().map_err(|error| FlowError::terminal(error.to_string()))?;
    let updated = apply(ctx, &body.changes)?;
    Ok(serde_json::json!({ "updated": updated }).into())
}

/// Subscribes this flow's webhook URL to the supplier's alerts and keeps the subscription id.
async fn subscribe_alerts(ctx: &Context) -> Result<(), FlowError> {
    let url = ctx
        .webhook_urls()
        .get("Stock Alerts")
        .cloned()
        .ok_or_else(|| FlowError::new("the instance has no webhook URL for \"Stock Alerts\""))?;
    let subscription = SupplierClient::for_instance(ctx)?.subscribe(&url).await?;
    ctx.logger().info(format!("subscribed {url} as {}", subscription.id));
    ctx.instance_state().set(SUBSCRIPTION_KEY, &subscription.id)?;
    Ok(())
}

/// Ends the subscription made on deploy, if any.
async fn unsubscribe_alerts(ctx: &Context) -> Result<(), FlowError> {
    let Some(id) = ctx.instance_state().get::<String>(SUBSCRIPTION_KEY) else {
        ctx.logger().warn("no alert subscription to end");
        return Ok(());
    };
    SupplierClient::for_instance(ctx)?.unsubscribe(&id).await?;
    ctx.instance_state().remove(SUBSCRIPTION_KEY);
    Ok(())
}

#[flow(
    name = "Stock Alerts",
    stable_key = "stock-alerts",
    description = "Applies stock changes the supplier pushes",
    webhook_lifecycle(create = subscribe_alerts, delete = unsubscribe_alerts),
)]
pub(crate) async fn stock_alerts(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let body: StockChanges = params.trigger.body.json().map_err(|error| FlowError::terminal(error.to_string()))?;
    let updated = apply(ctx, &body.changes)?;
    Ok(serde_json::json!({ "updated": updated }).into())
}
