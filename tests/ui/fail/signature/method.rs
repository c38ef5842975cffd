// A flow function is a free function, not a method taking `self`.
use flow_runtime::prelude::*;

struct Orders;

impl Orders {
    #[flow(name = "Process Order", stable_key = "process-order")]
    async fn process_order(&self, _ctx: &Context, _params: ExecutionParams) -> FlowResult {
        Ok(().into())
    }
}

fn main() {
    let _ = Orders;
}
