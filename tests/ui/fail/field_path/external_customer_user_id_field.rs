// An index bracket in a field path is closed.
use flow_runtime::prelude::*;

#[flow(
    name = "Process Order",
    stable_key = "process-order",
    preprocess(external_customer_user_id_field = "body.users[0"),
)]
async fn process_order(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {}
