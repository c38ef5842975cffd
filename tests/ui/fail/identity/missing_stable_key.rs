// `stable_key` is required.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
