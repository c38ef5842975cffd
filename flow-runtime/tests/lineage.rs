//! The executions API shows which executions started an execution, and which ones it started.

mod common;

use common::{Options, config, flow, json_of, start, synchronous};
use flow_runtime::store::ExecutionStatus;
use serde_json::{Value, json};

/// Starts `outer`, which invokes `middle`, which invokes `inner`.
async fn three_level_chain() -> common::TestServer {
    let outer = flow(synchronous("outer"), |ctx, _| {
        Box::pin(async move { Ok(ctx.invoke_flow("middle", json!({})).await?.data().cloned().unwrap_or_default().into()) })
    });
    let middle = flow(config("middle"), |ctx, _| {
        Box::pin(async move { Ok(ctx.invoke_flow("inner", json!({})).await?.data().cloned().unwrap_or_default().into()) })
    });
    let inner = flow(config("inner"), |_, _| Box::pin(async { Ok(json!("done").into()) }));
    let server = start(vec![outer, middle, inner], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/outer")).send().await.expect("sends");
    assert_eq!(json_of(response).await, json!("done"));
    server
}

async fn execution_id_of(server: &common::TestServer, flow: &str) -> String {
    let records = server.executions(ExecutionStatus::Succeeded).await;
    let record = records.iter().find(|record| record.summary.flow == flow).expect("the flow ran");
    record.summary.id.clone()
}

async fn show(server: &common::TestServer, id: &str) -> Value {
    let response = server.client.get(server.url(&format!("/executions/{id}"))).send().await.expect("sends");
    assert_eq!(response.status(), 200);
    json_of(response).await
}

#[tokio::test]
async fn show_lists_ancestors_nearest_first() {
    let server = three_level_chain().await;
    let inner = execution_id_of(&server, "inner").await;
    let middle = execution_id_of(&server, "middle").await;
    let outer = execution_id_of(&server, "outer").await;

    let shown = show(&server, &inner).await;

    let lineage: Vec<&str> = shown["lineage"]
        .as_array()
        .expect("a lineage list")
        .iter()
        .map(|ancestor| ancestor["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(lineage, vec![middle.as_str(), outer.as_str()]);
}

#[tokio::test]
async fn lineage_entries_carry_flow_and_source() {
    let server = three_level_chain().await;
    let inner = execution_id_of(&server, "inner").await;

    let shown = show(&server, &inner).await;

    assert_eq!(shown["lineage"][0]["flow"], json!("middle"));
    assert_eq!(shown["lineage"][0]["source"], json!("invoke"));
    assert_eq!(shown["lineage"][1]["flow"], json!("outer"));
    assert_eq!(shown["lineage"][1]["source"], json!("webhook"));
}

#[tokio::test]
async fn execution_started_by_a_webhook_has_an_empty_lineage() {
    let server = three_level_chain().await;
    let outer = execution_id_of(&server, "outer").await;

    let shown = show(&server, &outer).await;

    assert_eq!(shown["lineage"], json!([]));
    assert_eq!(shown["parentId"], Value::Null);
}

#[tokio::test]
async fn list_by_parent_returns_the_invoked_execution() {
    let server = three_level_chain().await;
    let middle = execution_id_of(&server, "middle").await;
    let inner = execution_id_of(&server, "inner").await;

    let response = server.client.get(server.url(&format!("/executions?parent={middle}"))).send().await.expect("sends");
    let listed = json_of(response).await;

    let ids: Vec<&str> = listed["executions"]
        .as_array()
        .expect("an executions list")
        .iter()
        .map(|execution| execution["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(ids, vec![inner.as_str()]);
}
