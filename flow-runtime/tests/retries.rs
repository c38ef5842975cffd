//! Retries on virtual time: counts, delays, durability across restarts, terminal errors and
//! unique request ids.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flow_runtime::core::{BodyData, FlowConfig, FlowError, RetryConfig};
use flow_runtime::definition::{ExecuteFn, Handlers, SourceLocation};
use flow_runtime::store::ExecutionStatus;
use flow_runtime::testing::{TestHarness, TestRequest};
use flow_runtime::Flow;
use serde_json::{Value, json};

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0).single().expect("valid instant")
}

fn flow(retry: Option<RetryConfig>, execute: ExecuteFn) -> Flow {
    Flow {
        config: FlowConfig {
            name: "Sync Orders".into(),
            stable_key: "sync-orders".into(),
            retry,
            ..FlowConfig::default()
        },
        execute,
        handlers: Handlers::default(),
        source: SourceLocation {
            file: file!(),
            line: line!(),
            function: "sync_orders",
        },
    }
}

fn retry(max_attempts: u32, delay_minutes: u32, exponential_backoff: bool) -> Option<RetryConfig> {
    Some(RetryConfig {
        max_attempts,
        delay_minutes,
        exponential_backoff,
        unique_request_id_field: None,
    })
}

fn always_fails() -> ExecuteFn {
    |_, _| Box::pin(async { Err(FlowError::new("ERP is down")) })
}

async fn harness(flow: Flow) -> TestHarness {
    TestHarness::builder().flow(flow).start_at(at(10, 24)).build().await
}

async fn attempt_starts(harness: &TestHarness, id: &str) -> Vec<DateTime<Utc>> {
    harness
        .execution(id)
        .await
        .attempt_history
        .iter()
        .map(|attempt| attempt.started_at)
        .collect()
}

