// `error_config(handler = "retry")` alone is valid: step retries default to 3, without delay.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! Steps that retry with the default settings.

use flow_runtime::prelude::*;

#[flow(name = "Sync Stock", stable_key = "sync-stock", error_config(handler = "retry"))]
async fn sync_stock(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(json!(null).into())
}

fn main() {
    let config = sync_stock::definition().config;
    let error_config = config.error_config.expect("error_config is set");
    assert_eq!(error_config.handler, StepErrorHandler::Retry);
    assert_eq!(error_config.retries(), 3);
}
