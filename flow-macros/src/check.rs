//! Builds the flow's `FlowConfig` from the parsed options and reports every rule it breaks.
//!
//! The rules live in flow-core, and the runtime calls the same ones. This module turns
//! literals into model values and checks only the attribute's surface, such as which options
//! must appear together.
//!
//! An option written with an invalid value already has its error. It enters the config as a
//! placeholder that counts as set, so flow-core reports no follow-on violation about it. The
//! config is emitted only when no error was recorded.

use flow_core::queue::CONCURRENCY_LIMIT;
use flow_core::suggest::closest;
use flow_core::{
    ApiKeySource, EndpointSecurity, FieldPath, FlowConfig, HandlerFlags, InvokeSchemas, PreprocessConfig, QueueConfig,
    QueueMode, RetryConfig, Schedule, ScheduleSource, StepErrorConfig, StepErrorHandler, TriggerType, TypeSchema,
    Violation,
};
use quote::ToTokens;
use syn::LitStr;

use crate::errors::{Errors, Site};
use crate::options::Options;
use crate::violations::Reporter;

/// Placeholder for a `concurrency_limit` written with an invalid value.
const PLACEHOLDER_CONCURRENCY_LIMIT: u32 = *CONCURRENCY_LIMIT.start() as u32;

/// The checked flow: its settings as data plus the Rust items they name.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Settings with `schemas` empty (the runtime generates them) and handler flags set.
    pub(crate) config: FlowConfig,
    pub(crate) input: Option<syn::Type>,
    pub(crate) output: Option<syn::Type>,
    pub(crate) handlers: HandlerPaths,
}

/// The functions named by the handler options.
#[derive(Debug, Default)]
pub(crate) struct HandlerPaths {
    pub(crate) on_trigger: Option<syn::Path>,
    pub(crate) on_instance_deploy: Option<syn::Path>,
    pub(crate) on_instance_delete: Option<syn::Path>,
    pub(crate) webhook_create: Option<syn::Path>,
    pub(crate) webhook_delete: Option<syn::Path>,
}

/// Builds the flow's settings, recording every broken rule in `errors`.
///
/// `function` is the flow function's name. It replaces a missing `name` or `stable_key`, so
/// the other rules can still be checked.
pub(crate) fn check(options: &Options, function: &str, errors: &Errors) -> Checked {
    let handlers = HandlerPaths {
        on_trigger: options.path("on_trigger").cloned(),
        on_instance_deploy: options.path("on_instance_deploy").cloned(),
        on_instance_delete: options.path("on_instance_delete").cloned(),
        webhook_create: options.path("webhook_lifecycle.create").cloned(),
        webhook_delete: options.path("webhook_lifecycle.delete").cloned(),
    };
    let input = options.ty("schemas.invoke.input").cloned();
    let output = options.ty("schemas.invoke.output").cloned();

    let mut reporter = Reporter::new(options, errors);
    let flag = |path: &str| options.written(path);
    let mut config = FlowConfig {
        name: required(options, "name", function, errors),
        stable_key: required(options, "stable_key", function, errors),
        description: options.str("description").map(LitStr::value),
        trigger_type: if flag("polling") {
            TriggerType::Polling
        } else {
            TriggerType::Standard
        },
        schedule: schedule(options, errors),
        synchronous: flag("synchronous"),
        agent: flag("agent"),
        retry: retry(options, errors),
        queue: queue(options, &mut reporter, errors),
        endpoint_security: endpoint_security(options, errors),
        organization_api_keys: organization_api_keys(options),
        preprocess: preprocess(options, errors),
        error_config: error_config(options, errors),
        // The agent rule checks that an input schema is declared. The runtime generates the
        // schema itself, so the entries are cleared again below.
        schemas: InvokeSchemas {
            input: declared_schema(options, "schemas.invoke.input"),
            output: declared_schema(options, "schemas.invoke.output"),
        },
        handlers: HandlerFlags {
            on_trigger: flag("on_trigger"),
            on_instance_deploy: flag("on_instance_deploy"),
            on_instance_delete: flag("on_instance_delete"),
            webhook_create: flag("webhook_lifecycle.create"),
            webhook_delete: flag("webhook_lifecycle.delete"),
        },
    };

    for violation in config.validate() {
        reporter.report(&violation);
    }
    config.schemas = InvokeSchemas::default();

    Checked {
        config,
        input,
        output,
        handlers,
    }
}

