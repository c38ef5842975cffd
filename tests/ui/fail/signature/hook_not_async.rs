// A hook is an `async fn`. The error is on the hook's path.
use flow_runtime::prelude::*;

fn register_webhook(_ctx: &Context) -> Result<(), FlowError> {
    Ok(())
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    webhook_lifecycle(create = register_webhook),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
