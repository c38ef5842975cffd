//! Order processing: a synchronous webhook that validates an order, reserves stock through a
//! second flow, keeps running totals in instance state, and answers with the result. Two
//! asynchronous flows receive the events that follow an order:
//!
//! - "Record Payment" (`record-payment`) takes the payment provider's webhook for a captured
//!   payment. Its queue is parallel and drops a request whose `paymentId` matches a queued or
//!   running execution, and the response carries that execution's id and `"deduplicated": true`.
//! - "Post Ledger Entry" (`post-ledger-entry`) applies ledger entries to account balances in
//!   instance state. Its queue is sequential: one entry at a time, in arrival order, also
//!   across restarts. An entry whose `sequence` is not above the last applied one changes
//!   nothing and is recorded under `violations` in the instance state.
//!
//! Both respond with `{"executionId": "..."}` once the execution is stored.
//!
//! Run with `cargo run -p orders -- serve --config examples/orders/flows.toml`, then:
//!
//! ```text
//! curl -s -H 'Api-Key: k_test_abc123' -H 'Content-Type: application/json' \
//!   -d '{"orderId":"A-1001","lines":[{"sku":"WID-1","quantity":2,"unitPriceCents":950}]}' \
//!   http://127.0.0.1:8080/webhooks/acme/process-order
//! curl -s -H 'Api-Key: k_test_pay456' -H 'Content-Type: application/json' \
//!   -d '{"paymentId":"pay_1","orderId":"A-1001","amountCents":1900,"currency":"EUR"}' \
//!   http://127.0.0.1:8080/webhooks/acme/record-payment
//! curl -s -H 'Api-Key: k_test_ledger789' -H 'Content-Type: application/json' \
//!   -d '{"entryId":"L-1","sequence":1,"account":"revenue","amountCents":1900}' \
//!   http://127.0.0.1:8080/webhooks/acme/post-ledger-entry
//! ```

#[cfg(test)]
mod flow_tests;
mod ledger;
mod order;
mod payment;

use flow_runtime::prelude::*;
use order::{Order, OrderResult, Reservation};

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    description = "Validates an order, reserves its stock and answers with the order total",
    synchronous,
    endpoint_security = "customer_required",
    retry(max_attempts = 3, delay_minutes = 1, exponential_backoff),
    queue(sequential),
    schemas(invoke(input = Order, output = OrderResult)),
)]
async fn process_order(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let order: Order = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    order.validate().map_err(FlowError::terminal)?;
    let currency = ctx.config_var("Currency")?;
    ctx.logger().info(format!("processing order {} with {} lines", order.order_id, order.lines.len()));

    // A step: when a later part fails and the execution is retried, the recorded reservation
    // is reused instead of reserving the stock again.
    let reservation: Reservation = ctx
        .step("reserve stock", || async {
            let reserved = ctx.invoke_flow("Reserve Stock", serde_json::to_value(&order)?).await?;
            Ok::<_, FlowError>(serde_json::from_value(reserved.data().cloned().unwrap_or_default())?)
        })
        .await?
        .ok_or_else(|| FlowError::new("the stock reservation gave no result"))?;

    let total_cents = order
        .total_cents()
        .ok_or_else(|| FlowError::terminal(format!("the total of order {} does not fit in 64 bits", order.order_id)))?;
    let order_count: u64 = ctx.instance_state().get("orderCount").unwrap_or(0) + 1;
    let revenue_cents = ctx.instance_state().get::<u64>("revenueCents").unwrap_or(0).saturating_add(total_cents);
    ctx.instance_state().set("orderCount", &order_count)?;
    ctx.instance_state().set("revenueCents", &revenue_cents)?;

    let result = OrderResult {
        fulfilled: true,
        order_id: order.order_id,
        total_cents,
        currency,
        reservation_id: reservation.reservation_id,
        order_count,
    };
    Ok(serde_json::to_value(result)?.into())
}

#[flow(
    name = "Reserve Stock",
    stable_key = "reserve-stock",
    description = "Reserves the order's lines in the instance's warehouse",
    endpoint_security = "customer_required",
)]
async fn reserve_stock(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let order: Order = params
        .trigger
        .body
        .json()
        .map_err(|error| FlowError::terminal(error.to_string()))?;
    let warehouse = ctx.config_var("Warehouse")?;

    for line in &order.lines {
        let key = format!("reserved:{}", line.sku);
        let reserved: u64 = ctx.cross_flow_state().get(&key).unwrap_or(0) + u64::from(line.quantity);
        ctx.cross_flow_state().set(&key, &reserved)?;
    }
    ctx.logger().info(format!("reserved {} lines of order {} in {warehouse}", order.lines.len(), order.order_id));

    let reservation = Reservation {
        reservation_id: format!("RES-{}", order.order_id),
        warehouse,
    };
    Ok(serde_json::to_value(reservation)?.into())
}

flow_runtime::main!(
    Integration::new("orders", "Order Processing", env!("CARGO_PKG_VERSION"))
        .description("Receives orders, reserves stock, records payments, posts ledger entries and keeps running totals per customer")
        .config_var(ConfigVar::new("Warehouse").description("Warehouse that ships the orders").required())
        .config_var(ConfigVar::new("Currency").description("ISO 4217 code of order prices").default_value("EUR"))
);