fn required(options: &Options, key: &str, function: &str, errors: &Errors) -> String {
    if let Some(literal) = options.str(key) {
        return literal.value();
    }
    if !options.mentioned(key) {
        errors.at(
            Site::call_site(),
            format!(
                "`#[flow]` is missing `{key}`; e.g. `#[flow(name = \"Process Order\", stable_key = \"process-order\")]`"
            ),
        );
    }
    function.to_owned()
}

fn schedule(options: &Options, errors: &Errors) -> Option<Schedule> {
    let group = options.get("schedule")?;
    let cron = options.get("schedule.cron").zip(options.str("schedule.cron"));
    let config_var = options
        .get("schedule.config_var")
        .zip(options.str("schedule.config_var"));
    let source = match (cron, config_var) {
        (Some((_, cron)), None) => ScheduleSource::Cron(cron.value()),
        (None, Some((_, variable))) => ScheduleSource::ConfigVar(variable.value()),
        (Some((cron_entry, _)), Some((variable_entry, variable))) => {
            let message = "`schedule` takes either `cron` or `config_var`, not both; remove one";
            errors.at(cron_entry.site, message);
            errors.at(variable_entry.site, message);
            ScheduleSource::ConfigVar(variable.value())
        }
        (None, None) => {
            if !options.mentioned("schedule.cron") && !options.mentioned("schedule.config_var") {
                errors.at(
                    group.site,
                    "`schedule` is missing `cron` or `config_var`; e.g. `schedule(cron = \"*/5 * * * *\")` \
                     or `schedule(config_var = \"Sync Schedule\")`",
                );
            }
            // A stand-in that passes flow-core's checks, so the missing source gets one error;
            // an attribute with errors registers nothing, so the stand-in never runs.
            ScheduleSource::ConfigVar("missing source".to_owned())
        }
    };
    Some(Schedule {
        source,
        timezone: options.str("schedule.timezone").map(LitStr::value),
    })
}

fn retry(options: &Options, errors: &Errors) -> Option<RetryConfig> {
    let group = options.get("retry")?;
    let example = "retry(max_attempts = 3, delay_minutes = 5)";
    let required_value = |key: &str| {
        let value = options.int(&format!("retry.{key}"));
        if value.is_none() && !options.mentioned(&format!("retry.{key}")) {
            errors.at(group.site, format!("`retry` is missing `{key}`; e.g. `{example}`"));
        }
        value.unwrap_or(0)
    };
    Some(RetryConfig {
        max_attempts: required_value("max_attempts"),
        delay_minutes: required_value("delay_minutes"),
        exponential_backoff: options.written("retry.exponential_backoff"),
        unique_request_id_field: field_path(options, "retry.unique_request_id_field", errors),
    })
}

fn queue(options: &Options, reporter: &mut Reporter<'_>, errors: &Errors) -> Option<QueueConfig> {
    options.get("queue")?;
    let concurrency_limit = match options.int("queue.concurrency_limit") {
        Some(limit) => Some(limit),
        None if options.written("queue.concurrency_limit") => Some(PLACEHOLDER_CONCURRENCY_LIMIT),
        None => None,
    };
    let mode = QueueMode::from_flags(
        options.written("queue.parallel"),
        options.written("queue.throttled"),
        options.written("queue.sequential"),
        concurrency_limit,
    );
    let mode = mode.unwrap_or_else(|violations| {
        for violation in &violations {
            reporter.report(violation);
        }
        QueueMode::Parallel
    });
    Some(QueueConfig {
        mode,
        dedupe_id_field: field_path(options, "queue.dedupe_id_field", errors),
        singleton: options.written("queue.singleton"),
    })
}

fn endpoint_security(options: &Options, errors: &Errors) -> EndpointSecurity {
    let Some(literal) = options.str("endpoint_security") else {
        return EndpointSecurity::default();
    };
    let parsed = parse_literal(literal, EndpointSecurity::parse, EndpointSecurity::NAMES, errors);
    // The placeholder for an invalid value agrees with the keys, whether or not any are set.
    parsed.unwrap_or(if options.written("organization_api_keys") {
        EndpointSecurity::Organization
    } else {
        EndpointSecurity::default()
    })
}

