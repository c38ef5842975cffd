//! Tests of the order flows with the in-process harness: no server, virtual time.

use std::time::Duration;

use flow_runtime::store::ExecutionStatus;
use flow_runtime::testing::{TestHarness, TestRequest};
use serde_json::{Value, json};

async fn harness() -> TestHarness {
    TestHarness::builder()
        .flow(super::process_order::definition())
        .flow(super::reserve_stock::definition())
        .config_var("Warehouse", "Rotterdam DC")
        .config_var("Currency", "EUR")
        .build()
        .await
}

fn order(id: &str, lines: Value) -> TestRequest {
    TestRequest::json(json!({ "orderId": id, "lines": lines }))
}

#[tokio::test]
async fn order_total_and_reservation_are_answered() {
    let harness = harness().await;
    let run = harness
        .invoke("process-order", order("A-1", json!([{ "sku": "WID-1", "quantity": 2, "unitPriceCents": 950 }])))
        .await;
    assert_eq!(run.data()["totalCents"], json!(1900));
    assert_eq!(run.data()["reservationId"], json!("RES-A-1"));
}

#[tokio::test]
async fn reserved_units_add_up_in_cross_flow_state() {
    let harness = harness().await;
    for id in ["A-1", "A-2"] {
        harness
            .invoke("process-order", order(id, json!([{ "sku": "WID-1", "quantity": 2, "unitPriceCents": 1 }])))
            .await;
    }
    assert_eq!(harness.cross_flow_state().await["reserved:WID-1"], json!(4));
}

#[tokio::test]
async fn order_count_is_kept_per_instance() {
    let harness = harness().await;
    let line = json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }]);
    harness.invoke("process-order", order("A-1", line.clone())).await;
    let second = harness.invoke("process-order", order("A-2", line)).await;
    assert_eq!(second.data()["orderCount"], json!(2));
    assert_eq!(harness.flow_state("process-order").await["orderCount"], json!(2));
}

#[tokio::test]
async fn invalid_order_fails_once_and_is_not_retried() {
    let harness = harness().await;
    let run = harness.invoke("process-order", order("A-9", json!([]))).await;
    assert_eq!(run.error(), Some("order A-9 has no lines"));
    harness.advance(Duration::from_secs(3600)).await;
    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Failed);
    assert_eq!(record.attempt_history.len(), 1);
}

#[tokio::test]
async fn order_total_over_64_bits_fails_without_reserving() {
    let harness = harness().await;
    let lines = json!([{ "sku": "WID-1", "quantity": 2, "unitPriceCents": u64::MAX }]);

    let run = harness.invoke("process-order", order("A-2", lines)).await;

    assert!(run.error().is_some_and(|error| error.starts_with("the total of order A-2 is over")), "{:?}", run.error());
    assert!(!harness.cross_flow_state().await.contains_key("reserved:WID-1"));
}

#[tokio::test]
async fn missing_warehouse_fails_the_reservation_naming_the_variable() {
    let harness = TestHarness::builder()
        .flow(super::process_order::definition())
        .flow(super::reserve_stock::definition())
        .config_var("Currency", "EUR")
        .build()
        .await;
    let run = harness
        .invoke("process-order", order("A-1", json!([{ "sku": "S", "quantity": 1, "unitPriceCents": 1 }])))
        .await;
    assert!(run.error().unwrap_or_default().contains("`Warehouse`"), "{:?}", run.error());
}
