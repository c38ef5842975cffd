//! Tests of the helpdesk flows with the in-process harness: routed events and tool calls.

use flow_runtime::Integration;
use flow_runtime::core::EndpointType;
use flow_runtime::testing::{TestHarness, TestRequest, TestRun};
use serde_json::{Value, json};

async fn harness() -> TestHarness {
    TestHarness::builder()
        .integration(Integration::new("helpdesk", "Helpdesk Tickets", "0.0.0").endpoint_type(EndpointType::InstanceSpecific))
        .flow(super::route_event::definition())
        .flow(super::events::open_ticket::definition())
        .flow(super::events::close_ticket::definition())
        .flow(super::agent::find_ticket::definition())
        .flow(super::agent::list_open_tickets::definition())
        .config_var("Team", "Tier 1")
        .build()
        .await
}

fn event(name: &str, body: Value) -> TestRequest {
    TestRequest::json(body).header("X-Helpdesk-Event", name)
}

async fn open(harness: &TestHarness, ticket_id: &str, priority: &str) -> TestRun {
    let body = json!({ "ticketId": ticket_id, "subject": "Printer on fire", "priority": priority, "agentId": "agent-7" });
    harness.route(event("ticket.opened", body)).await.expect("routed")
}

#[tokio::test]
async fn opened_event_runs_open_ticket() {
    let harness = harness().await;

    let run = open(&harness, "T-1", "urgent").await;

    assert_eq!(run.data()["status"], json!("open"));
    assert_eq!(run.data()["ticketId"], json!("T-1"));
    assert_eq!(harness.execution(&run.execution_id).await.summary.flow, "open-ticket");
}

#[tokio::test]
async fn agent_id_reaches_the_flow_as_user() {
    let harness = harness().await;

    let run = open(&harness, "T-1", "urgent").await;

    assert_eq!(run.data()["agentId"], json!("agent-7"));
}

#[tokio::test]
async fn routed_execution_lineage_names_the_router() {
    let harness = harness().await;

    let run = open(&harness, "T-1", "urgent").await;

    let lineage = harness.lineage(&run.execution_id).await;
    assert_eq!(lineage.len(), 1);
    assert_eq!(lineage[0].flow, "route-event");
    assert_eq!(harness.execution(&run.execution_id).await.summary.source, "preprocess");
}

#[tokio::test]
async fn closed_event_closes_the_ticket() {
    let harness = harness().await;
    open(&harness, "T-1", "normal").await;

    let run = harness.route(event("ticket.closed", json!({ "ticketId": "T-1" }))).await.expect("routed");

    assert_eq!(run.data()["status"], json!("closed"));
}

#[tokio::test]
async fn unknown_event_is_rejected_with_404() {
    let harness = harness().await;

    let error = harness.route(event("ticket.merged", json!({}))).await.expect_err("no flow handles it");

    assert_eq!(error.status, 404);
    assert!(error.message.contains("\"ticket.merged\""), "{}", error.message);
}

#[tokio::test]
async fn request_without_event_header_fails_the_router() {
    let harness = harness().await;

    let error = harness.route(TestRequest::json(json!({}))).await.expect_err("no header");

    assert_eq!(error.status, 500);
    assert!(error.message.contains("X-Helpdesk-Event"), "{}", error.message);
}

#[tokio::test]
async fn tools_are_the_two_agent_flows() {
    let harness = harness().await;

    let names: Vec<Value> = harness.tools().iter().map(|tool| tool["name"].clone()).collect();

    assert_eq!(names, vec![json!("find-ticket"), json!("list-open-tickets")]);
}

#[tokio::test]
async fn find_ticket_schema_requires_the_ticket_id() {
    let harness = harness().await;

    let tools = harness.tools();

    assert_eq!(tools[0]["inputSchema"]["required"], json!(["ticketId"]));
    assert_eq!(tools[0]["outputSchema"]["properties"]["status"]["$ref"], json!("#/$defs/Status"));
}

#[tokio::test]
async fn find_ticket_returns_the_stored_ticket() {
    let harness = harness().await;
    open(&harness, "T-1", "urgent").await;

    let run = harness.call_tool("find-ticket", json!({ "ticketId": "T-1" })).await;

    assert_eq!(run.data()["subject"], json!("Printer on fire"));
    assert_eq!(harness.execution(&run.execution_id).await.summary.source, "mcp");
}

#[tokio::test]
async fn find_ticket_unknown_id_fails() {
    let harness = harness().await;

    let run = harness.call_tool("find-ticket", json!({ "ticketId": "T-404" })).await;

    assert_eq!(run.error(), Some("ticket T-404 not found"));
}

#[tokio::test]
async fn list_open_tickets_filters_by_priority() {
    let harness = harness().await;
    open(&harness, "T-1", "urgent").await;
    open(&harness, "T-2", "low").await;
    open(&harness, "T-3", "urgent").await;
    harness.route(event("ticket.closed", json!({ "ticketId": "T-3" }))).await.expect("routed");

    let run = harness.call_tool("list-open-tickets", json!({ "priority": "urgent" })).await;

    let ids: Vec<&Value> = run.data()["tickets"].as_array().expect("a list").iter().map(|ticket| &ticket["ticketId"]).collect();
    assert_eq!(ids, vec![&json!("T-1")]);
}
