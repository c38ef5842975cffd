// A hook returns `Result<(), FlowError>`. The error is on the hook's path.
use flow_runtime::prelude::*;

async fn on_delete(_ctx: &Context) -> Result<(), String> {
    Ok(())
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    on_instance_delete = on_delete,
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
