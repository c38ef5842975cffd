// A handler names a function in scope. The compiler reports an unknown name at the path.
use flow_runtime::prelude::*;

async fn verify_signature(_ctx: &TriggerContext, payload: TriggerPayload) -> Result<TriggerResult, TriggerError> {
    Ok(TriggerResult::new(payload))
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    on_trigger = verify_signatur,
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
