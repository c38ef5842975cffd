//! Routing of a request to an instance-specific or shared endpoint: run the preprocess flow
//! when there is one, read the routing fields, and pick the flow, the instance and the user.

use std::sync::Arc;
use std::time::Duration;

use flow_core::{BodyData, EndpointType, FieldPath, FlowOutput, HttpResponse, TriggerPayload};
use serde_json::Value;

use super::{Completion, Runtime, Source, SubmitError};
use crate::instance::Instance;
use crate::routing::Routing;

/// The flow and instance a routed request runs in.
#[derive(Debug)]
pub struct Route {
    /// Stable key of the flow to run.
    pub flow: String,
    /// The instance to run it in.
    pub instance: Arc<Instance>,
    /// The request's payload, with `user.externalId` set from the user field. Its execution id
    /// and start time are cleared, so the routed execution gets its own.
    pub payload: TriggerPayload,
    /// `Preprocess` with the preprocess execution's id, or `Webhook` when the fields were read
    /// from the request.
    pub source: Source,
    /// The response returned by the preprocess flow's custom trigger, sent to the caller in
    /// place of the routed flow's result.
    pub trigger_response: Option<HttpResponse>,
}

/// Why a request could not be routed: the HTTP status and a message naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RouteError {
    /// HTTP status for the caller.
    pub status: u16,
    /// The reason, naming the value and what to send instead.
    pub message: String,
    /// The preprocess execution, when one was stored. It stays stored, with its own outcome,
    /// when routing fails after it ran.
    pub execution_id: Option<String>,
}

impl RouteError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            execution_id: None,
        }
    }

    fn of_execution(mut self, execution_id: &str) -> Self {
        self.execution_id = Some(execution_id.to_owned());
        self
    }

    /// Names the preprocess execution when the request was routed by one.
    fn of_source(self, source: &Source) -> Self {
        match source {
            Source::Preprocess(execution_id) => self.of_execution(execution_id),
            _ => self,
        }
    }
}

impl Runtime {
    /// Routes a request to a routed endpoint. `instance_id` is the instance named by an
    /// instance-specific URL, and `None` on a shared endpoint, where the customer field selects
    /// the instance. The preprocess flow, if any, runs first as an execution of its own. Its
    /// result takes the place of `body` when the routing fields are read, and `timeout` bounds
    /// the wait for it.
    ///
    /// # Errors
    ///
    /// Returns a [`RouteError`]: 404 for an unknown instance, flow or customer, 400 for a
    /// missing routing field, 500 when the preprocess flow fails or returns no JSON, 504 when
    /// it has no result within `timeout`. An error raised after the preprocess execution was
    /// stored carries its id.
    pub async fn route(
        &self,
        instance_id: Option<&str>,
        mut payload: TriggerPayload,
        timeout: Duration,
    ) -> Result<Route, RouteError> {
        let Some(routing) = self.registry().routing() else {
            return Err(RouteError::new(
                404,
                "this integration has flow-specific endpoints; send requests to /webhooks/{instance}/{stable_key}",
            ));
        };
        let url_instance = match instance_id {
            Some(id) => Some(
                self.instance(id)
                    .cloned()
                    .ok_or_else(|| RouteError::new(404, format!("instance \"{id}\" not found")))?,
            ),
            None => None,
        };

        let (fields, source, trigger_response) = match (&routing.preprocess_flow, &url_instance) {
            (Some(preprocess), Some(instance)) => self.run_preprocess(preprocess, instance, payload.clone(), timeout).await?,
            (Some(preprocess), None) => {
                return Err(RouteError::new(
                    500,
                    format!("the preprocess flow \"{preprocess}\" needs an instance, and a shared endpoint has none"),
                ));
            }
            (None, _) => (payload.field_source(), Source::Webhook, None),
        };
        // The body's text gives numbers their digits as sent, unless the preprocess flow's
        // result took the place of the body.
        let body_text = match (&routing.preprocess_flow, &payload.body.data) {
            (None, BodyData::Json(json)) => json.text(),
            _ => None,
        };
        let values = RoutingValues { fields, body_text };

        // The preprocess execution is stored by now, so each error names it.
        let flow = self.routed_flow(routing, &values).map_err(|error| error.of_source(&source))?;
        let instance = match url_instance {
            Some(instance) => {
                check_customer(routing, &values, &instance).map_err(|error| error.of_source(&source))?;
                instance
            }
            None => self.customer_instance(routing, &values).map_err(|error| error.of_source(&source))?,
        };
        if let Some(user_field) = &routing.fields.external_customer_user_id_field {
            payload.user.external_id = values.id(user_field);
        }

        // The routed execution gets its own id and start time when it is submitted.
        payload.execution_id = String::new();
        payload.started_at = None;
        tracing::info!(flow = %flow, instance = %instance.id, source = source.name(), "request routed");
        Ok(Route {
            flow,
            instance,
            payload,
            source,
            trigger_response,
        })
    }

