//! The spans that the runtime's log lines carry, read from a subscriber's output.

mod common;

use common::{CapturedLog, Options, config, flow, start, synchronous};
use serde_json::json;

#[tokio::test]
async fn invoked_flow_logs_outside_parent_span() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    // A global subscriber: a thread's default one may miss spans whose callsite another test
    // thread registered first. This test is the only one in its binary.
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber is set");
    let parent = flow(synchronous("parent"), |ctx, _| {
        Box::pin(async move { ctx.invoke_flow("child", json!({})).await })
    });
    let child = flow(config("child"), |_, _| {
        Box::pin(async move {
            tracing::info!("child speaks");
            Ok(json!(null).into())
        })
    });
    let server = start(vec![parent, child], Options::default()).await;

    let response = server.client.post(server.url("/webhooks/acme/parent")).send().await.expect("sends");
    assert_eq!(response.status(), 200);

    let output = log.text();
    let line = output.lines().find(|line| line.contains("child speaks")).expect("the child's line");
    assert!(line.contains("flow=child"), "{line}");
    assert!(!line.contains("flow=parent"), "the child's line is inside the parent's span: {line}");
}
