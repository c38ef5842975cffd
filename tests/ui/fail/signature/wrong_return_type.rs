// A flow function returns `FlowResult`. The error is on the return type.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> Result<String, String> {
    Ok(String::new())
}

fn main() {}
