// A schedule read from a config variable compiles. Retry bounds of 0 and step errors that fail
// the execution are accepted.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! A nightly export.

use flow_runtime::prelude::*;

#[flow(
    name = "Nightly Export",
    stable_key = "nightly.export_v2",
    description = "Exports the day's orders",
    schedule(config_var = "Export Schedule", timezone = "Europe/Berlin"),
    retry(max_attempts = 0, delay_minutes = 0),
    error_config(handler = "fail"),
    queue(throttled, concurrency_limit = 15),
)]
async fn nightly_export(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {
    let config = nightly_export::definition().config;
    assert_eq!(config.stable_key, "nightly.export_v2");
    let schedule = config.schedule.as_ref().expect("schedule is set");
    assert_eq!(schedule.source, ScheduleSource::ConfigVar("Export Schedule".into()));
    assert_eq!(schedule.timezone.as_deref(), Some("Europe/Berlin"));
    let retry = config.retry.as_ref().expect("retry is set");
    assert_eq!((retry.max_attempts, retry.delay_minutes, retry.exponential_backoff), (0, 0, false));
    assert_eq!(config.error_config.as_ref().map(|e| e.handler), Some(StepErrorHandler::Fail));
    assert_eq!(config.queue_mode(), QueueMode::Throttled { concurrency_limit: 15 });
}
