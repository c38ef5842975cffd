//! Tests of the stock flows with the in-process harness and virtual time, against a mock
//! supplier on 127.0.0.1.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flow_runtime::store::{ExecutionStatus, TickOutcome};
use flow_runtime::testing::{TestHarness, TestRequest};
use serde_json::{Value, json};

use crate::supplier_mock::MockSupplier;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn utc(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).single().expect("valid instant")
}

async fn harness(supplier: &MockSupplier, start: DateTime<Utc>) -> TestHarness {
    TestHarness::builder()
        .integration(crate::integration())
        .flow(crate::stock::sync_stock::definition())
        .flow(crate::stock::stock_alerts::definition())
        .flow(crate::report::daily_stock_report::definition())
        .config_var("Supplier API URL", supplier.base.clone())
        .start_at(start)
        .build()
        .await
}

async fn stock(harness: &TestHarness) -> Value {
    harness.cross_flow_state().await.get("stock").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn poll_applies_new_stock_levels() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    supplier.change("WID-2", 3);
    let harness = harness(&supplier, utc(2, 10, 0)).await;

    harness.advance(5 * MINUTE).await;

    assert_eq!(stock(&harness).await, json!({ "WID-1": 40, "WID-2": 3 }));
}

#[tokio::test]
async fn poll_asks_only_for_changes_after_the_cursor() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    let harness = harness(&supplier, utc(2, 10, 0)).await;
    harness.advance(5 * MINUTE).await;

    supplier.change("WID-1", 38);
    harness.advance(5 * MINUTE).await;

    assert_eq!(supplier.lock().stock_requests, vec![0, 1]);
    assert_eq!(harness.saved_polling_state("sync-stock").await, Some(json!({ "after": 2 })));
}

#[tokio::test]
async fn poll_without_changes_records_no_execution() {
    let supplier = MockSupplier::start().await;
    let harness = harness(&supplier, utc(2, 10, 0)).await;

    harness.advance(15 * MINUTE).await;

    let outcomes: Vec<_> = harness.ticks("sync-stock").await.iter().map(|tick| tick.outcome).collect();
    assert_eq!(outcomes, vec![TickOutcome::NoChanges; 3]);
    assert!(harness.executions("sync-stock").await.is_empty());
}

#[tokio::test]
async fn unavailable_supplier_keeps_the_cursor() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    let harness = harness(&supplier, utc(2, 10, 0)).await;
    harness.advance(5 * MINUTE).await;

    supplier.change("WID-1", 12);
    supplier.lock().unavailable = true;
    harness.advance(5 * MINUTE).await;
    supplier.lock().unavailable = false;
    harness.advance(5 * MINUTE).await;

    let outcomes: Vec<_> = harness.ticks("sync-stock").await.iter().map(|tick| tick.outcome).collect();
    assert_eq!(outcomes, vec![TickOutcome::Started, TickOutcome::TriggerFailed, TickOutcome::Started]);
    assert_eq!(stock(&harness).await, json!({ "WID-1": 12 }));
}

#[tokio::test]
async fn report_fires_at_seven_new_york() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    supplier.change("WID-2", 3);
    let harness = harness(&supplier, utc(6, 0, 0)).await;

    // 07:00 EST on 6 March 2026 is 12:00 UTC.
    harness.advance(DAY).await;

    let ticks = harness.ticks("daily-stock-report").await;
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].scheduled_at, utc(6, 12, 0));
}

#[tokio::test]
async fn report_moves_with_daylight_saving_time() {
    let supplier = MockSupplier::start().await;
    let harness = harness(&supplier, utc(7, 13, 0)).await;

    // New York moves to summer time on 8 March 2026, so 07:00 is 12:00 UTC on the 8th and
    // 11:00 UTC on the 9th.
    harness.advance(2 * DAY).await;

    let instants: Vec<_> = harness.ticks("daily-stock-report").await.iter().map(|tick| tick.scheduled_at).collect();
    assert_eq!(instants, vec![utc(8, 11, 0), utc(9, 11, 0)]);
}

#[tokio::test]
async fn report_lists_low_stock() {
    let supplier = MockSupplier::start().await;
    supplier.change("WID-1", 40);
    supplier.change("WID-2", 3);
    let harness = harness(&supplier, utc(6, 11, 50)).await;

    harness.advance(15 * MINUTE).await;

    let tick = harness.ticks("daily-stock-report").await.pop().expect("the report ran");
    let report = harness.execution(tick.execution_id.as_deref().expect("started")).await;
    assert_eq!(report.summary.status, ExecutionStatus::Succeeded);
    assert_eq!(report.result, Some(json!({ "data": { "reportDate": "2026-03-06", "skus": 2, "lowStock": { "WID-2": 3 } } })));
}

#[tokio::test]
async fn deploy_subscribes_the_alert_webhook() {
    let supplier = MockSupplier::start().await;
    let harness = harness(&supplier, utc(2, 10, 0)).await;

    harness.deploy().await.expect("deploys");

    let subscriptions = supplier.lock().subscriptions.clone();
    assert_eq!(subscriptions, vec![("sub_1".to_owned(), "http://127.0.0.1:8080/webhooks/test/stock-alerts".to_owned())]);
}

#[tokio::test]
async fn delete_ends_the_subscription() {
    let supplier = MockSupplier::start().await;
    let harness = harness(&supplier, utc(2, 10, 0)).await;
    harness.deploy().await.expect("deploys");

    harness.delete().await.expect("deletes");

    assert!(supplier.lock().subscriptions.is_empty());
}

#[tokio::test]
async fn deploy_without_supplier_fails_naming_the_hook() {
    let supplier = MockSupplier::start().await;
    let harness = TestHarness::builder()
        .integration(crate::integration())
        .flow(crate::stock::stock_alerts::definition())
        .config_var("Supplier API URL", format!("{}/missing", supplier.base))
        .build()
        .await;

    let error = harness.deploy().await.expect_err("the supplier returns 404");

    assert!(error.to_string().contains("flow \"stock-alerts\" webhook_lifecycle.create failed"), "{error}");
}

#[tokio::test]
async fn pushed_alert_updates_stock() {
    let supplier = MockSupplier::start().await;
    let harness = harness(&supplier, utc(2, 10, 0)).await;

    let run = harness
        .invoke("stock-alerts", TestRequest::json(json!({ "changes": [{ "sku": "WID-9", "quantity": 0, "seq": 7 }] })))
        .await;

    assert_eq!(run.data()["updated"], json!(1));
    assert_eq!(stock(&harness).await, json!({ "WID-9": 0 }));
}
