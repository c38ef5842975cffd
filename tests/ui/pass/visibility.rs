// Flows of every visibility compile without warnings under the workspace lints, their
// `definition()` handles are reachable, and `inventory` registers all of them.
#![forbid(unsafe_code)]
#![deny(warnings, missing_docs, unreachable_pub)]
//! Flows in public and private modules.

use flow_runtime::prelude::*;

/// Public flows.
pub mod public {
    use flow_runtime::prelude::*;

    /// A public flow in a public module.
    #[flow(name = "Public", stable_key = "public")]
    pub async fn public_flow(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
        Ok(().into())
    }
}

mod private {
    use flow_runtime::prelude::*;

    #[flow(name = "Crate", stable_key = "crate")]
    pub(crate) async fn crate_flow(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
        Ok(().into())
    }

    #[flow(name = "Private", stable_key = "private")]
    async fn private_flow(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
        Ok(().into())
    }

    pub(crate) fn private_definition() -> flow_runtime::Flow {
        private_flow::definition()
    }
}

// A flow whose `definition()` is never called draws no `dead_code` warning. Its name is a raw
// identifier, and the source location records the name without `r#`.
#[flow(name = "Unused Handle", stable_key = "unused-handle")]
async fn r#unused_handle(_ctx: &Context, _params: ExecutionParams) -> FlowResult {
    Ok(().into())
}

fn main() {
    assert_eq!(public::public_flow::definition().config.stable_key, "public");
    assert_eq!(private::crate_flow::definition().config.stable_key, "crate");
    assert_eq!(private::private_definition().config.stable_key, "private");

    let registry = flow_runtime::Registry::from_inventory(flow_runtime::Integration::new("t", "t", "0"))
        .expect("the registered flows are valid");
    let keys: Vec<&str> = registry.flows().iter().map(|flow| flow.stable_key()).collect();
    assert_eq!(keys, vec!["crate", "private", "public", "unused-handle"]);
    let unused = registry.get("unused-handle").expect("registered");
    assert_eq!(unused.source.function, "unused_handle");
}
