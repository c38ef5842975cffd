//! Instance-specific and shared endpoints: requests routed by a preprocess flow or by fields
//! read straight from the request, over real HTTP.

mod common;

use common::{Options, config, echo, flow, json_of, start, synchronous};
use flow_runtime::config::{CustomerSettings, InstanceSettings};
use flow_runtime::core::{EndpointSecurity, EndpointType, FlowError, PreprocessConfig};
use flow_runtime::store::ExecutionStatus;
use flow_runtime::{Flow, Integration, PreprocessFields};
use serde_json::{Value, json};

fn instance(id: &str, customer: &str) -> InstanceSettings {
    InstanceSettings {
        id: id.to_owned(),
        customer: CustomerSettings {
            external_id: Some(customer.to_owned()),
            ..CustomerSettings::default()
        },
        ..InstanceSettings::default()
    }
}

/// An instance-specific integration routed by `body.event`, read from the request.
fn by_request_fields() -> Options {
    Options {
        instances: vec![instance("acme", "C-1")],
        integration: Integration::new("test", "Test", "0")
            .endpoint_type(EndpointType::InstanceSpecific)
            .preprocess(
                PreprocessFields::new()
                    .flow_name_field("body.event")
                    .external_customer_user_id_field("headers.x-user-id"),
            ),
        ..Options::default()
    }
}

/// A shared integration routed by `body.event` and `headers.x-customer-id`.
fn shared() -> Options {
    Options {
        instances: vec![instance("acme", "C-1"), instance("globex", "C-2")],
        integration: Integration::new("test", "Test", "0")
            .endpoint_type(EndpointType::SharedInstance)
            .preprocess(
                PreprocessFields::new()
                    .flow_name_field("body.event")
                    .external_customer_id_field("headers.x-customer-id"),
            ),
        ..Options::default()
    }
}

/// The preprocess flow `router`: maps the `x-event` header to a flow name in its result.
fn router() -> Flow {
    let mut config = config("router");
    config.preprocess = Some(PreprocessConfig {
        flow_name_field: Some("body.target".parse().expect("valid path")),
        external_customer_id_field: Some("body.customer".parse().expect("valid path")),
        ..PreprocessConfig::default()
    });
    flow(config, |_, params| {
        Box::pin(async move {
            let target = match params.trigger.header("x-event") {
                Some("order.created") => "orders",
                Some("broken") => return Err(FlowError::terminal("cannot read the event")),
                Some(other) => other,
                None => "unknown",
            };
            let customer = params.trigger.header("x-customer-id").unwrap_or("C-1");
            Ok(json!({ "target": target, "customer": customer }).into())
        })
    })
}

fn by_preprocess_flow() -> Options {
    Options {
        instances: vec![instance("acme", "C-1")],
        integration: Integration::new("test", "Test", "0").endpoint_type(EndpointType::InstanceSpecific),
        ..Options::default()
    }
}

async fn post(server: &common::TestServer, path: &str, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut request = server.client.post(server.url(path)).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("sends")
}

#[tokio::test]
async fn request_field_names_the_flow_on_an_instance_url() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme", &[], json!({ "event": "orders", "id": 7 })).await;

    assert_eq!(response.status(), 200);
    let result = json_of(response).await;
    assert_eq!(result["flow"]["stableKey"], json!("orders"));
    assert_eq!(result["body"]["data"]["id"], json!(7));
}

#[tokio::test]
async fn flow_name_field_accepts_the_flow_name() {
    let mut orders = synchronous("orders");
    orders.name = "Process Order".into();
    let server = start(vec![flow(orders, echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme", &[], json!({ "event": "Process Order" })).await;

    assert_eq!(json_of(response).await["flow"]["stableKey"], json!("orders"));
}

#[tokio::test]
async fn user_field_sets_the_user_external_id() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme", &[("x-user-id", "U-9")], json!({ "event": "orders" })).await;

    assert_eq!(json_of(response).await["user"]["externalId"], json!("U-9"));
}

#[tokio::test]
async fn path_after_the_instance_url_is_the_path_fragment() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme/a/b", &[], json!({ "event": "orders" })).await;

    assert_eq!(json_of(response).await["pathFragment"], json!("a/b"));
}

#[tokio::test]
async fn unknown_flow_answers_404_naming_it() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme", &[], json!({ "event": "refunds" })).await;

    assert_eq!(response.status(), 404);
    let error = json_of(response).await["error"].as_str().expect("a message").to_owned();
    assert!(error.contains("\"refunds\""), "{error}");
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn missing_flow_field_answers_400_naming_the_path() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme", &[], json!({ "id": 7 })).await;

    assert_eq!(response.status(), 400);
    let error = json_of(response).await["error"].as_str().expect("a message").to_owned();
    assert!(error.contains("`body.event`"), "{error}");
}

