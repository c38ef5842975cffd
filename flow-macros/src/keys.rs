//! Every option `#[flow]` accepts: its attribute path, the kind of value it takes and an
//! example that error messages show as the fix.

/// The kind of value an option takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A bare word: `synchronous`.
    Flag,
    /// A string literal: `name = "Process Order"`.
    Str,
    /// A non-negative integer literal that fits in `u32`: `max_attempts = 3`.
    Int,
    /// The path of a function: `on_trigger = verify_signature`.
    Path,
    /// A type: `input = OrderInput`.
    Type,
    /// A list of string literals and `env("VAR")` calls: `["key", env("ORG_KEY")]`.
    KeyList,
    /// Nested options in parentheses: `retry(max_attempts = 3, delay_minutes = 5)`.
    Group(&'static [Spec]),
}

impl Kind {
    /// Describes the expected value, completing "`key` takes ...".
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Self::Flag => "no value",
            Self::Str => "a string literal",
            Self::Int => "a non-negative integer literal",
            Self::Path => "the name of an `async fn`",
            Self::Type => "a type that implements `schemars::JsonSchema`",
            Self::KeyList => "a list of keys, each a string literal or `env(\"VAR\")`",
            Self::Group(_) => "options in parentheses",
        }
    }
}

/// One option of the attribute.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Dotted path as flow-core's `Violation::keys` name it: `retry.max_attempts`.
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
    /// Example of the option as written, shown in messages after "e.g.".
    pub(crate) example: &'static str,
}

impl Spec {
    /// Returns the option's name as written inside its parentheses: `max_attempts`.
    pub(crate) fn name(&self) -> &'static str {
        self.path.rsplit('.').next().unwrap_or(self.path)
    }
}

const fn spec(path: &'static str, kind: Kind, example: &'static str) -> Spec {
    Spec { path, kind, example }
}

/// The top-level options of `#[flow(...)]`.
pub(crate) const FLOW: &[Spec] = &[
    spec("name", Kind::Str, "name = \"Process Order\""),
    spec("stable_key", Kind::Str, "stable_key = \"process-order\""),
    spec(
        "description",
        Kind::Str,
        "description = \"Creates the order in the ERP\"",
    ),
    spec("synchronous", Kind::Flag, "synchronous"),
    spec("agent", Kind::Flag, "agent"),
    spec("polling", Kind::Flag, "polling"),
    spec(
        "schedule",
        Kind::Group(SCHEDULE),
        "schedule(cron = \"*/5 * * * *\", timezone = \"America/Chicago\")",
    ),
    spec("on_trigger", Kind::Path, "on_trigger = verify_signature"),
    spec(
        "retry",
        Kind::Group(RETRY),
        "retry(max_attempts = 3, delay_minutes = 5)",
    ),
    spec("queue", Kind::Group(QUEUE), "queue(throttled, concurrency_limit = 4)"),
    spec(
        "endpoint_security",
        Kind::Str,
        "endpoint_security = \"customer_required\"",
    ),
    spec(
        "organization_api_keys",
        Kind::KeyList,
        "organization_api_keys = [\"key\", env(\"ORDERS_ORG_KEY\")]",
    ),
    spec(
        "preprocess",
        Kind::Group(PREPROCESS),
        "preprocess(flow_name_field = \"body.data.event\")",
    ),
    spec(
        "error_config",
        Kind::Group(ERROR_CONFIG),
        "error_config(handler = \"retry\", max_attempts = 3, delay_seconds = 10)",
    ),
    spec(
        "schemas",
        Kind::Group(SCHEMAS),
        "schemas(invoke(input = OrderInput, output = OrderOutput))",
    ),
    spec("on_instance_deploy", Kind::Path, "on_instance_deploy = on_deploy"),
    spec("on_instance_delete", Kind::Path, "on_instance_delete = on_delete"),
    spec(
        "webhook_lifecycle",
        Kind::Group(WEBHOOK_LIFECYCLE),
        "webhook_lifecycle(create = register_webhook, delete = remove_webhook)",
    ),
];

