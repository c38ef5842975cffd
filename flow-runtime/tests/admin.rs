//! The admin API over HTTP: deploying and deleting instances, and reading schedules.

mod common;

use std::time::Duration;

use common::{Options, config, echo, flow, error_of, json_of, start};
use flow_runtime::core::{FlowError, Schedule, ScheduleSource};
use flow_runtime::definition::{BoxFuture, Handlers};
use flow_runtime::{Context, Flow};
use reqwest::StatusCode;

const TOKEN: &str = "admin-secret";

fn succeeding_hook(_ctx: &Context) -> BoxFuture<'_, Result<(), FlowError>> {
    Box::pin(async { Ok(()) })
}

fn failing_hook(_ctx: &Context) -> BoxFuture<'_, Result<(), FlowError>> {
    Box::pin(async { Err(FlowError::new("the CRM rejected the subscription")) })
}

fn with_hooks(key: &str, handlers: Handlers) -> Flow {
    let mut flow = flow(config(key), echo);
    flow.handlers = handlers;
    flow
}

/// Sends `POST path` with the admin token.
async fn post_as_admin(server: &common::TestServer, path: &str) -> reqwest::Response {
    server.client.post(server.url(path)).bearer_auth(TOKEN).send().await.expect("sends")
}

fn options() -> Options {
    Options {
        admin_token: Some(TOKEN.to_owned()),
        ..Options::default()
    }
}

