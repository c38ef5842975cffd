// The context comes first, borrowed, and the parameters second, by value.
use flow_runtime::prelude::*;

#[flow(name = "Process Order", stable_key = "process-order")]
async fn process_order(params: ExecutionParams, ctx: &Context) -> FlowResult {
    let _ = (params, ctx);
    Ok(json!(null).into())
}

fn main() {}
