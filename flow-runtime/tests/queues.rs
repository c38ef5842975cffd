//! Queue modes over real HTTP: order and concurrency of executions.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Options, config, flow, json_of, start};
use flow_runtime::core::{QueueConfig, QueueMode};
use serde_json::json;

fn queued(key: &str, mode: QueueMode) -> flow_runtime::core::FlowConfig {
    let mut config = config(key);
    config.queue = Some(QueueConfig {
        mode,
        ..QueueConfig::default()
    });
    config
}

static SEQUENTIAL_LOG: Mutex<Vec<(i64, &'static str)>> = Mutex::new(Vec::new());

#[tokio::test]
async fn sequential_flow_runs_one_at_a_time_in_arrival_order() {
    let sequential = flow(queued("ledger", QueueMode::Sequential), |_, params| {
        Box::pin(async move {
            let n = params.trigger.body.to_value()["n"].as_i64().unwrap_or_default();
            SEQUENTIAL_LOG.lock().expect("lock").push((n, "start"));
            tokio::time::sleep(Duration::from_millis(15)).await;
            SEQUENTIAL_LOG.lock().expect("lock").push((n, "end"));
            Ok(json!(n).into())
        })
    });
    let server = start(vec![sequential], Options::default()).await;

    let mut ids = Vec::new();
    for n in 0..8 {
        let response = server
            .client
            .post(server.url("/webhooks/acme/ledger"))
            .json(&json!({ "n": n }))
            .send()
            .await
            .expect("sends");
        ids.push(json_of(response).await["executionId"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        server.finished(id).await;
    }

    let log = SEQUENTIAL_LOG.lock().expect("lock").clone();
    let expected: Vec<(i64, &str)> = (0..8).flat_map(|n| [(n, "start"), (n, "end")]).collect();
    assert_eq!(log, expected);
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn throttled_flow_never_exceeds_its_concurrency_limit() {
    let throttled = flow(queued("sync", QueueMode::Throttled { concurrency_limit: 3 }), |_, _| {
        Box::pin(async move {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            Ok(json!(null).into())
        })
    });
    let server = start(vec![throttled], Options::default()).await;

    let requests = (0..12).map(|_| server.client.post(server.url("/webhooks/acme/sync")).send());
    let mut ids = Vec::new();
    for response in futures::future::join_all(requests).await {
        ids.push(json_of(response.expect("sends")).await["executionId"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        server.finished(id).await;
    }
    assert_eq!(MOST_RUNNING.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn synchronous_caller_of_a_sequential_flow_waits_for_its_turn() {
    let mut config = queued("ordered", QueueMode::Sequential);
    config.synchronous = true;
    let sequential = flow(config, |_, params| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(params.trigger.body.to_value().into())
        })
    });
    let server = start(vec![sequential], Options::default()).await;
    let requests = (0..4).map(|n| {
        server
            .client
            .post(server.url("/webhooks/acme/ordered"))
            .json(&json!({ "n": n }))
            .send()
    });
    let answers = futures::future::join_all(requests).await;
    for (n, response) in answers.into_iter().enumerate() {
        assert_eq!(json_of(response.expect("sends")).await, json!({ "n": n }));
    }
}
