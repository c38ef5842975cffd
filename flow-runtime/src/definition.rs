//! A flow as the runtime holds it: its settings plus the functions the `#[flow]` macro wraps.

use std::future::Future;
use std::pin::Pin;

use flow_core::{ExecutionParams, FlowConfig, FlowError, FlowResult, TriggerError, TriggerPayload, TriggerResult, TypeSchema};

use crate::context::Context;

/// A boxed future that can move between worker threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A flow's execution function: `async fn(&Context, ExecutionParams) -> FlowResult`.
pub type ExecuteFn = for<'a> fn(&'a Context, ExecutionParams) -> BoxFuture<'a, FlowResult>;

/// A custom trigger: `async fn(&Context, TriggerPayload) -> Result<TriggerResult, TriggerError>`.
pub type TriggerFn = for<'a> fn(&'a Context, TriggerPayload) -> BoxFuture<'a, Result<TriggerResult, TriggerError>>;

/// An instance lifecycle hook: `async fn(&Context) -> Result<(), FlowError>`.
pub type HookFn = for<'a> fn(&'a Context) -> BoxFuture<'a, Result<(), FlowError>>;

/// Where a flow is defined in the integration's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLocation {
    /// Source file, as `file!()` gives it.
    pub file: &'static str,
    /// Line of the `#[flow]` attribute.
    pub line: u32,
    /// Name of the annotated function.
    pub function: &'static str,
}

impl std::fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` at {}:{}", self.function, self.file, self.line)
    }
}

/// The optional handlers of a flow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handlers {
    /// Replaces the default trigger.
    pub on_trigger: Option<TriggerFn>,
    /// Runs when an instance is deployed.
    pub on_instance_deploy: Option<HookFn>,
    /// Runs when an instance is deleted.
    pub on_instance_delete: Option<HookFn>,
    /// Registers the instance's webhook with the source system on deploy.
    pub webhook_create: Option<HookFn>,
    /// Removes the instance's webhook from the source system on delete.
    pub webhook_delete: Option<HookFn>,
}

/// A flow: its settings, its execution function and its optional handlers.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Every setting of the flow.
    pub config: FlowConfig,
    /// The execution function.
    pub execute: ExecuteFn,
    /// Custom trigger and lifecycle hooks.
    pub handlers: Handlers,
    /// Where the flow is defined.
    pub source: SourceLocation,
}

impl Flow {
    /// Returns the stable key.
    pub fn stable_key(&self) -> &str {
        &self.config.stable_key
    }

    /// Returns the display name.
    pub fn name(&self) -> &str {
        &self.config.name
    }
}

/// A flow registered by `#[flow]`, collected at startup with `inventory`.
#[derive(Debug)]
pub struct FlowRegistration {
    /// Builds the flow; called once when the registry is built.
    pub definition: fn() -> Flow,
}

inventory::collect!(FlowRegistration);

/// Returns the JSON schema of `T` with its type name, for `schemas(invoke(...))`.
pub fn type_schema<T: schemars::JsonSchema>(type_name: &str) -> TypeSchema {
    TypeSchema {
        type_name: type_name.to_owned(),
        schema: serde_json::to_value(schemars::schema_for!(T)).unwrap_or(serde_json::Value::Null),
    }
}
