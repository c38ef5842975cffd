//! Values nested deeper than the store keeps fail with an error, instead of overflowing the
//! stack when the runtime serializes or drops them.

mod common;

use common::{config, flow};
use flow_runtime::core::FlowError;
use flow_runtime::engine::Completion;
use flow_runtime::store::ExecutionStatus;
use flow_runtime::testing::{TestHarness, TestRequest};
use serde_json::{Value, json};

/// Far deeper than a recursive serialize or drop survives on a test thread's stack.
const DEEP: usize = 100_000;

/// Deeper than the store keeps, and shallow enough to serialize and drop recursively.
const TOO_DEEP: usize = 600;

/// Builds `depth` nested arrays without recursion.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

fn error_of(completion: &Completion) -> &str {
    match completion {
        Completion::Failed { error, .. } => error,
        Completion::Succeeded(_) => panic!("the execution succeeded"),
    }
}

#[tokio::test]
async fn deep_result_fails_the_execution() {
    let returns_deep = flow(config("deep-result"), |_, _| Box::pin(async { Ok(nested(DEEP).into()) }));
    let harness = TestHarness::builder().flow(returns_deep).build().await;

    let run = harness.invoke("deep-result", TestRequest::json(json!({}))).await;

    assert!(error_of(&run.completion).contains("nested 100000 levels deep"), "{:?}", run.completion);
    assert_eq!(harness.execution(&run.execution_id).await.summary.status, ExecutionStatus::Failed);
}

#[tokio::test]
async fn deep_state_value_is_rejected() {
    let stores_deep = flow(config("deep-state"), |context, _| {
        Box::pin(async move {
            // `set` serializes the value it borrows, so the value must survive a recursive walk.
            let error = context.instance_state().set("deep", &nested(TOO_DEEP)).expect_err("rejected");
            Err::<flow_runtime::core::FlowOutput, FlowError>(error)
        })
    });
    let harness = TestHarness::builder().flow(stores_deep).build().await;

    let run = harness.invoke("deep-state", TestRequest::json(json!({}))).await;

    assert!(error_of(&run.completion).contains("state value `deep` is nested"), "{:?}", run.completion);
}

#[tokio::test]
async fn invoke_flow_with_deep_data_fails() {
    let invokes_deep = flow(config("caller"), |context, _| {
        Box::pin(async move { context.invoke_flow("callee", nested(DEEP)).await })
    });
    let callee = flow(config("callee"), |_, _| Box::pin(async { Ok(json!("ran").into()) }));
    let harness = TestHarness::builder().flow(invokes_deep).flow(callee).build().await;

    let run = harness.invoke("caller", TestRequest::json(json!({}))).await;

    assert!(error_of(&run.completion).contains("its data is nested 100000 levels deep"), "{:?}", run.completion);
    assert!(harness.executions("callee").await.is_empty(), "the callee ran");
}

#[tokio::test]
async fn trigger_with_deep_body_is_rejected() {
    let mut deep_trigger = flow(config("deep-trigger"), |_, _| Box::pin(async { Ok(json!("ran").into()) }));
    deep_trigger.handlers.on_trigger = Some(|_, mut payload| {
        Box::pin(async move {
            payload.body.data = flow_runtime::core::BodyData::Json(nested(DEEP).into());
            Ok(flow_runtime::core::TriggerResult::new(payload))
        })
    });
    let harness = TestHarness::builder().flow(deep_trigger).build().await;

    let rejection = harness.run_trigger("deep-trigger", TestRequest::json(json!({}))).await.expect_err("rejected");

    assert_eq!(rejection.status, 500);
    assert!(rejection.message.contains("payload body is nested 100000 levels deep"), "{}", rejection.message);
}

#[tokio::test]
async fn trigger_with_text_body_keeps_it() {
    let mut text_trigger = flow(config("text-trigger"), |_, _| Box::pin(async { Ok(json!("ran").into()) }));
    text_trigger.handlers.on_trigger = Some(|_, mut payload| {
        Box::pin(async move {
            payload.body.data = flow_runtime::core::BodyData::Text("plain".to_owned());
            Ok(flow_runtime::core::TriggerResult::new(payload))
        })
    });
    let harness = TestHarness::builder().flow(text_trigger).build().await;

    let triggered = harness.run_trigger("text-trigger", TestRequest::json(json!({}))).await.expect("accepted");

    assert_eq!(triggered.payload.body.data, flow_runtime::core::BodyData::Text("plain".to_owned()));
}
