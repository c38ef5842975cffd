// A polling flow with a cron schedule in a time zone, an `on_trigger` and a singleton queue
// compiles and registers.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! Polling for new invoices.

use flow_runtime::prelude::*;

async fn poll_invoices(
    ctx: &TriggerContext,
    payload: TriggerPayload,
) -> Result<TriggerResult, TriggerError> {
    ctx.logger().info("polling");
    Ok(TriggerResult::new(payload))
}

#[flow(
    name = "Sync Invoices",
    stable_key = "sync-invoices",
    polling,
    schedule(cron = "*/5 * * * *", timezone = "America/Chicago"),
    on_trigger = poll_invoices,
    queue(parallel, singleton),
)]
async fn sync_invoices(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {
    let flow = sync_invoices::definition();
    let config = &flow.config;
    assert_eq!(config.trigger_type, TriggerType::Polling);
    let schedule = config.schedule.as_ref().expect("schedule is set");
    assert_eq!(schedule.source, ScheduleSource::Cron("*/5 * * * *".into()));
    assert_eq!(schedule.timezone.as_deref(), Some("America/Chicago"));
    let queue = config.queue.as_ref().expect("queue is set");
    assert_eq!(queue.mode, QueueMode::Parallel);
    assert!(queue.singleton);
    assert!(config.handlers.on_trigger);
    assert!(flow.handlers.on_trigger.is_some());
    assert_eq!(config.endpoint_security, EndpointSecurity::CustomerOptional);

    let registry = flow_runtime::Registry::from_inventory(flow_runtime::Integration::new("t", "t", "0"))
        .expect("the registered flows are valid");
    assert_eq!(registry.flows().len(), 1);
    assert!(registry.get("sync-invoices").is_some());
}