#[tokio::test]
async fn deploy_endpoint_lists_hooks_that_ran() {
    let handlers = Handlers {
        on_instance_deploy: Some(succeeding_hook),
        webhook_create: Some(succeeding_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;

    let response = post_as_admin(&server, "/instances/acme/deploy").await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = json_of(response).await;
    assert_eq!(body["status"], "deployed");
    assert_eq!(body["hooks"][0]["hook"], "on_instance_deploy");
    assert_eq!(body["hooks"][1]["hook"], "webhook_lifecycle.create");
}

#[tokio::test]
async fn failed_deploy_endpoint_names_flow_and_hook() {
    let handlers = Handlers {
        webhook_create: Some(failing_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;

    let response = post_as_admin(&server, "/instances/acme/deploy").await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_of(response).await["error"],
        "instance \"acme\": flow \"contacts\" webhook_lifecycle.create failed: the CRM rejected the subscription"
    );
}

#[tokio::test]
async fn webhook_of_undeployed_instance_is_conflict() {
    let handlers = Handlers {
        on_instance_deploy: Some(failing_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let response = server.client.post(server.url("/webhooks/acme/contacts")).send().await.expect("sends");

    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(server.execution_count().await, 0);
}

#[tokio::test]
async fn deleted_instance_stops_taking_webhooks() {
    let handlers = Handlers {
        webhook_delete: Some(succeeding_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let deleted = post_as_admin(&server, "/instances/acme/delete").await;
    let webhook = server.client.post(server.url("/webhooks/acme/contacts")).send().await.expect("sends");

    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(webhook.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn second_delete_is_a_conflict() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let first = post_as_admin(&server, "/instances/acme/delete").await;
    let second = post_as_admin(&server, "/instances/acme/delete").await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let error = error_of(second).await;
    assert!(error.contains("is already deleted"), "{error}");
}

#[tokio::test]
async fn delete_of_a_never_deployed_instance_needs_force() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let rejected = post_as_admin(&server, "/instances/acme/delete").await;
    let forced = post_as_admin(&server, "/instances/acme/delete?force=true").await;

    assert_eq!(rejected.status(), StatusCode::CONFLICT);
    assert_eq!(forced.status(), StatusCode::OK);
}

#[tokio::test]
async fn instances_list_shows_deployment_status() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let response = server.client.get(server.url("/instances")).bearer_auth(TOKEN).send().await.expect("sends");

    let body = json_of(response).await;
    assert_eq!(body["instances"][0]["id"], "acme");
    assert_eq!(body["instances"][0]["deployment"]["status"], "deployed");
}

#[tokio::test]
async fn deploy_of_unknown_instance_is_not_found() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let response = post_as_admin(&server, "/instances/globex/deploy").await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn non_utf8_instance_answers_json_400() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let response = post_as_admin(&server, "/instances/%FF/deploy").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert!(error.ends_with("percent-encode the path as UTF-8"), "{error}");
}

#[tokio::test]
async fn non_utf8_instance_without_token_is_unauthorized() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let response = server.client.post(server.url("/instances/%FF/delete")).send().await.expect("sends");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_api_without_token_is_unauthorized() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let response = server.client.post(server.url("/instances/acme/deploy")).send().await.expect("sends");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn schedules_endpoint_counts_fired_ticks() {
    let mut every_second = config("heartbeat");
    every_second.schedule = Some(Schedule {
        source: ScheduleSource::Cron("* * * * * *".to_owned()),
        timezone: None,
    });
    let server = start(vec![flow(every_second, echo)], options()).await;
    server.runtime.start_scheduler();

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let schedules = json_of(server.client.get(server.url("/schedules")).bearer_auth(TOKEN).send().await.expect("sends")).await;
    let ticks = json_of(server.client.get(server.url("/ticks?flow=heartbeat")).bearer_auth(TOKEN).send().await.expect("sends")).await;

    let started = schedules["schedules"][0]["counts"]["started"].as_u64().unwrap_or_default();
    assert!(started >= 2, "{schedules}");
    // A tick may fire between the two requests, so the list can be one longer.
    let listed = ticks["ticks"].as_array().map_or(0, Vec::len);
    assert!(listed >= usize::try_from(started).unwrap_or_default(), "{ticks}");
    assert!(schedules["schedules"][0]["nextTick"].is_string(), "{schedules}");
}

fn slow_hook(_ctx: &Context) -> BoxFuture<'_, Result<(), FlowError>> {
    Box::pin(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    })
}

#[tokio::test]
async fn deploy_finishes_after_client_hangs_up() {
    let handlers = Handlers {
        on_instance_deploy: Some(slow_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;
    let impatient = server.client.post(server.url("/instances/acme/deploy")).bearer_auth(TOKEN).timeout(Duration::from_millis(50));
    impatient.send().await.expect_err("the client gave up");

    tokio::time::sleep(Duration::from_millis(600)).await;

    let deployments = server.runtime.deployments().await.expect("reads");
    assert_eq!(deployments.first().map(|record| record.status.as_str()), Some("deployed"));
}

#[tokio::test]
async fn deploy_during_a_deploy_is_conflict() {
    let handlers = Handlers {
        on_instance_deploy: Some(slow_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;

    let (_, second) = tokio::join!(post_as_admin(&server, "/instances/acme/deploy"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        post_as_admin(&server, "/instances/acme/deploy").await
    });

    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert!(error_of(second).await.contains("a deploy or delete of instance \"acme\" is running"));
}

#[tokio::test]
async fn second_deploy_is_conflict() {
    let handlers = Handlers {
        webhook_create: Some(succeeding_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let again = post_as_admin(&server, "/instances/acme/deploy").await;

    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn forced_delete_deletes_despite_failed_hook() {
    let handlers = Handlers {
        webhook_delete: Some(failing_hook),
        ..Handlers::default()
    };
    let server = start(vec![with_hooks("contacts", handlers)], options()).await;
    post_as_admin(&server, "/instances/acme/deploy").await;

    let rejected = post_as_admin(&server, "/instances/acme/delete").await;
    let forced = post_as_admin(&server, "/instances/acme/delete?force=true").await;

    assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(forced.status(), StatusCode::OK);
    assert!(!server.runtime.is_serving("acme"));
}

#[tokio::test]
async fn second_authorization_header_is_unauthorized() {
    let server = start(vec![flow(config("contacts"), echo)], options()).await;

    let response = server
        .client
        .get(server.url("/instances"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Authorization", "Bearer other")
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(error_of(response).await.contains("more than one Authorization header"));
}

#[tokio::test]
async fn bearer_scheme_is_read_without_regard_to_case() {
    let server = start(vec![flow(config("orders"), echo)], options()).await;

    let response = server
        .client
        .get(server.url("/executions"))
        .header("Authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .expect("sends");

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn tick_list_limit_follows_the_execution_list_rules() {
    let server = start(vec![flow(config("orders"), echo)], options()).await;
    let get = |query: &'static str| server.client.get(server.url(&format!("/ticks{query}"))).bearer_auth(TOKEN).send();

    let empty = get("?flow=&limit=").await.expect("sends");
    let zero = get("?limit=0").await.expect("sends");
    let over = get("?limit=1001").await.expect("sends");

    assert_eq!(empty.status(), StatusCode::OK);
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn misspelled_force_deletes_nothing() {
    let server = start(vec![flow(config("orders"), echo)], options()).await;

    let response = post_as_admin(&server, "/instances/acme/delete?forse=true").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert!(error.contains("unknown field `forse`"), "{error}");
    assert!(server.runtime.is_serving("acme"), "the instance was deleted");
}

#[tokio::test]
async fn deploy_query_parameter_deploys_nothing() {
    let server = start(vec![flow(config("orders"), echo)], options()).await;

    let response = post_as_admin(&server, "/instances/acme/deploy?dry_run=true").await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert!(error.contains("unknown field `dry_run`"), "{error}");
    let instances = server.client.get(server.url("/instances")).bearer_auth(TOKEN).send().await.expect("sends");
    let body = json_of(instances).await;
    assert!(body["instances"][0]["deployment"].is_null(), "the instance was deployed: {body}");
}

#[tokio::test]
async fn unknown_tick_parameter_answers_400() {
    let server = start(vec![flow(config("orders"), echo)], options()).await;

    let response = server.client.get(server.url("/ticks?flwo=orders")).bearer_auth(TOKEN).send().await.expect("sends");

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = error_of(response).await;
    assert!(error.contains("unknown field `flwo`"), "{error}");
}
