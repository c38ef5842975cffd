// An `on_trigger` returns `Result<TriggerResult, TriggerError>`. The error is on its path.
use flow_runtime::prelude::*;

async fn verify_signature(_ctx: &TriggerContext, _payload: TriggerPayload) -> FlowResult {
    Ok(().into())
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    on_trigger = verify_signature,
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