#[tokio::test]
async fn unknown_instance_answers_404_naming_it() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/initech", &[], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 404);
    assert!(json_of(response).await["error"].as_str().expect("a message").contains("\"initech\""));
}

#[tokio::test]
async fn non_utf8_instance_segment_answers_400() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/%FF", &[], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 400);
    let error = json_of(response).await["error"].as_str().expect("a message").to_owned();
    assert!(error.ends_with("percent-encode every segment of the webhook URL's path as UTF-8"), "{error}");
}

#[tokio::test]
async fn flow_specific_url_is_not_served_on_an_instance_specific_integration() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme/orders", &[], json!({})).await;

    assert_eq!(response.status(), 400, "the path is a fragment, and the body names no flow");
}

#[tokio::test]
async fn routed_flow_keeps_its_endpoint_security() {
    let mut orders = synchronous("orders");
    orders.endpoint_security = EndpointSecurity::CustomerRequired;
    let mut options = by_request_fields();
    options.instances[0].api_keys.insert("orders".into(), vec!["k_orders".into()]);
    let server = start(vec![flow(orders, echo)], options).await;

    let without_key = post(&server, "/webhooks/acme", &[], json!({ "event": "orders" })).await;
    let with_key = post(&server, "/webhooks/acme", &[("Api-Key", "k_orders")], json!({ "event": "orders" })).await;

    assert_eq!(without_key.status(), 401);
    assert_eq!(with_key.status(), 200);
}

#[tokio::test]
async fn shared_endpoint_runs_the_customers_instance() {
    let server = start(vec![flow(synchronous("orders"), echo)], shared()).await;

    let response = post(&server, "/webhooks", &[("x-customer-id", "C-2")], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["instance"]["id"], json!("globex"));
}

#[tokio::test]
async fn large_customer_id_selects_its_instance() {
    let options = Options {
        instances: vec![instance("acme", "100000000000000000000"), instance("globex", "100000000000000000001")],
        integration: Integration::new("test", "Test", "0")
            .endpoint_type(EndpointType::SharedInstance)
            .preprocess(PreprocessFields::new().flow_name_field("body.event").external_customer_id_field("body.customer")),
        ..Options::default()
    };
    let server = start(vec![flow(synchronous("orders"), echo)], options).await;

    let response = server
        .client
        .post(server.url("/webhooks"))
        .header("content-type", "application/json")
        .body(r#"{"event":"orders","customer":100000000000000000001}"#)
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["instance"]["id"], json!("globex"));
}

#[tokio::test]
async fn shared_endpoint_answers_404_for_an_unknown_customer() {
    let server = start(vec![flow(synchronous("orders"), echo)], shared()).await;

    let response = post(&server, "/webhooks", &[("x-customer-id", "C-404")], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 404);
    let error = json_of(response).await["error"].as_str().expect("a message").to_owned();
    assert!(error.contains("\"C-404\""), "{error}");
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn shared_endpoint_webhook_url_is_the_same_for_every_instance() {
    let server = start(vec![flow(synchronous("orders"), echo)], shared()).await;

    let response = post(&server, "/webhooks", &[("x-customer-id", "C-1")], json!({ "event": "orders" })).await;

    assert_eq!(json_of(response).await["webhookUrls"]["orders"], json!(format!("{}/webhooks", "http://127.0.0.1:8080")));
}

#[tokio::test]
async fn preprocess_flow_result_names_the_flow() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "order.created")], json!({ "id": 7 })).await;

    assert_eq!(response.status(), 200);
    let result = json_of(response).await;
    assert_eq!(result["flow"]["stableKey"], json!("orders"));
    assert_eq!(result["body"]["data"], json!({ "id": 7 }), "the routed flow gets the request, not the result");
}

#[tokio::test]
async fn routed_execution_records_the_preprocess_execution_as_parent() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    post(&server, "/webhooks/acme", &[("x-event", "order.created")], json!({})).await;

    let records = server.executions(ExecutionStatus::Succeeded).await;
    let routed = records.iter().find(|record| record.summary.flow == "orders").expect("routed execution");
    let preprocess = records.iter().find(|record| record.summary.flow == "router").expect("preprocess execution");
    assert_eq!(routed.parent_id.as_deref(), Some(preprocess.summary.id.as_str()));
    assert_eq!(routed.summary.source, "preprocess");
    assert_eq!(preprocess.summary.source, "webhook");
}

