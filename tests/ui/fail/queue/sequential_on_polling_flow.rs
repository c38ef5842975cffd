// A polling flow cannot use `queue(sequential)`.
use flow_runtime::prelude::*;

async fn poll_changes(_ctx: &TriggerContext, payload: TriggerPayload) -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::new(payload))
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    polling,
    schedule(cron = "*/5 * * * *"),
    on_trigger = poll_changes,
    queue(sequential),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