fn organization_api_keys(options: &Options) -> Vec<ApiKeySource> {
    match options.keys("organization_api_keys") {
        Some(keys) => keys.to_vec(),
        // A stand-in for keys that did not parse (already reported), so the rules about
        // organization keys see that keys were written; it is never registered.
        None if options.written("organization_api_keys") => vec![ApiKeySource::Literal("invalid key".to_owned())],
        None => Vec::new(),
    }
}

fn preprocess(options: &Options, errors: &Errors) -> Option<PreprocessConfig> {
    options.get("preprocess")?;
    Some(PreprocessConfig {
        flow_name_field: field_path(options, "preprocess.flow_name_field", errors),
        external_customer_id_field: field_path(options, "preprocess.external_customer_id_field", errors),
        external_customer_user_id_field: field_path(options, "preprocess.external_customer_user_id_field", errors),
    })
}

/// Builds the step error settings. Returns `None` when the handler is missing or invalid,
/// because the handler decides which other options are allowed.
fn error_config(options: &Options, errors: &Errors) -> Option<StepErrorConfig> {
    let group = options.get("error_config")?;
    let Some(literal) = options.str("error_config.handler") else {
        if !options.mentioned("error_config.handler") {
            errors.at(
                group.site,
                "`error_config` is missing `handler`; e.g. `error_config(handler = \"fail\")` or \
                 `error_config(handler = \"retry\", max_attempts = 3, delay_seconds = 10)`",
            );
        }
        return None;
    };
    let handler = parse_literal(literal, StepErrorHandler::parse, StepErrorHandler::NAMES, errors)?;
    Some(StepErrorConfig {
        handler,
        max_attempts: options.int("error_config.max_attempts"),
        delay_seconds: options.int("error_config.delay_seconds"),
        exponential_backoff: options.written("error_config.exponential_backoff"),
        ignore_final_error: options.written("error_config.ignore_final_error"),
    })
}

/// Parses a literal with a flow-core parser, reporting a failure on the literal with the
/// nearest valid spelling.
fn parse_literal<T>(
    literal: &LitStr,
    parse: fn(&str) -> Result<T, Violation>,
    names: &[&str],
    errors: &Errors,
) -> Option<T> {
    let text = literal.value();
    match parse(&text) {
        Ok(value) => Some(value),
        Err(violation) => {
            let message = match closest(&text, names.iter().copied(), 1).first() {
                Some(name) => format!("{}. Did you mean \"{name}\"?", violation.message),
                None => violation.message,
            };
            errors.at(Site::of(literal), message);
            None
        }
    }
}

fn field_path(options: &Options, key: &str, errors: &Errors) -> Option<FieldPath> {
    let Some(literal) = options.str(key) else {
        return options.written(key).then(placeholder_field_path);
    };
    match FieldPath::parse(&literal.value()) {
        Ok(path) => Some(path),
        Err(error) => {
            errors.at(Site::of(literal), format!("`{key}` has an {error}"));
            Some(placeholder_field_path())
        }
    }
}

fn placeholder_field_path() -> FieldPath {
    FieldPath::parse("body").expect("`body` is a trigger payload field")
}

