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

pub mod context;
pub mod definition;
pub mod instance;
pub mod integration;
pub mod logger;
pub mod registry;

pub use context::{ConfigVarError, Context, StateStore, TriggerContext};
pub use definition::{Flow, Handlers, SourceLocation};
pub use flow_core as core;
pub use flow_macros::flow;
pub use instance::Instance;
pub use integration::{ConfigVar, Integration};
pub use logger::{LogEntry, LogLevel, Logger};
pub use registry::{Registry, RegistryError};

/// Everything a flow author needs: `use flow_runtime::prelude::*;`.
pub mod prelude {
    pub use flow_core::{
        ApiKeySource, Body, BodyData, Customer, EndpointSecurity, ExecutionParams, FieldPath, FlowConfig, FlowError,
        FlowOutput, FlowResult, HttpResponse, PreprocessConfig, QueueConfig, QueueMode, RetryConfig, Schedule,
        ScheduleSource, StepErrorConfig, StepErrorHandler, TriggerError, TriggerPayload, TriggerResult, TriggerType,
    };
    pub use flow_macros::flow;
    pub use serde_json::json;

    pub use crate::context::{Context, TriggerContext};
    pub use crate::integration::{ConfigVar, Integration};
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
}
