// `#[flow]` applies to an `async fn`.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
)]
struct ProcessOrder;

fn main() {}
