//! The flow model: definitions, trigger payloads, results, errors and validation rules.
//!
//! This crate is pure data and rules, with no I/O. The `#[flow]` macro calls the rules on
//! literal attribute values at compile time, and the runtime calls the same rules on values
//! known only at deploy time (a cron expression read from a config variable, for one).

pub mod endpoint;
pub mod field_path;
pub mod flow;
pub mod json_body;
pub mod media;
pub mod output;
pub mod payload;
pub mod preprocess;
pub mod queue;
pub mod retry;
pub mod schedule;
pub mod security;
pub mod step_error;
pub mod suggest;
pub mod violation;

pub use endpoint::EndpointType;
pub use field_path::{FieldPath, FieldPathError};
pub use flow::{FlowConfig, HandlerFlags, InvokeSchemas, TriggerType, TypeSchema, check_name, check_stable_key};
pub use json_body::JsonBody;
pub use media::MediaKind;
pub use output::{ExecutionParams, FlowError, FlowOutput, FlowResult, HttpResponse, TriggerError, TriggerResult};
pub use payload::{Body, BodyData, Customer, FlowRef, InstanceRef, IntegrationRef, ParamValue, RawBody, TriggerPayload, User};
pub use preprocess::PreprocessConfig;
pub use queue::{QueueConfig, QueueMode};
pub use retry::RetryConfig;
pub use schedule::{CronSchedule, Schedule, ScheduleSource, check_cron, parse_time_zone};
pub use security::{API_KEY_HEADER, ApiKeySource, EndpointSecurity};
pub use step_error::{StepErrorConfig, StepErrorHandler};
pub use violation::Violation;
