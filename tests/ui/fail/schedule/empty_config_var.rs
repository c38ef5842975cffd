// `schedule(config_var = ...)` must name a config variable.
use flow_runtime::prelude::*;

#[flow(
    name = "Nightly Sync",
    stable_key = "nightly-sync",
    schedule(config_var = ""),
)]
async fn nightly_sync(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(json!(null).into())
}

fn main() {}