const SCHEDULE: &[Spec] = &[
    spec("schedule.cron", Kind::Str, "cron = \"*/5 * * * *\""),
    spec("schedule.config_var", Kind::Str, "config_var = \"Sync Schedule\""),
    spec("schedule.timezone", Kind::Str, "timezone = \"America/Chicago\""),
];

const RETRY: &[Spec] = &[
    spec("retry.max_attempts", Kind::Int, "max_attempts = 3"),
    spec("retry.delay_minutes", Kind::Int, "delay_minutes = 5"),
    spec("retry.exponential_backoff", Kind::Flag, "exponential_backoff"),
    spec(
        "retry.unique_request_id_field",
        Kind::Str,
        "unique_request_id_field = \"body.data.requestId\"",
    ),
];

const QUEUE: &[Spec] = &[
    spec("queue.parallel", Kind::Flag, "parallel"),
    spec("queue.throttled", Kind::Flag, "throttled"),
    spec("queue.sequential", Kind::Flag, "sequential"),
    spec("queue.concurrency_limit", Kind::Int, "concurrency_limit = 4"),
    spec("queue.dedupe_id_field", Kind::Str, "dedupe_id_field = \"body.data.id\""),
    spec("queue.singleton", Kind::Flag, "singleton"),
];

const PREPROCESS: &[Spec] = &[
    spec(
        "preprocess.flow_name_field",
        Kind::Str,
        "flow_name_field = \"body.data.event\"",
    ),
    spec(
        "preprocess.external_customer_id_field",
        Kind::Str,
        "external_customer_id_field = \"body.data.customerId\"",
    ),
    spec(
        "preprocess.external_customer_user_id_field",
        Kind::Str,
        "external_customer_user_id_field = \"body.data.userId\"",
    ),
];

const ERROR_CONFIG: &[Spec] = &[
    spec("error_config.handler", Kind::Str, "handler = \"retry\""),
    spec("error_config.max_attempts", Kind::Int, "max_attempts = 3"),
    spec("error_config.delay_seconds", Kind::Int, "delay_seconds = 10"),
    spec("error_config.exponential_backoff", Kind::Flag, "exponential_backoff"),
    spec("error_config.ignore_final_error", Kind::Flag, "ignore_final_error"),
];

const SCHEMAS: &[Spec] = &[spec(
    "schemas.invoke",
    Kind::Group(INVOKE),
    "invoke(input = OrderInput, output = OrderOutput)",
)];

const INVOKE: &[Spec] = &[
    spec("schemas.invoke.input", Kind::Type, "input = OrderInput"),
    spec("schemas.invoke.output", Kind::Type, "output = OrderOutput"),
];

const WEBHOOK_LIFECYCLE: &[Spec] = &[
    spec("webhook_lifecycle.create", Kind::Path, "create = register_webhook"),
    spec("webhook_lifecycle.delete", Kind::Path, "delete = remove_webhook"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn all(specs: &'static [Spec], into: &mut Vec<&'static Spec>) {
        for spec in specs {
            into.push(spec);
            if let Kind::Group(children) = spec.kind {
                all(children, into);
            }
        }
    }

    #[test]
    fn child_paths_start_with_their_parent() {
        let mut specs = Vec::new();
        all(FLOW, &mut specs);
        for spec in &specs {
            if let Kind::Group(children) = spec.kind {
                for child in children {
                    assert_eq!(child.path, format!("{}.{}", spec.path, child.name()));
                }
            }
        }
    }

    #[test]
    fn every_example_starts_with_its_option_name() {
        let mut specs = Vec::new();
        all(FLOW, &mut specs);
        for spec in specs {
            assert!(spec.example.starts_with(spec.name()), "{}: {}", spec.path, spec.example);
        }
    }
}
