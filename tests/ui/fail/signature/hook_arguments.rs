// A hook takes only `&Context`. The error is on the hook's path.
use flow_runtime::prelude::*;

async fn on_deploy(_ctx: &Context, _params: ExecutionParams) -> Result<(), FlowError> {
    Ok(())
}

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    on_instance_deploy = on_deploy,
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
