//! Schedules, polling triggers and lifecycle hooks on virtual time.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use flow_runtime::Flow;
use flow_runtime::prelude::*;
use flow_runtime::store::{ExecutionStatus, TickOutcome};
use flow_runtime::testing::TestHarness;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn at(hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0).single().expect("valid instant")
}

const MINUTE: Duration = Duration::from_secs(60);

#[flow(name = "Quarter Hour Sync", stable_key = "quarter-hour-sync", schedule(cron = "*/15 * * * *"))]
async fn quarter_hour_sync(_ctx: &Context, params: ExecutionParams) -> FlowResult {
    Ok(params.trigger.body.json::<Value>()?.into())
}

#[flow(
    name = "Nightly Export",
    stable_key = "nightly-export",
    schedule(cron = "*/15 * * * *"),
    retry(max_attempts = 2, delay_minutes = 60),
    queue(parallel, singleton)
)]
async fn nightly_export(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Err(FlowError::new("the export target is down"))
}

#[flow(name = "Configured Sync", stable_key = "configured-sync", schedule(config_var = "Sync Schedule", timezone = "Europe/Berlin"))]
async fn configured_sync(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

#[flow(name = "Failing Scheduled", stable_key = "failing-scheduled", schedule(cron = "*/15 * * * *"), on_instance_deploy = fail_deploy)]
async fn failing_scheduled(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

#[flow(name = "Reads Polling", stable_key = "reads-polling")]
async fn reads_polling(ctx: &Context, _params: ExecutionParams) -> FlowResult {
    ctx.polling()?;
    Ok(().into())
}

async fn harness(flow: Flow) -> TestHarness {
    TestHarness::builder().flow(flow).start_at(at(10, 0)).build().await
}

fn outcomes(ticks: &[flow_runtime::store::TickRecord]) -> Vec<(DateTime<Utc>, TickOutcome)> {
    ticks.iter().map(|tick| (tick.scheduled_at, tick.outcome)).collect()
}

#[tokio::test]
async fn schedule_fires_at_each_instant() {
    let harness = harness(quarter_hour_sync::definition()).await;

    harness.advance(60 * MINUTE).await;

    let ticks = harness.ticks("quarter-hour-sync").await;
    let expected: Vec<_> = [15, 30, 45].iter().map(|minute| (at(10, *minute), TickOutcome::Started)).chain([(at(11, 0), TickOutcome::Started)]).collect();
    assert_eq!(outcomes(&ticks), expected);
}

#[tokio::test]
async fn each_tick_runs_one_execution() {
    let harness = harness(quarter_hour_sync::definition()).await;

    harness.advance(60 * MINUTE).await;

    let executions = harness.executions("quarter-hour-sync").await;
    assert_eq!(executions.len(), 4);
    assert!(executions.iter().all(|execution| execution.status == ExecutionStatus::Succeeded));
    assert!(executions.iter().all(|execution| execution.source == "schedule"));
}

#[tokio::test]
async fn tick_payload_names_the_instant_and_zone() {
    let harness = harness(quarter_hour_sync::definition()).await;

    harness.advance(15 * MINUTE).await;

    let tick = &harness.ticks("quarter-hour-sync").await[0];
    let execution = harness.execution(tick.execution_id.as_deref().expect("started")).await;
    let result = execution.result.expect("succeeded");
    let body = &result["data"];
    assert_eq!(body["scheduledAt"], "2026-03-02T10:15:00Z");
    assert_eq!(body["timeZone"], "UTC");
    assert_eq!(body["missedTicks"], 0);
}

#[tokio::test]
async fn handled_tick_does_not_fire_again_after_restart() {
    let harness = harness(quarter_hour_sync::definition()).await;
    harness.advance(20 * MINUTE).await;

    let harness = harness.restart().await;
    harness.run_due().await;

    assert_eq!(harness.ticks("quarter-hour-sync").await.len(), 1);
    assert_eq!(harness.executions("quarter-hour-sync").await.len(), 1);
}

#[tokio::test]
async fn downtime_gives_one_catch_up_execution() {
    let harness = harness(quarter_hour_sync::definition()).await;

    harness.advance_while_stopped(65 * MINUTE);
    let harness = harness.restart().await;
    harness.run_due().await;

    assert_eq!(harness.executions("quarter-hour-sync").await.len(), 1);
}

#[tokio::test]
async fn downtime_records_the_missed_ticks() {
    let harness = harness(quarter_hour_sync::definition()).await;

    harness.advance_while_stopped(65 * MINUTE);
    harness.run_due().await;

    let ticks = harness.ticks("quarter-hour-sync").await;
    assert_eq!(
        outcomes(&ticks),
        vec![
            (at(10, 15), TickOutcome::Missed),
            (at(10, 30), TickOutcome::Missed),
            (at(10, 45), TickOutcome::Missed),
            (at(11, 0), TickOutcome::Started),
        ]
    );
    assert_eq!(ticks[3].missed, 3);
}

#[tokio::test]
async fn singleton_skips_tick_while_previous_run_retries() {
    let harness = harness(nightly_export::definition()).await;

    // The 10:15 run fails and waits until 11:15 for its retry.
    harness.advance(30 * MINUTE).await;

    let ticks = harness.ticks("nightly-export").await;
    assert_eq!(outcomes(&ticks), vec![(at(10, 15), TickOutcome::Started), (at(10, 30), TickOutcome::Skipped)]);
    assert!(ticks[1].detail.as_deref().unwrap_or_default().contains(ticks[0].execution_id.as_deref().expect("started")));
}

#[tokio::test]
async fn singleton_fires_again_after_previous_run_ends() {
    let harness = harness(nightly_export::definition()).await;

    // Attempts at 10:15, 11:15 and 12:15 fail; the 12:30 tick starts a new execution.
    harness.advance(150 * MINUTE).await;

    let started: Vec<_> = harness
        .ticks("nightly-export")
        .await
        .into_iter()
        .filter(|tick| tick.outcome == TickOutcome::Started)
        .map(|tick| tick.scheduled_at)
        .collect();
    assert_eq!(started, vec![at(10, 15), at(12, 30)]);
}

#[tokio::test]
async fn schedule_from_config_var_fires_at_its_instants() {
    let harness = TestHarness::builder()
        .flow(configured_sync::definition())
        .config_var("Sync Schedule", "0 12 * * *")
        .start_at(at(10, 0))
        .build()
        .await;
    harness.advance(24 * 60 * MINUTE).await;

    // 12:00 in Berlin is 11:00 UTC in March before the switch to summer time.
    let ticks = harness.ticks("configured-sync").await;
    assert_eq!(outcomes(&ticks), vec![(at(11, 0), TickOutcome::Started)]);
}

/// A polling cursor: the number of lines of the source file already seen.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    seen: usize,
}

async fn poll_file(ctx: &TriggerContext, payload: TriggerPayload) -> Result<TriggerResult, TriggerError> {
    let path = ctx.config_var("Source File").map_err(|error| TriggerError::internal(error.to_string()))?;
    let text = std::fs::read_to_string(&path).map_err(|error| TriggerError::internal(format!("cannot read {path}: {error}")))?;
    let polling = ctx.polling().map_err(|error| TriggerError::internal(error.to_string()))?;
    let cursor: Cursor = polling
        .get_state()
        .map_err(|error| TriggerError::internal(error.to_string()))?
        .unwrap_or(Cursor { seen: 0 });

    let lines: Vec<&str> = text.lines().collect();
    let new: Vec<&str> = lines.iter().skip(cursor.seen).copied().collect();
    if new.iter().any(|line| line.contains("BROKEN")) {
        return Err(TriggerError::internal("the source file has a broken record"));
    }
    polling
        .set_state(&Cursor { seen: lines.len() })
        .map_err(|error| TriggerError::internal(error.to_string()))?;
    if new.is_empty() {
        return Ok(TriggerResult::no_changes());
    }
    let mut payload = payload;
    payload.body = Body {
        data: BodyData::Json(serde_json::json!({ "records": new }).into()),
        content_type: Some("application/json".into()),
    };
    Ok(TriggerResult::new(payload))
}

#[flow(name = "Poll Records", stable_key = "poll-records", polling, schedule(cron = "*/5 * * * *"), on_trigger = poll_file)]
async fn poll_records(_ctx: &Context, params: ExecutionParams) -> FlowResult {
    Ok(params.trigger.body.json::<Value>()?.into())
}

struct PollingSetup {
    harness: TestHarness,
    source: std::path::PathBuf,
    _folder: tempfile::TempDir,
}

async fn polling(lines: &str) -> PollingSetup {
    let folder = tempfile::tempdir().expect("temp dir");
    let source = folder.path().join("records.txt");
    std::fs::write(&source, lines).expect("writes the source");
    let harness = TestHarness::builder()
        .flow(poll_records::definition())
        .config_var("Source File", source.display().to_string())
        .start_at(at(10, 0))
        .build()
        .await;
    PollingSetup {
        harness,
        source,
        _folder: folder,
    }
}

#[tokio::test]
async fn poll_with_changes_starts_execution_with_trigger_payload() {
    let setup = polling("A-1\nA-2\n").await;

    setup.harness.advance(5 * MINUTE).await;

    let tick = &setup.harness.ticks("poll-records").await[0];
    let execution = setup.harness.execution(tick.execution_id.as_deref().expect("started")).await;
    assert_eq!(execution.result, Some(serde_json::json!({ "data": { "records": ["A-1", "A-2"] } })));
}

#[tokio::test]
async fn poll_without_changes_starts_nothing() {
    let setup = polling("").await;

    setup.harness.advance(10 * MINUTE).await;

    let ticks = setup.harness.ticks("poll-records").await;
    assert_eq!(outcomes(&ticks), vec![(at(10, 5), TickOutcome::NoChanges), (at(10, 10), TickOutcome::NoChanges)]);
    assert!(setup.harness.executions("poll-records").await.is_empty());
}

#[tokio::test]
async fn poll_saves_its_cursor() {
    let setup = polling("A-1\nA-2\n").await;

    setup.harness.advance(5 * MINUTE).await;

    assert_eq!(setup.harness.saved_polling_state("poll-records").await, Some(serde_json::json!({ "seen": 2 })));
}

#[tokio::test]
async fn next_poll_sees_only_new_records() {
    let setup = polling("A-1\n").await;
    setup.harness.advance(5 * MINUTE).await;

    std::fs::write(&setup.source, "A-1\nA-2\nA-3\n").expect("appends");
    setup.harness.advance(5 * MINUTE).await;

    let tick = &setup.harness.ticks("poll-records").await[1];
    let execution = setup.harness.execution(tick.execution_id.as_deref().expect("started")).await;
    assert_eq!(execution.result, Some(serde_json::json!({ "data": { "records": ["A-2", "A-3"] } })));
}

#[tokio::test]
async fn failed_poll_keeps_the_saved_cursor() {
    let setup = polling("A-1\n").await;
    setup.harness.advance(5 * MINUTE).await;

    std::fs::write(&setup.source, "A-1\nBROKEN\n").expect("appends");
    setup.harness.advance(5 * MINUTE).await;

    let ticks = setup.harness.ticks("poll-records").await;
    assert_eq!(ticks[1].outcome, TickOutcome::TriggerFailed);
    assert_eq!(setup.harness.saved_polling_state("poll-records").await, Some(serde_json::json!({ "seen": 1 })));
}

#[tokio::test]
async fn seeded_cursor_is_read_by_the_first_poll() {
    let folder = tempfile::tempdir().expect("temp dir");
    let source = folder.path().join("records.txt");
    std::fs::write(&source, "A-1\nA-2\nA-3\n").expect("writes the source");
    let harness = TestHarness::builder()
        .flow(poll_records::definition())
        .config_var("Source File", source.display().to_string())
        .polling_state("poll-records", serde_json::json!({ "seen": 2 }))
        .start_at(at(10, 0))
        .build()
        .await;

    harness.advance(5 * MINUTE).await;

    let tick = &harness.ticks("poll-records").await[0];
    let execution = harness.execution(tick.execution_id.as_deref().expect("started")).await;
    assert_eq!(execution.result, Some(serde_json::json!({ "data": { "records": ["A-3"] } })));
}

#[tokio::test]
async fn polling_state_outside_polling_trigger_fails() {
    let harness = TestHarness::builder().flow(reads_polling::definition()).build().await;
    let run = harness.invoke("reads-polling", flow_runtime::testing::TestRequest::empty()).await;

    assert!(run.error().unwrap_or_default().contains("no polling state"), "{:?}", run.error());
}

/// Registers the flow's webhook URL and keeps the registration for the delete hook.
async fn record_deploy(ctx: &Context) -> Result<(), FlowError> {
    let url = ctx.webhook_urls().get("Order Events").cloned().unwrap_or_default();
    let region: String = ctx.config("Region")?;
    ctx.instance_state().set("registration", &format!("{region} {url}"))?;
    Ok(())
}

/// Fails unless the deploy hook's registration was saved.
async fn remove_registration(ctx: &Context) -> Result<(), FlowError> {
    let registration: Option<String> = ctx.instance_state().get("registration");
    match registration {
        Some(_) => {
            ctx.instance_state().remove("registration");
            Ok(())
        }
        None => Err(FlowError::new("no registration to remove")),
    }
}

async fn fail_deploy(_ctx: &Context) -> Result<(), FlowError> {
    Err(FlowError::new("the ERP rejected the webhook registration"))
}

async fn noop_hook(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

#[flow(
    name = "Order Events",
    stable_key = "order-events",
    on_instance_deploy = record_deploy,
    webhook_lifecycle(create = noop_hook, delete = remove_registration),
    on_instance_delete = noop_hook
)]
async fn order_events(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

#[flow(name = "Broken Deploy", stable_key = "broken-deploy", webhook_lifecycle(create = fail_deploy))]
async fn broken_deploy(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

#[tokio::test]
async fn deploy_runs_hooks_in_order() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;

    let runs = harness.deploy().await.expect("deploys");

    let hooks: Vec<_> = runs.iter().map(|run| (run.flow.as_str(), run.hook.key())).collect();
    assert_eq!(hooks, vec![("order-events", "on_instance_deploy"), ("order-events", "webhook_lifecycle.create")]);
}

#[tokio::test]
async fn delete_runs_delete_hooks_in_order() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;
    harness.deploy().await.expect("deploys");

    let runs = harness.delete().await.expect("deletes");

    let hooks: Vec<_> = runs.iter().map(|run| (run.flow.as_str(), run.hook.key())).collect();
    assert_eq!(hooks, vec![("order-events", "webhook_lifecycle.delete"), ("order-events", "on_instance_delete")]);
}

