// `stable_key` must not be empty.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
