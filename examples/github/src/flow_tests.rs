//! Tests of the GitHub flows with the in-process harness: signed deliveries, no server.

use flow_runtime::signature::sign_github;
use flow_runtime::testing::{TestHarness, TestRequest};
use serde_json::json;

const SECRET: &str = "harness-secret";

async fn harness() -> TestHarness {
    TestHarness::builder()
        .flow(super::push_events::definition())
        .flow(super::pull_request_events::definition())
        .config_var("GitHub Webhook Secret", SECRET)
        .build()
        .await
}

fn delivery(event: &str, body: &[u8], secret: &str) -> TestRequest {
    TestRequest::bytes("application/json", body.to_vec())
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("X-Hub-Signature-256", &sign_github(secret, body))
}

const PUSH: &[u8] = include_bytes!("../tests/fixtures/push.json");
const PULL_REQUEST: &[u8] = include_bytes!("../tests/fixtures/pull_request_opened.json");

#[tokio::test]
async fn signed_push_is_summarized() {
    let harness = harness().await;
    let run = harness.invoke("github-push", delivery("push", PUSH, SECRET)).await;
    assert_eq!(run.data()["repository"], json!("Codertocat/Hello-World"));
}

#[tokio::test]
async fn push_with_another_secret_is_rejected_with_401() {
    let harness = harness().await;
    let rejection = harness
        .run_trigger("github-push", delivery("push", PUSH, "another-secret"))
        .await
        .expect_err("wrong secret");
    assert_eq!(rejection.status, 401);
}

#[tokio::test]
async fn pull_request_delivery_on_the_push_url_is_rejected_with_400() {
    let harness = harness().await;
    let rejection = harness
        .run_trigger("github-push", delivery("pull_request", PULL_REQUEST, SECRET))
        .await
        .expect_err("wrong event");
    assert_eq!(rejection.status, 400);
}

#[tokio::test]
async fn opened_pull_request_counts_one_open() {
    let harness = harness().await;
    harness
        .invoke("github-pull-request", delivery("pull_request", PULL_REQUEST, SECRET))
        .await;
    let state = harness.flow_state("github-pull-request").await;
    assert_eq!(state[&super::open_count_key("Codertocat/Hello-World")], json!(1));
}
