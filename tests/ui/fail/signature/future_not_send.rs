// A flow function's future is `Send`, because workers run it on any thread.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    let counter = std::rc::Rc::new(1);
    std::future::ready(()).await;
    Ok(serde_json::json!(*counter).into())
}

fn main() {}