/// Returns the schema entry the agent rule checks for; the runtime generates the schema.
fn declared_schema(options: &Options, key: &str) -> Option<TypeSchema> {
    if !options.written(key) {
        return None;
    }
    let type_name = options
        .ty(key)
        .map(|ty| ty.to_token_stream().to_string())
        .unwrap_or_default();
    Some(TypeSchema {
        type_name,
        schema: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;
    use crate::attr;

    fn check_tokens(tokens: TokenStream) -> (Checked, Vec<String>) {
        let errors = Errors::new();
        let options = attr::parse(tokens, &errors);
        let checked = check(&options, "process_order", &errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(combined) => combined.into_iter().map(|error| error.to_string()).collect(),
        };
        (checked, messages)
    }

    #[test]
    fn full_attribute_builds_the_config() {
        let (checked, messages) = check_tokens(quote! {
            name = "Process Order",
            stable_key = "process-order",
            retry(max_attempts = 3, delay_minutes = 5, unique_request_id_field = "body.data.requestId"),
            queue(throttled, concurrency_limit = 4),
            endpoint_security = "organization",
            organization_api_keys = [env("ORG_KEY")],
            error_config(handler = "retry", max_attempts = 2, delay_seconds = 10),
            schemas(invoke(input = OrderInput)),
            agent,
        });
        assert_eq!(messages, Vec::<String>::new());
        let config = checked.config;
        assert_eq!(config.stable_key, "process-order");
        assert_eq!(config.queue_mode(), QueueMode::Throttled { concurrency_limit: 4 });
        assert_eq!(config.retry.map(|retry| retry.max_attempts), Some(3));
        assert_eq!(config.schemas, InvokeSchemas::default());
        assert!(checked.input.is_some());
    }

    #[test]
    fn missing_name_and_stable_key_are_both_reported() {
        let (_, messages) = check_tokens(quote!(description = "x"));
        assert_eq!(messages.len(), 2);
        assert!(
            messages[0].starts_with("`#[flow]` is missing `name`"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("`#[flow]` is missing `stable_key`"),
            "{}",
            messages[1]
        );
    }

    #[test]
    fn retry_without_delay_is_reported_once() {
        let (_, messages) = check_tokens(quote!(name = "A", stable_key = "a", retry(max_attempts = 3)));
        assert_eq!(
            messages,
            vec!["`retry` is missing `delay_minutes`; e.g. `retry(max_attempts = 3, delay_minutes = 5)`"]
        );
    }

    #[test]
    fn conflict_is_reported_on_both_keys() {
        let (_, messages) = check_tokens(quote! {
            name = "A", stable_key = "a", synchronous, schedule(cron = "* * * * *"),
        });
        assert_eq!(messages.len(), 2);
        assert!(
            messages[1].starts_with("`schedule` conflicts with `synchronous`"),
            "{}",
            messages[1]
        );
    }

    #[test]
    fn misspelt_handler_suggests_the_valid_one() {
        let (_, messages) = check_tokens(quote!(name = "A", stable_key = "a", error_config(handler = "rety")));
        assert_eq!(messages.len(), 1);
        assert!(messages[0].ends_with(". Did you mean \"retry\"?"), "{}", messages[0]);
    }

    #[test]
    fn misspelt_required_option_is_reported_once() {
        let (_, messages) = check_tokens(quote!(
            name = "A",
            stable_kye = "a",
            retry(max_attempt = 3, delay_minutes = 5)
        ));
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages.iter().all(|message| message.starts_with("unknown option")),
            "{messages:?}"
        );
    }

    #[test]
    fn invalid_value_draws_no_follow_on_violation() {
        let (_, messages) = check_tokens(quote! {
            name = "A",
            stable_key = "a",
            endpoint_security = "organisation",
            organization_api_keys = ["k"],
            preprocess(flow_name_field = "data.event"),
        });
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].starts_with("`endpoint_security` must be one of"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("`preprocess.flow_name_field` has an invalid"),
            "{}",
            messages[1]
        );
    }

    #[test]
    fn invalid_concurrency_limit_still_counts_as_set() {
        let (_, messages) = check_tokens(quote!(
            name = "A",
            stable_key = "a",
            queue(throttled, concurrency_limit = "4")
        ));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("`queue.concurrency_limit` takes"),
            "{}",
            messages[0]
        );
    }

    #[test]
    fn empty_preprocess_is_reported_by_the_rule() {
        let (_, messages) = check_tokens(quote!(name = "A", stable_key = "a", preprocess()));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("`preprocess` needs at least one field"),
            "{}",
            messages[0]
        );
    }

    #[test]
    fn invalid_field_path_names_its_option() {
        let (_, messages) = check_tokens(quote!(name = "A", stable_key = "a", queue(dedupe_id_field = "data.id")));
        assert!(
            messages[0].starts_with("`queue.dedupe_id_field` has an invalid field path `data.id`"),
            "{}",
            messages[0]
        );
    }
}
