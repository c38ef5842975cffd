//! The `#[flow]` attribute, which declares an integration flow.
//!
//! Use it through `flow_runtime::prelude::*`. The generated code refers to the
//! `flow_runtime` crate by that name.
//!
//! Each phase has its own module. `attr` parses the arguments into `options`. `check` builds
//! the flow's `FlowConfig` and runs flow-core's rules on it, and `violations` places the
//! broken rules on the attribute's tokens. `signature` checks the function's shape. `expand`
//! and `wrappers` emit the code. Every phase records its errors in one `errors::Errors`.

mod attr;
mod check;
mod errors;
mod expand;
mod keys;
mod options;
mod signature;
mod violations;
mod wrappers;

use proc_macro::TokenStream;

/// Declares a flow: an `async fn` that runs when the flow's webhook is called, on a schedule,
/// or when another flow or an agent invokes it.
///
/// ```ignore
/// use flow_runtime::prelude::*;
///
/// #[flow(
///     name = "Process Order",
///     stable_key = "process-order",
///     retry(max_attempts = 3, delay_minutes = 5, exponential_backoff),
///     queue(throttled, concurrency_limit = 4, dedupe_id_field = "body.data.id"),
/// )]
/// async fn process_order(ctx: &Context, params: ExecutionParams) -> FlowResult {
///     ctx.logger().info("processing");
///     Ok(params.trigger.body.to_value().into())
/// }
/// ```
///
/// The function must be a free, non-generic
/// `async fn name(ctx: &Context, params: ExecutionParams) -> FlowResult` whose future is
/// `Send`. Any argument patterns may be used.
///
/// # Options
///
/// `name` and `stable_key` are required; every other option is optional. Each option may be
/// written once.
///
/// | Option | Value |
/// |---|---|
/// | `name = "..."` | Display name, not empty. |
/// | `stable_key = "..."` | Key in the webhook URL and across versions: ASCII letters, digits, `-`, `_`, `.`. |
/// | `description = "..."` | What the flow does, for people and agent tools. |
/// | `synchronous` | The webhook response is the execution's result. Not with `schedule`. Any queue mode is allowed. |
/// | `agent` | The flow is a tool on the instance's MCP server; needs `schemas(invoke(input = ...))`. |
/// | `polling` | `on_trigger` runs on the schedule and decides whether there is work; needs `schedule` and `on_trigger`. |
/// | `schedule(cron = "*/5 * * * *", timezone = "America/Chicago")` | Runs on a clock. `cron` has 5 fields (or 6, seconds first) and is parsed at compile time. `config_var = "Sync Schedule"` instead of `cron` reads the expression from that config variable at deploy time. `timezone` is an IANA name, UTC when absent. |
/// | `on_trigger = path` | Custom trigger: `async fn(&TriggerContext, TriggerPayload) -> Result<TriggerResult, TriggerError>`. |
/// | `retry(max_attempts = 3, delay_minutes = 5, exponential_backoff, unique_request_id_field = "body.data.requestId")` | Retries of a failed execution: `max_attempts` in 0..=10 and `delay_minutes` in 0..=60, both required. `max_attempts` counts the retries after the first attempt, so `max_attempts = 3` runs a failing execution up to four times. |
/// | `queue(parallel)`, `queue(throttled, concurrency_limit = 4)`, `queue(sequential)` | One mode; `concurrency_limit` in 2..=15 and only with `throttled`. `dedupe_id_field = "..."` skips requests whose id is queued or running. `singleton` (scheduled flows only) skips a tick while the previous run is going; scheduled and polling flows cannot be `sequential`. |
/// | `endpoint_security = "..."` | `"unsecured"`, `"customer_optional"` (default), `"customer_required"` or `"organization"`. |
/// | `organization_api_keys = ["key", env("VAR")]` | Keys for `"organization"` security, which needs at least one; `env("VAR")` reads the variable when the runtime starts. |
/// | `preprocess(flow_name_field = "...", external_customer_id_field = "...", external_customer_user_id_field = "...")` | Marks the integration's preprocess flow, which routes requests to an instance-specific endpoint: it runs first, and the field paths read its result as `body`. Takes no `queue` or `schedule`. |
/// | `error_config(handler = "retry", max_attempts = 3, delay_seconds = 10, exponential_backoff, ignore_final_error)` | What a failed step does: `handler` is `"fail"`, `"ignore"` or `"retry"`; the other options apply only to `"retry"`: `max_attempts` (0..=5, default 3) and `delay_seconds` (0..=60, default 0). |
/// | `schemas(invoke(input = Type, output = Type))` | Invoke schemas; each type implements `schemars::JsonSchema`. |
/// | `on_instance_deploy = path`, `on_instance_delete = path` | Hooks: `async fn(&Context) -> Result<(), FlowError>`. |
/// | `webhook_lifecycle(create = path, delete = path)` | Hooks that register and remove the instance's webhook, of the same type. |
///
/// Every `*_field` option is a path into the trigger payload such as `body.data.id`,
/// `body.items[0].sku` or `headers.x-request-id`.
///
/// # Compile-time checks
///
/// The attribute checks every literal value with the same flow-core rules the runtime uses:
/// ranges, cron expressions, time zone names, field paths and the rules that span several
/// options. Every error is reported in one build, on the tokens of the option at fault, with
/// the fix. A rule that spans two options is reported on both. On any error the function is
/// still emitted unchanged, so the rest of the crate compiles, but the flow is not registered.
///
/// # Generated items
///
/// Besides the unchanged function, the attribute emits:
///
/// - a hidden builder of the flow's `flow_runtime::Flow`, registered with `inventory`, so
///   `flow_runtime::Registry::from_inventory` finds every flow of the binary;
/// - a module with the function's name and visibility holding `definition()`, which returns
///   the `Flow`. A module and a function of the same name coexist (modules are types, functions
///   are values), so a test can call both `process_order::definition()` and
///   `process_order(ctx, params)`:
///
/// ```ignore
/// let flow = process_order::definition();
/// assert_eq!(flow.config.stable_key, "process-order");
/// ```
///
/// The attribute must be used at module level, where the module can be emitted; in a function
/// body, `definition()` cannot reach the hidden builder.
#[proc_macro_attribute]
pub fn flow(attribute: TokenStream, item: TokenStream) -> TokenStream {
    expand::flow(attribute.into(), item.into()).into()
}
