//! What a running flow reaches through its context: other flows, state and config.

mod common;

use common::{Options, config, flow, error_of, json_of, start, synchronous};
use flow_runtime::config::InstanceSettings;
use flow_runtime::store::ExecutionStatus;
use flow_runtime::{ConfigVar, Integration};
use serde_json::json;

#[tokio::test]
async fn invoke_flow_returns_the_child_result_and_records_the_parent() {
    let parent = flow(synchronous("parent"), |ctx, _| {
        Box::pin(async move {
            let child = ctx.invoke_flow("Child Flow", json!({ "n": 20 })).await?;
            Ok(json!({ "child": child.data().cloned() }).into())
        })
    });
    let mut child_config = config("child");
    child_config.name = "Child Flow".into();
    let child = flow(child_config, |_, params| {
        Box::pin(async move {
            let n = params.trigger.body.to_value()["n"].as_i64().unwrap_or_default();
            Ok(json!(n + 1).into())
        })
    });
    let server = start(vec![parent, child], Options::default()).await;

    let response = server.client.post(server.url("/webhooks/acme/parent")).send().await.expect("sends");
    assert_eq!(json_of(response).await, json!({ "child": 21 }));

    let children = server.executions(ExecutionStatus::Succeeded).await;
    let child = children.iter().find(|record| record.summary.flow == "child").expect("child recorded");
    let parent = children.iter().find(|record| record.summary.flow == "parent").expect("parent recorded");
    assert_eq!(child.parent_id.as_deref(), Some(parent.summary.id.as_str()));
    assert_eq!(child.summary.source, "invoke");
}

#[tokio::test]
async fn invoke_flow_of_an_unknown_flow_fails_naming_it() {
    let parent = flow(synchronous("parent"), |ctx, _| {
        Box::pin(async move { ctx.invoke_flow("missing", json!({})).await })
    });
    let server = start(vec![parent], Options::default()).await;
    let response = server.client.post(server.url("/webhooks/acme/parent")).send().await.expect("sends");
    assert_eq!(response.status(), 500);
    assert!(json_of(response).await["error"].as_str().expect("text").contains("\"missing\""));
}

#[tokio::test]
async fn instance_state_persists_between_executions() {
    let counter = flow(synchronous("counter"), |ctx, _| {
        Box::pin(async move {
            let count: i64 = ctx.instance_state().get("count").unwrap_or(0) + 1;
            ctx.instance_state().set("count", &count)?;
            Ok(json!(count).into())
        })
    });
    let server = start(vec![counter], Options::default()).await;
    let mut counts = Vec::new();
    for _ in 0..3 {
        let response = server.client.post(server.url("/webhooks/acme/counter")).send().await.expect("sends");
        counts.push(json_of(response).await);
    }
    assert_eq!(counts, vec![json!(1), json!(2), json!(3)]);
}

#[tokio::test]
async fn state_of_a_failed_execution_is_not_saved() {
    let flaky = flow(synchronous("flaky"), |ctx, params| {
        Box::pin(async move {
            ctx.cross_flow_state().set("seen", &true)?;
            if params.trigger.body.to_value()["fail"] == json!(true) {
                return Err(flow_runtime::core::FlowError::terminal("asked to fail"));
            }
            Ok(json!(ctx.cross_flow_state().get::<bool>("seen")).into())
        })
    });
    let reader = flow(synchronous("reader"), |ctx, _| {
        Box::pin(async move { Ok(json!(ctx.cross_flow_state().get::<bool>("seen")).into()) })
    });
    let server = start(vec![flaky, reader], Options::default()).await;
    server
        .client
        .post(server.url("/webhooks/acme/flaky"))
        .json(&json!({ "fail": true }))
        .send()
        .await
        .expect("sends");
    let response = server.client.post(server.url("/webhooks/acme/reader")).send().await.expect("sends");
    assert_eq!(json_of(response).await, json!(null));
}

#[tokio::test]
async fn config_variables_come_from_the_instance_with_defaults() {
    let reader = flow(synchronous("reader"), |ctx, _| {
        Box::pin(async move {
            let url = ctx.config_var("API Base URL")?;
            let batch: u32 = ctx.config("Batch Size")?;
            Ok(json!({ "url": url, "batch": batch }).into())
        })
    });
    let options = Options {
        integration: Integration::new("test", "Test", "0")
            .config_var(ConfigVar::new("API Base URL").required())
            .config_var(ConfigVar::new("Batch Size").default_value("25")),
        instances: vec![InstanceSettings {
            id: "acme".into(),
            config: [("API Base URL".to_owned(), toml::Value::String("https://erp.test".into()))]
                .into_iter()
                .collect(),
            ..InstanceSettings::default()
        }],
        ..Options::default()
    };
    let server = start(vec![reader], options).await;
    let response = server.client.post(server.url("/webhooks/acme/reader")).send().await.expect("sends");
    assert_eq!(json_of(response).await, json!({ "url": "https://erp.test", "batch": 25 }));
}

#[tokio::test]
async fn missing_config_variable_fails_naming_it_and_the_instance() {
    let reader = flow(synchronous("reader"), |ctx, _| {
        Box::pin(async move { Ok(json!(ctx.config_var("Region")?).into()) })
    });
    let options = Options {
        integration: Integration::new("test", "Test", "0").config_var(ConfigVar::new("Region")),
        ..Options::default()
    };
    let server = start(vec![reader], options).await;
    let response = server.client.post(server.url("/webhooks/acme/reader")).send().await.expect("sends");
    let error = error_of(response).await;
    assert!(error.contains("`Region`"), "{error}");
    assert!(error.contains("`acme`"), "{error}");
}

#[tokio::test]
async fn invalid_secret_variable_does_not_show_its_value() {
    let reader = flow(synchronous("reader"), |ctx, _| {
        Box::pin(async move { Ok(json!(ctx.config::<u64>("Token")?).into()) })
    });
    let options = Options {
        integration: Integration::new("test", "Test", "0").config_var(ConfigVar::new("Token").secret()),
        instances: vec![InstanceSettings {
            id: "acme".into(),
            config: [("Token".to_owned(), toml::Value::String("tok_SECRET_abc".into()))].into_iter().collect(),
            ..InstanceSettings::default()
        }],
        ..Options::default()
    };
    let server = start(vec![reader], options).await;
    let response = server.client.post(server.url("/webhooks/acme/reader")).send().await.expect("sends");
    let error = error_of(response).await;
    assert!(!error.contains("tok_SECRET_abc"), "{error}");
    assert!(error.contains("`Token`"), "{error}");
}