    /// Runs the preprocess flow's trigger and execution on the request and returns the JSON the
    /// routing fields read, with the flow's result in place of `body`.
    async fn run_preprocess(
        &self,
        preprocess: &str,
        instance: &Arc<Instance>,
        mut payload: TriggerPayload,
        timeout: Duration,
    ) -> Result<(Value, Source, Option<HttpResponse>), RouteError> {
        let flow = self
            .registry()
            .get(preprocess)
            .expect("Routing::check takes the preprocess flow from the registry's flows");
        let execution_id = uuid::Uuid::now_v7().to_string();
        self.describe_payload(&mut payload, flow, instance, &execution_id);
        let trigger = self
            .run_trigger(flow, instance, payload)
            .await
            .map_err(|rejection| RouteError::new(rejection.status, rejection.message))?;

        let mut fields = trigger.payload.field_source();
        let submitted = self
            .submit(preprocess, &instance.id, trigger.payload, Source::Webhook, true)
            .await
            .map_err(|error| match error {
                SubmitError::Store(error) => {
                    tracing::error!(%error, flow = preprocess, instance = %instance.id, "preprocess execution not confirmed as stored");
                    RouteError::new(503, format!("the store did not confirm the preprocess execution: {error}; retry the request"))
                }
                other => RouteError::new(500, other.to_string()),
            })?;
        let execution_id = submitted.execution_id;
        let Some(completion) = submitted.completion else {
            return Err(RouteError::new(
                409,
                format!("the request was deduplicated into preprocess execution {execution_id} and was not routed"),
            )
            .of_execution(&execution_id));
        };

        let result = match tokio::time::timeout(timeout, completion).await {
            Ok(Ok(Completion::Succeeded(FlowOutput::Data(value)))) => value,
            Ok(Ok(Completion::Succeeded(FlowOutput::Response(_)))) => {
                return Err(RouteError::new(
                    500,
                    format!(
                        "the preprocess flow \"{preprocess}\" returned an HTTP response; return JSON that holds the \
                         routing fields"
                    ),
                )
                .of_execution(&execution_id));
            }
            Ok(Ok(Completion::Failed { error, .. })) => {
                return Err(RouteError::new(500, format!("the preprocess flow \"{preprocess}\" failed: {error}"))
                    .of_execution(&execution_id));
            }
            Ok(Err(_)) => {
                return Err(RouteError::new(503, "the runtime is shutting down; retry the request")
                    .of_execution(&execution_id));
            }
            Err(_) => {
                return Err(RouteError::new(
                    504,
                    format!(
                        "the preprocess flow \"{preprocess}\" gave no result within {} seconds",
                        timeout.as_secs()
                    ),
                )
                .of_execution(&execution_id));
            }
        };

        if let Some(object) = fields.as_object_mut() {
            object.insert("body".to_owned(), result);
        }
        Ok((fields, Source::Preprocess(execution_id), trigger.response))
    }

    /// Returns the stable key of the flow the flow name field names; the preprocess flow is
    /// not a target.
    fn routed_flow(&self, routing: &Routing, values: &RoutingValues<'_>) -> Result<String, RouteError> {
        let field = routing.flow_name_field();
        let name = required(field, values, "the flow's name or stable key")?;
        let flow = self.registry().find(&name).ok_or_else(|| {
            RouteError::new(
                404,
                format!("flow \"{name}\" not found; the routing field `{field}` must name a flow by name or stable key"),
            )
        })?;
        if Some(flow.stable_key()) == routing.preprocess_flow.as_deref() {
            return Err(RouteError::new(
                404,
                format!(
                    "the routing field `{field}` names the preprocess flow \"{name}\", which only routes requests; it must \
                     name another flow"
                ),
            ));
        }
        Ok(flow.stable_key().to_owned())
    }

    /// Returns the instance whose customer has the external id the customer field holds.
    fn customer_instance(&self, routing: &Routing, values: &RoutingValues<'_>) -> Result<Arc<Instance>, RouteError> {
        let Some(field) = &routing.fields.external_customer_id_field else {
            return Err(RouteError::new(500, "a shared endpoint needs `external_customer_id_field`"));
        };
        let customer = required(field, values, "the customer's external id")?;
        self.instances()
            .find(|instance| instance.customer.external_id.as_deref() == Some(customer.as_str()))
            .cloned()
            .ok_or_else(|| {
                RouteError::new(
                    404,
                    format!("no instance belongs to customer \"{customer}\" (read from the routing field `{field}`)"),
                )
            })
    }
}

/// The values that routing fields are read from: the payload with its parsed body, or with the
/// preprocess flow's result in place of `body`.
struct RoutingValues<'a> {
    fields: Value,
    /// The JSON text of the request's body, when `body` in `fields` was parsed from it.
    body_text: Option<&'a str>,
}

impl RoutingValues<'_> {
    /// Returns the identifier at `field`. A number in the request's JSON body keeps its digits
    /// as sent, so customer ids beyond 64 bits stay distinct.
    fn id(&self, field: &FieldPath) -> Option<String> {
        field.resolve_id_in(&self.fields, self.body_text)
    }
}

/// Checks that the customer named by the request, when the routing reads one, owns the
/// instance of an instance-specific URL.
fn check_customer(routing: &Routing, values: &RoutingValues<'_>, instance: &Instance) -> Result<(), RouteError> {
    debug_assert_eq!(routing.endpoint_type, EndpointType::InstanceSpecific);
    let Some(field) = &routing.fields.external_customer_id_field else {
        return Ok(());
    };
    let Some(customer) = values.id(field) else {
        return Ok(());
    };
    if instance.customer.external_id.as_deref() == Some(customer.as_str()) {
        return Ok(());
    }
    Err(RouteError::new(
        404,
        format!(
            "customer \"{customer}\" (read from the routing field `{field}`) has no instance at /webhooks/{}",
            instance.id
        ),
    ))
}

/// Reads a routing field that must be present.
fn required(field: &FieldPath, values: &RoutingValues<'_>, meaning: &str) -> Result<String, RouteError> {
    values.id(field).ok_or_else(|| {
        RouteError::new(
            400,
            format!("the routing field `{field}`, which contains {meaning}, is missing or not a string or number"),
        )
    })
}
