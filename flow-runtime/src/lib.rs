//! Runs flows declared with `#[flow]`: webhooks, a durable store, the execution engine, the
//! command-line interface and a testing harness.
//!
//! An integration crate depends on this crate alone:
//!
//! ```ignore
//! use flow_runtime::prelude::*;
//!
//! #[flow(name = "Echo", stable_key = "echo", synchronous)]
//! async fn echo(_ctx: &Context, params: ExecutionParams) -> FlowResult {
//!     Ok(params.trigger.body.to_value().into())
//! }
//!
//! flow_runtime::main!();
//! ```

pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod definition;
pub mod engine;
pub mod http;
pub mod instance;
pub mod integration;
pub mod logger;
pub mod mcp;
pub mod polling;
pub mod registry;
pub mod routing;
pub mod signature;
pub mod step;
pub mod store;
pub mod testing;

pub use context::{ConfigVarError, Context, StateStore, TriggerContext};
pub use definition::{Flow, Handlers, SourceLocation};
pub use flow_core as core;
pub use flow_macros::flow;
pub use instance::Instance;
pub use integration::{ConfigVar, Integration, PreprocessFields};
pub use logger::{LogEntry, LogLevel, Logger};
pub use polling::PollingState;
pub use registry::{Registry, RegistryError};

/// Defines `main` for an integration binary: a command-line interface with `serve`, `flows`,
/// `invoke`, `executions`, `manifest`, `schedule`, `deploy` and `delete`.
///
/// `flow_runtime::main!();` names the integration after the crate; pass an
/// [`Integration`] to declare its name and config variables:
///
/// ```ignore
/// flow_runtime::main!(
///     Integration::new("orders", "Order Processing", env!("CARGO_PKG_VERSION"))
///         .config_var(ConfigVar::new("API Base URL").required())
/// );
/// ```
#[macro_export]
macro_rules! main {
    () => {
        $crate::main!($crate::Integration::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION")
        ));
    };
    ($integration:expr $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::cli::run($integration)
        }
    };
}

/// Everything a flow author needs: `use flow_runtime::prelude::*;`.
pub mod prelude {
    pub use flow_core::{
        ApiKeySource, Body, BodyData, Customer, EndpointSecurity, EndpointType, ExecutionParams, FieldPath, FlowConfig,
        FlowError, FlowOutput, FlowResult, HttpResponse, PreprocessConfig, QueueConfig, QueueMode, RetryConfig,
        Schedule, ScheduleSource, StepErrorConfig, StepErrorHandler, TriggerError, TriggerPayload, TriggerResult,
        TriggerType,
    };
    pub use flow_macros::flow;
    pub use serde_json::json;

    pub use crate::context::{Context, TriggerContext};
    pub use crate::engine::ScheduledTick;
    pub use crate::integration::{ConfigVar, Integration, PreprocessFields};
}

/// Items the `#[flow]` macro expands to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;

    pub use crate::definition::{
        BoxFuture, ExecuteFn, Flow, FlowRegistration, Handlers, HookFn, SourceLocation, TriggerFn, type_schema,
    };

    /// Builds a flow from the settings the macro serialized at compile time.
    ///
    /// # Panics
    ///
    /// Panics when `config_json` is not a serialized `FlowConfig`, which only a macro bug can
    /// cause: the macro serializes the same type this function reads.
    pub fn flow_from_parts(
        config_json: &str,
        schemas: (Option<flow_core::TypeSchema>, Option<flow_core::TypeSchema>),
        execute: ExecuteFn,
        handlers: Handlers,
        source: SourceLocation,
    ) -> Flow {
        let mut config: flow_core::FlowConfig =
            serde_json::from_str(config_json).expect("the #[flow] macro serializes a valid FlowConfig");
        config.schemas.input = schemas.0;
        config.schemas.output = schemas.1;
        Flow {
            config,
            execute,
            handlers,
            source,
        }
    }

    /// The output of a flow function. Only `FlowResult` implements it, so another return type
    /// fails to compile with the expected signature in the message.
    #[diagnostic::on_unimplemented(
        message = "a `#[flow]` function must return `FlowResult`, not `{Self}`",
        label = "expected `FlowResult`",
        note = "write `async fn name(ctx: &Context, params: ExecutionParams) -> FlowResult`"
    )]
    pub trait FlowReturn {
        /// Returns the value as a `FlowResult`.
        fn into_flow_result(self) -> flow_core::FlowResult;
    }

    impl FlowReturn for flow_core::FlowResult {
        fn into_flow_result(self) -> flow_core::FlowResult {
            self
        }
    }

    /// The output of an `on_trigger` function. Only the trigger's result type implements it.
    #[diagnostic::on_unimplemented(
        message = "an `on_trigger` function must return `Result<TriggerResult, TriggerError>`, not `{Self}`",
        label = "expected `Result<TriggerResult, TriggerError>`",
        note = "write `async fn name(ctx: &TriggerContext, payload: TriggerPayload) -> Result<TriggerResult, TriggerError>`"
    )]
    pub trait TriggerReturn {
        /// Returns the value as a trigger result.
        fn into_trigger_result(self) -> Result<flow_core::TriggerResult, flow_core::TriggerError>;
    }

    impl TriggerReturn for Result<flow_core::TriggerResult, flow_core::TriggerError> {
        fn into_trigger_result(self) -> Result<flow_core::TriggerResult, flow_core::TriggerError> {
            self
        }
    }

    /// The output of a lifecycle hook. Only `Result<(), FlowError>` implements it.
    #[diagnostic::on_unimplemented(
        message = "a lifecycle hook must return `Result<(), FlowError>`, not `{Self}`",
        label = "expected `Result<(), FlowError>`",
        note = "write `async fn name(ctx: &Context) -> Result<(), FlowError>`"
    )]
    pub trait HookReturn {
        /// Returns the value as a hook result.
        fn into_hook_result(self) -> Result<(), flow_core::FlowError>;
    }

    impl HookReturn for Result<(), flow_core::FlowError> {
        fn into_hook_result(self) -> Result<(), flow_core::FlowError> {
            self
        }
    }

    /// Boxes the future of a flow function call as an [`ExecuteFn`] returns it.
    pub fn execute_future<'a, F>(future: F) -> BoxFuture<'a, flow_core::FlowResult>
    where
        F: std::future::Future + Send + 'a,
        F::Output: FlowReturn,
    {
        Box::pin(async move { future.await.into_flow_result() })
    }

    /// Boxes the future of an `on_trigger` call as a [`TriggerFn`] returns it.
    pub fn trigger_future<'a, F>(
        future: F,
    ) -> BoxFuture<'a, Result<flow_core::TriggerResult, flow_core::TriggerError>>
    where
        F: std::future::Future + Send + 'a,
        F::Output: TriggerReturn,
    {
        Box::pin(async move { future.await.into_trigger_result() })
    }

    /// Boxes the future of a lifecycle hook call as a [`HookFn`] returns it.
    pub fn hook_future<'a, F>(future: F) -> BoxFuture<'a, Result<(), flow_core::FlowError>>
    where
        F: std::future::Future + Send + 'a,
        F::Output: HookReturn,
    {
        Box::pin(async move { future.await.into_hook_result() })
    }
}