#[tokio::test]
async fn three_retries_with_backoff_run_at_one_two_and_four_minutes() {
    let harness = harness(flow(retry(3, 1, true), always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    for _ in 0..10 {
        harness.advance(Duration::from_secs(60)).await;
    }
    let starts = attempt_starts(&harness, &run.execution_id).await;
    assert_eq!(starts, vec![at(10, 24), at(10, 25), at(10, 27), at(10, 31)]);
}

#[tokio::test]
async fn execution_fails_after_its_last_retry() {
    let harness = harness(flow(retry(3, 1, true), always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(3600)).await;
    for _ in 0..5 {
        harness.advance(Duration::from_secs(3600)).await;
    }
    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Failed);
    assert_eq!(record.summary.attempts, 4);
    let numbers: Vec<u32> = record.attempt_history.iter().map(|attempt| attempt.number).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn flow_without_retry_config_runs_once() {
    let harness = harness(flow(None, always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(86_400)).await;
    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Failed);
    assert_eq!(record.attempt_history.len(), 1);
}

#[tokio::test]
async fn fixed_delay_retries_every_four_minutes() {
    let harness = harness(flow(retry(3, 4, false), always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    for _ in 0..20 {
        harness.advance(Duration::from_secs(60)).await;
    }
    let starts = attempt_starts(&harness, &run.execution_id).await;
    assert_eq!(starts, vec![at(10, 24), at(10, 28), at(10, 32), at(10, 36)]);
}

#[tokio::test]
async fn restart_between_retries_neither_repeats_nor_skips_an_attempt() {
    let harness = harness(flow(retry(3, 1, true), always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(60)).await;
    harness.advance(Duration::from_secs(30)).await;

    let harness = harness.restart().await;
    harness.run_due().await;
    for _ in 0..20 {
        harness.advance(Duration::from_secs(30)).await;
    }
    let starts = attempt_starts(&harness, &run.execution_id).await;
    assert_eq!(starts, vec![at(10, 24), at(10, 25), at(10, 27), at(10, 31)]);
}

#[tokio::test]
async fn first_answer_reports_a_pending_retry() {
    let harness = harness(flow(retry(1, 5, false), always_fails())).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    assert_eq!(run.error(), Some("ERP is down"));
    assert!(matches!(run.completion, flow_runtime::engine::Completion::Failed { retrying: true, .. }));
}

#[tokio::test]
async fn terminal_error_stops_retries_at_once() {
    let terminal: ExecuteFn = |_, _| Box::pin(async { Err(FlowError::terminal("order has no lines")) });
    let harness = harness(flow(retry(5, 1, false), terminal)).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(3600)).await;
    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Failed);
    assert_eq!(record.attempt_history.len(), 1);
}

#[tokio::test]
async fn panic_fails_the_attempt_and_is_retried() {
    let panics: ExecuteFn = |_, _| Box::pin(async { panic!("index out of bounds") });
    let harness = harness(flow(retry(1, 1, false), panics)).await;
    let run = harness.invoke("sync-orders", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(60)).await;
    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.attempt_history.len(), 2);
    assert!(record.attempt_history[0].error.as_deref().unwrap_or_default().contains("index out of bounds"));
}

fn unique_request_flow() -> Flow {
    let mut retry = retry(3, 5, false).expect("config");
    retry.unique_request_id_field = Some("body.data.requestId".parse().expect("valid path"));
    flow(Some(retry), |_, params| {
        Box::pin(async move {
            if params.trigger.body.to_value()["fail"] == json!(true) {
                return Err(FlowError::new("ERP is down"));
            }
            Ok(json!("ok").into())
        })
    })
}

#[tokio::test]
async fn same_unique_request_id_cancels_the_pending_retry() {
    let harness = harness(unique_request_flow()).await;
    let first = harness
        .invoke("sync-orders", TestRequest::json(json!({ "data": { "requestId": "req-42" }, "fail": true })))
        .await;
    let second = harness
        .invoke("sync-orders", TestRequest::json(json!({ "data": { "requestId": "req-42" } })))
        .await;

    let cancelled = harness.execution(&first.execution_id).await;
    assert_eq!(cancelled.summary.status, ExecutionStatus::Cancelled);
    assert_eq!(cancelled.related_id.as_deref(), Some(second.execution_id.as_str()));
    assert!(cancelled.error.as_deref().unwrap_or_default().contains(&second.execution_id));
    assert_eq!(harness.execution(&second.execution_id).await.summary.status, ExecutionStatus::Succeeded);

    harness.advance(Duration::from_secs(3600)).await;
    assert_eq!(harness.execution(&first.execution_id).await.attempt_history.len(), 1);
}

#[tokio::test]
async fn other_unique_request_id_cancels_nothing() {
    let harness = harness(unique_request_flow()).await;
    let first = harness
        .invoke("sync-orders", TestRequest::json(json!({ "data": { "requestId": "req-42" }, "fail": true })))
        .await;
    harness
        .invoke("sync-orders", TestRequest::json(json!({ "data": { "requestId": "req-43" } })))
        .await;
    assert_eq!(harness.execution(&first.execution_id).await.summary.status, ExecutionStatus::Queued);
}

/// Fails its first attempt; from the second on, returns how it read the request body.
fn body_kind_after_first_attempt() -> ExecuteFn {
    |context, params| {
        let attempt = context.attempt();
        Box::pin(async move {
            if attempt == 1 {
                return Err(FlowError::new("ERP is down"));
            }
            let kind = match params.trigger.body.data {
                BodyData::Empty => "empty",
                BodyData::Json(json) if json.is_null() => "JSON null",
                BodyData::Json(_) => "JSON",
                BodyData::Text(_) => "text",
                BodyData::Bytes(_) => "bytes",
            };
            Ok(json!(kind).into())
        })
    }
}

#[tokio::test]
async fn retry_reads_json_null_body_as_sent() {
    let harness = harness(flow(retry(1, 1, false), body_kind_after_first_attempt())).await;
    let run = harness.invoke("sync-orders", TestRequest::json(Value::Null)).await;

    harness.advance(Duration::from_secs(120)).await;

    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.result, Some(json!({ "data": "JSON null" })));
}

#[tokio::test]
async fn retry_reads_non_utf8_text_body_as_bytes() {
    let harness = harness(flow(retry(1, 1, false), body_kind_after_first_attempt())).await;
    let request = TestRequest::bytes("text/plain", vec![233, 116, 233]);
    let run = harness.invoke("sync-orders", request).await;

    harness.advance(Duration::from_secs(120)).await;

    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.result, Some(json!({ "data": "bytes" })));
}

/// The webhook parser accepts 127 levels of nesting, and the stored payload nests the body
/// deeper than that.
#[tokio::test]
async fn retry_reads_deeply_nested_json_body() {
    let harness = harness(flow(retry(1, 1, false), body_kind_after_first_attempt())).await;
    let nested = serde_json::from_str(&format!("{}{}", "[".repeat(127), "]".repeat(127))).expect("parses");
    let run = harness.invoke("sync-orders", TestRequest::json(nested)).await;

    harness.advance(Duration::from_secs(120)).await;

    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.result, Some(json!({ "data": "JSON" })), "error: {:?}", record.error);
}
