// A flow function has no generic parameters.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order<P: Send>(_ctx: &Context, _params: P) -> FlowResult {
    Ok(().into())
}

fn main() {}
