//! Steps under each `error_config` handler, and the journal that keeps succeeded steps from
//! running again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flow_runtime::core::{FlowConfig, FlowError, RetryConfig, StepErrorConfig, StepErrorHandler};
use flow_runtime::definition::{ExecuteFn, Handlers, SourceLocation};
use flow_runtime::store::ExecutionStatus;
use flow_runtime::testing::{TestHarness, TestRequest};
use flow_runtime::Flow;
use serde_json::json;

fn flow(error_config: Option<StepErrorConfig>, retry: Option<RetryConfig>, execute: ExecuteFn) -> Flow {
    Flow {
        config: FlowConfig {
            name: "Steps".into(),
            stable_key: "steps".into(),
            error_config,
            retry,
            ..FlowConfig::default()
        },
        execute,
        handlers: Handlers::default(),
        source: SourceLocation {
            file: file!(),
            line: line!(),
            function: "steps",
        },
    }
}

fn handler(handler: StepErrorHandler) -> Option<StepErrorConfig> {
    Some(StepErrorConfig {
        handler,
        ..StepErrorConfig::default()
    })
}

fn retrying(max_attempts: u32, ignore_final_error: bool) -> Option<StepErrorConfig> {
    Some(StepErrorConfig {
        handler: StepErrorHandler::Retry,
        max_attempts: Some(max_attempts),
        delay_seconds: Some(10),
        exponential_backoff: true,
        ignore_final_error,
    })
}

async fn harness(flow: Flow) -> TestHarness {
    TestHarness::builder().flow(flow).build().await
}

#[tokio::test]
async fn failing_step_fails_the_execution_by_default() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            ctx.step("charge card", || async { Err::<u32, _>(FlowError::new("card declined")) }).await?;
            Ok(json!("unreachable").into())
        })
    };
    let harness = harness(flow(None, None, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    assert_eq!(run.error(), Some("step `charge card` failed: card declined"));
}

#[tokio::test]
async fn ignored_step_gives_none_and_the_execution_goes_on() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            let value = ctx.step("optional", || async { Err::<u32, _>(FlowError::new("not found")) }).await?;
            Ok(json!({ "value": value }).into())
        })
    };
    let harness = harness(flow(handler(StepErrorHandler::Ignore), None, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    assert_eq!(run.data(), &json!({ "value": null }));
    let record = harness.execution(&run.execution_id).await;
    assert!(record.logs.iter().any(|line| line.message.contains("step `optional` failed and was ignored")));
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[tokio::test]
async fn retried_step_succeeds_after_failures_with_backoff_on_virtual_time() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            let value = ctx
                .step("fetch", || async {
                    let call = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                    if call < 3 { Err(FlowError::new("timeout")) } else { Ok(call) }
                })
                .await?;
            Ok(json!(value).into())
        })
    };
    let harness = harness(flow(retrying(3, false), None, execute)).await;
    let started = harness.now();
    let run = harness.invoke("steps", TestRequest::empty()).await;
    assert_eq!(run.data(), &json!(3));
    assert_eq!((harness.now() - started).num_seconds(), 30);
}

#[tokio::test]
async fn retried_step_fails_after_its_last_attempt() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            ctx.step("fetch", || async { Err::<u32, _>(FlowError::new("timeout")) }).await?;
            Ok(json!(null).into())
        })
    };
    let harness = harness(flow(retrying(2, false), None, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    assert_eq!(run.error(), Some("step `fetch` failed: timeout"));
}

#[tokio::test]
async fn ignore_final_error_gives_none_after_the_last_attempt() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            let value = ctx.step("fetch", || async { Err::<u32, _>(FlowError::new("timeout")) }).await?;
            Ok(json!({ "value": value }).into())
        })
    };
    let harness = harness(flow(retrying(2, true), None, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    assert_eq!(run.data(), &json!({ "value": null }));
}

static CHARGES: AtomicU32 = AtomicU32::new(0);
static SHIPMENTS: AtomicU32 = AtomicU32::new(0);

#[tokio::test]
async fn succeeded_step_is_not_repeated_when_the_execution_retries() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            let charge = ctx
                .step("charge", || async { Ok::<_, FlowError>(format!("ch_{}", CHARGES.fetch_add(1, Ordering::SeqCst) + 1)) })
                .await?;
            if SHIPMENTS.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(FlowError::new("carrier API down"));
            }
            Ok(json!({ "charge": charge }).into())
        })
    };
    let retry = Some(RetryConfig {
        max_attempts: 2,
        delay_minutes: 1,
        exponential_backoff: false,
        unique_request_id_field: None,
    });
    let harness = harness(flow(None, retry, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    harness.advance(Duration::from_secs(60)).await;

    let record = harness.execution(&run.execution_id).await;
    assert_eq!(record.summary.status, ExecutionStatus::Succeeded);
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1);
    assert_eq!(record.result, Some(json!({ "data": { "charge": "ch_1" } })));
    assert_eq!(record.steps.len(), 1);
}

#[tokio::test]
async fn repeated_step_names_are_journaled_separately() {
    let execute: ExecuteFn = |ctx, _| {
        Box::pin(async move {
            for page in 1..=3 {
                ctx.step("page", || async move { Ok::<_, FlowError>(page) }).await?;
            }
            Ok(json!(null).into())
        })
    };
    let harness = harness(flow(None, None, execute)).await;
    let run = harness.invoke("steps", TestRequest::empty()).await;
    let names: Vec<String> = harness.execution(&run.execution_id).await.steps.into_iter().map(|step| step.name).collect();
    assert_eq!(names, vec!["page", "page#2", "page#3"]);
}