#[tokio::test]
async fn preprocess_result_naming_an_unknown_flow_answers_404() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "refund.issued")], json!({})).await;

    assert_eq!(response.status(), 404);
    assert!(json_of(response).await["error"].as_str().expect("a message").contains("\"refund.issued\""));
}

#[tokio::test]
async fn preprocess_flow_is_not_a_routing_target() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "router")], json!({})).await;

    assert_eq!(response.status(), 404);
    let error = json_of(response).await["error"].as_str().expect("a message").to_owned();
    assert!(error.contains("names the preprocess flow \"router\""), "{error}");
}

#[tokio::test]
async fn failed_preprocess_flow_answers_500_with_its_execution_id() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "broken")], json!({})).await;

    assert_eq!(response.status(), 500);
    let body = json_of(response).await;
    assert!(body["error"].as_str().expect("a message").contains("cannot read the event"), "{body}");
    let id = body["executionId"].as_str().expect("the preprocess execution id");
    assert_eq!(server.finished(id).await.summary.status, ExecutionStatus::Failed);
}

#[tokio::test]
async fn customer_of_another_instance_answers_404() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let headers = [("x-event", "order.created"), ("x-customer-id", "C-2")];
    let response = post(&server, "/webhooks/acme", &headers, json!({})).await;

    assert_eq!(response.status(), 404);
    assert!(json_of(response).await["error"].as_str().expect("a message").contains("\"C-2\""));
}

#[tokio::test]
async fn preprocess_flow_security_is_checked_before_it_runs() {
    let mut secured = router();
    secured.config.endpoint_security = EndpointSecurity::CustomerRequired;
    let mut options = by_preprocess_flow();
    options.instances[0].api_keys.insert("router".into(), vec!["k_router".into()]);
    let server = start(vec![secured, flow(synchronous("orders"), echo)], options).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "order.created")], json!({})).await;

    assert_eq!(response.status(), 401);
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn unknown_flow_after_preprocess_names_its_execution() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "refund.issued")], json!({})).await;

    let body = json_of(response).await;
    let id = body["executionId"].as_str().expect("the preprocess execution id");
    let record = server.finished(id).await;
    assert_eq!(record.summary.flow, "router");
    assert_eq!(record.summary.status, ExecutionStatus::Succeeded);
}

#[tokio::test]
async fn routed_flow_rejecting_key_names_the_preprocess_execution() {
    let mut orders = synchronous("orders");
    orders.endpoint_security = EndpointSecurity::CustomerRequired;
    let mut options = by_preprocess_flow();
    options.instances[0].api_keys.insert("orders".into(), vec!["k_orders".into()]);
    let server = start(vec![router(), flow(orders, echo)], options).await;

    let response = post(&server, "/webhooks/acme", &[("x-event", "order.created")], json!({})).await;

    assert_eq!(response.status(), 401);
    let body = json_of(response).await;
    let id = body["executionId"].as_str().expect("the preprocess execution id");
    assert_eq!(server.finished(id).await.summary.flow, "router");
}

#[tokio::test]
async fn instance_url_trailing_slash_is_served() {
    let server = start(vec![flow(synchronous("orders"), echo)], by_request_fields()).await;

    let response = post(&server, "/webhooks/acme/", &[], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["pathFragment"], json!(""));
}

#[tokio::test]
async fn shared_url_trailing_slash_is_served() {
    let server = start(vec![flow(synchronous("orders"), echo)], shared()).await;

    let response = post(&server, "/webhooks/", &[("x-customer-id", "C-1")], json!({ "event": "orders" })).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_of(response).await["instance"]["id"], json!("acme"));
}

#[tokio::test]
async fn preprocessed_url_path_is_the_fragment() {
    let server = start(vec![router(), flow(synchronous("orders"), echo)], by_preprocess_flow()).await;

    let response = post(&server, "/webhooks/acme/open-ticket", &[("x-event", "order.created")], json!({})).await;

    let result = json_of(response).await;
    assert_eq!(result["flow"]["stableKey"], json!("orders"), "the preprocess flow picks the flow, not the path");
    assert_eq!(result["pathFragment"], json!("open-ticket"));
}