#[tokio::test]
async fn failed_deploy_names_flow_and_hook() {
    let harness = TestHarness::builder().flow(broken_deploy::definition()).build().await;

    let error = harness.deploy().await.expect_err("the hook fails");

    assert_eq!(
        error.to_string(),
        "instance \"test\": flow \"broken-deploy\" webhook_lifecycle.create failed: the ERP rejected the webhook registration"
    );
}

#[tokio::test]
async fn failed_deploy_leaves_instance_undeployed() {
    let harness = TestHarness::builder().flow(broken_deploy::definition()).build().await;

    harness.deploy().await.expect_err("the hook fails");

    assert!(!harness.runtime().is_serving("test"));
}

#[tokio::test]
async fn undeployed_instance_fires_no_ticks() {
    let harness = harness(failing_scheduled::definition()).await;
    harness.deploy().await.expect_err("the hook fails");

    harness.advance(60 * MINUTE).await;

    assert!(harness.ticks("failing-scheduled").await.is_empty());
}

#[tokio::test]
async fn serve_start_deploys_an_instance_once() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;
    let first = harness.runtime().deploy_pending().await.expect("reads the store");
    assert!(first.is_empty());

    let harness = harness.restart().await;
    // A second start finds the deployment recorded and runs no hook; the hook's state write
    // would otherwise be seen again.
    let deployments = harness.runtime().deployments().await.expect("reads the store");
    let deployed_at = deployments[0].deployed_at;
    harness.runtime().deploy_pending().await.expect("reads the store");

    let after = harness.runtime().deployments().await.expect("reads the store");
    assert_eq!(after[0].deployed_at, deployed_at);
}

