// `name` must not be empty.
use flow_runtime::prelude::*;

#[flow(
    name = "",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
