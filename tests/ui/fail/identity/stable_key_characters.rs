// `stable_key` uses only ASCII letters, digits, `-`, `_` and `.`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