#[tokio::test]
async fn deleted_instance_stays_deleted_at_start() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;
    harness.deploy().await.expect("deploys");
    harness.delete().await.expect("deletes");

    let harness = harness.restart().await;
    harness.runtime().deploy_pending().await.expect("reads the store");

    assert!(!harness.runtime().is_serving("test"));
}

#[tokio::test]
async fn deploy_hook_state_reaches_the_delete_hook() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;
    harness.deploy().await.expect("deploys");

    let saved = harness.flow_state("order-events").await;

    assert_eq!(saved.get("registration"), Some(&Value::from("eu-west http://127.0.0.1:8080/webhooks/test/order-events")));
    harness.delete().await.expect("the delete hook finds the registration");
}

#[tokio::test]
async fn deploy_hook_reads_config_vars() {
    let harness = TestHarness::builder().flow(order_events::definition()).build().await;

    let error = harness.deploy().await.expect_err("Region is not set");

    assert!(error.to_string().contains("config variable `Region` is not set"), "{error}");
}

#[tokio::test]
async fn redeployed_instance_does_not_catch_up_deleted_time() {
    let harness = harness(quarter_hour_sync::definition()).await;
    harness.deploy().await.expect("deploys");
    harness.advance(15 * MINUTE).await;
    harness.delete().await.expect("deletes");

    harness.advance(60 * MINUTE).await;
    harness.deploy().await.expect("deploys again");
    harness.advance(5 * MINUTE).await;

    let ticks = harness.ticks("quarter-hour-sync").await;
    assert_eq!(outcomes(&ticks), vec![(at(10, 15), TickOutcome::Started)]);
}

#[tokio::test]
async fn second_deploy_is_rejected() {
    let harness = TestHarness::builder()
        .flow(order_events::definition())
        .config_var("Region", "eu-west")
        .build()
        .await;
    harness.deploy().await.expect("deploys");

    let error = harness.deploy().await.expect_err("already deployed");

    assert!(error.to_string().contains("already deployed"), "{error}");
}
