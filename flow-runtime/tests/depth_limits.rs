//! Values at the depth limit read back from the store after a restart: a flow's result, a
//! state value, a step result and `invoke_flow` data. One level more fails a result.

mod common;

use flow_runtime::Flow;
use flow_runtime::core::FlowError;
use flow_runtime::definition::ExecuteFn;
use flow_runtime::engine::Completion;
use flow_runtime::store::ExecutionStatus;
use flow_runtime::testing::{TestHarness, TestRequest};
use serde_json::{Value, json};

/// The deepest value the store keeps.
const LIMIT: usize = 508;

fn arrays(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

fn objects(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "k": inner }))
}

/// Builds the value the request describes: `{"depth": N, "shape": "arrays" | "objects" | "text"}`.
fn requested_value(params: &flow_runtime::core::ExecutionParams) -> Value {
    let request = params.trigger.body.to_value();
    let depth = usize::try_from(request["depth"].as_u64().unwrap_or(0)).unwrap_or(0);
    match request["shape"].as_str() {
        Some("objects") => objects(depth),
        Some("text") => Value::String("[".repeat(depth)),
        _ => arrays(depth),
    }
}

fn ask(depth: usize, shape: &str) -> TestRequest {
    TestRequest::json(json!({ "depth": depth, "shape": shape }))
}

fn flow(stable_key: &str, execute: ExecuteFn) -> Flow {
    common::flow(common::config(stable_key), execute)
}

fn failure(completion: &Completion) -> Option<&str> {
    match completion {
        Completion::Failed { error, .. } => Some(error),
        Completion::Succeeded(_) => None,
    }
}

#[tokio::test]
async fn result_depth_limit_after_restart() {
    for (depth, fails) in [(LIMIT, false), (LIMIT + 1, true)] {
        for shape in ["arrays", "objects"] {
            let returns = flow("returns", |_, params| Box::pin(async move { Ok(requested_value(&params).into()) }));
            let harness = TestHarness::builder().flow(returns).build().await;
            let run = harness.invoke("returns", ask(depth, shape)).await;
            assert_eq!(failure(&run.completion).is_some(), fails, "{shape} {depth}: {:?}", failure(&run.completion));
            let harness = harness.restart().await;
            let record = harness.execution(&run.execution_id).await;
            let expected = if fails { ExecutionStatus::Failed } else { ExecutionStatus::Succeeded };
            assert_eq!(record.summary.status, expected, "{shape} {depth}");
        }
    }
}

#[tokio::test]
async fn state_depth_limit_after_restart() {
    for shape in ["arrays", "objects"] {
        let sets = flow("sets", |context, params| {
            Box::pin(async move {
                context.instance_state().set("deep", &requested_value(&params))?;
                Ok(json!("set").into())
            })
        });
        let harness = TestHarness::builder().flow(sets).build().await;
        let run = harness.invoke("sets", ask(LIMIT, shape)).await;
        assert_eq!(failure(&run.completion), None, "{shape}");
        // A second write merges into the stored map, which reads the first one back.
        let run = harness.invoke("sets", ask(LIMIT, shape)).await;
        assert_eq!(failure(&run.completion), None, "{shape}");
        let harness = harness.restart().await;
        assert!(harness.flow_state("sets").await.contains_key("deep"));
    }
}

#[tokio::test]
async fn step_depth_limit_reads_back() {
    for shape in ["arrays", "objects"] {
        let steps = flow("steps", |context, params| {
            Box::pin(async move {
                let value = requested_value(&params);
                let step = || {
                    let value = value.clone();
                    async move { Ok::<_, FlowError>(value) }
                };
                let journaled: Option<Value> = context.step("deep", step).await?;
                Ok(json!(journaled.is_some()).into())
            })
        });
        let harness = TestHarness::builder().flow(steps).build().await;
        let run = harness.invoke("steps", ask(LIMIT, shape)).await;
        assert_eq!(failure(&run.completion), None, "{shape}");
        let harness = harness.restart().await;
        let record = harness.execution(&run.execution_id).await;
        assert_eq!(record.steps.len(), 1, "{shape}");
    }
}

#[tokio::test]
async fn invoke_data_depth_limit_after_restart() {
    for shape in ["arrays", "objects", "text"] {
        let caller = flow("caller", |context, params| {
            Box::pin(async move { context.invoke_flow("callee", requested_value(&params)).await.map(|_| json!("ok").into()) })
        });
        let callee = flow("callee", |_, _| Box::pin(async move { Ok(json!("ran").into()) }));
        let harness = TestHarness::builder().flow(caller).flow(callee).build().await;
        let run = harness.invoke("caller", ask(LIMIT, shape)).await;
        assert_eq!(failure(&run.completion), None, "{shape}");
        let harness = harness.restart().await;
        let children = harness.executions("callee").await;
        assert_eq!(children.len(), 1, "{shape}");
        let child = harness.execution(&children[0].id).await;
        assert_eq!(child.summary.status, ExecutionStatus::Succeeded, "{shape}");
        assert_eq!(child.parent_id.as_deref(), Some(run.execution_id.as_str()));
    }
}

#[tokio::test]
async fn invoked_result_depth_limit_reaches_caller() {
    let caller = flow("caller", |context, _| {
        Box::pin(async move { Ok(context.invoke_flow("callee", json!({})).await?.data().cloned().unwrap_or_default().into()) })
    });
    let callee = flow("callee", |_, _| Box::pin(async move { Ok(arrays(LIMIT).into()) }));
    let harness = TestHarness::builder().flow(caller).flow(callee).build().await;
    let run = harness.invoke("caller", TestRequest::json(json!({}))).await;
    assert_eq!(failure(&run.completion), None);
}

/// The depth check walks a large, shallow result element by element and keeps it.
#[tokio::test]
async fn large_shallow_result_is_kept() {
    let returns = flow("wide", |_, _| {
        Box::pin(async move { Ok(Value::Array((0..100_000).map(|n| json!({ "n": n, "tags": ["a", "b"] })).collect()).into()) })
    });
    let harness = TestHarness::builder().flow(returns).build().await;
    let run = harness.invoke("wide", TestRequest::json(json!({}))).await;
    assert_eq!(failure(&run.completion), None);
}
