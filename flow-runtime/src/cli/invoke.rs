//! `invoke`: runs one flow in this process and prints its result.

use std::path::PathBuf;

use flow_core::{FlowOutput, RawBody, TriggerPayload};

use super::{CliError, build_runtime, load_settings, open_store};
use crate::config::Overrides;
use crate::engine::{Completion, Source};
use crate::http::request::{parse_body, query_parameters};
use crate::registry::Registry;

#[derive(Debug, clap::Args)]
pub(super) struct InvokeArgs {
    /// Stable key of the flow to run.
    stable_key: String,

    /// Request body: JSON text, or @FILE to read it from a file.
    #[arg(long)]
    data: Option<String>,

    /// A request header as 'Name: value'; repeat for more.
    #[arg(long = "header", value_name = "'NAME: VALUE'")]
    headers: Vec<String>,

    /// Query string without the leading '?', such as 'page=2&tag=a'.
    #[arg(long)]
    query: Option<String>,

    /// Instance to run in; may be left out when the configuration has one instance (`default`
    /// when there is no configuration file).
    #[arg(long)]
    instance: Option<String>,
}

pub(super) async fn invoke(
    registry: Registry,
    config: Option<PathBuf>,
    overrides: Overrides,
    args: InvokeArgs,
) -> Result<(), CliError> {
    let settings = load_settings(config, &overrides)?;
    let store = open_store(&settings).await?;
    let (runtime, _) = build_runtime(registry, &settings, store.shared())?;

    let Some(flow) = runtime.registry().get(&args.stable_key) else {
        let keys: Vec<&str> = runtime.registry().flows().iter().map(|flow| flow.stable_key()).collect();
        return Err(CliError::config(format!(
            "flow \"{}\" not found; stable keys: {}",
            args.stable_key,
            keys.join(", ")
        )));
    };
    let instance_id = match &args.instance {
        Some(id) => id.clone(),
        None => {
            let ids: Vec<&str> = runtime.instances().map(|instance| instance.id.as_str()).collect();
            match ids.as_slice() {
                [only] => (*only).to_owned(),
                _ => {
                    return Err(CliError::config(format!(
                        "the configuration has {} instances; choose one with --instance ({})",
                        ids.len(),
                        ids.join(", ")
                    )));
                }
            }
        }
    };
    let Some(instance) = runtime.instance(&instance_id).cloned() else {
        return Err(CliError::config(format!("instance \"{instance_id}\" not found in the configuration")));
    };

    // A scheduled flow run by hand without --data gets the body a tick at this second gets.
    let scheduled = runtime.schedule_of(flow.stable_key(), &instance.id);
    let body = match (&args.data, scheduled) {
        (None, Some(cron)) => {
            let now = chrono::Utc::now();
            let tick = crate::engine::ScheduledTick {
                scheduled_at: now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos())),
                time_zone: cron.zone().name().to_owned(),
                missed_ticks: 0,
            };
            serde_json::to_vec(&tick).unwrap_or_default()
        }
        _ => read_data(args.data.as_deref())?,
    };
    let mut headers = std::collections::BTreeMap::new();
    for header in &args.headers {
        let parsed = header.split_once(':').and_then(|(name, value)| {
            let name = http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(value.trim()).ok()?;
            Some((name, value))
        });
        let Some((name, value)) = parsed else {
            return Err(CliError::config(format!(
                "--header \"{header}\" is not a valid 'Name: value' header; e.g. --header 'X-GitHub-Event: push'"
            )));
        };
        let value = value.to_str().unwrap_or_default().to_owned();
        // Repeated headers are joined with ", ", as the HTTP layer joins them.
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    let content_type = headers
        .get("content-type")
        .cloned()
        .or_else(|| (!body.is_empty()).then(|| "application/json".to_owned()));
    let bytes = bytes::Bytes::from(body);
    let data = parse_body(content_type.as_deref(), &bytes)
        .await
        .map_err(|error| CliError::config(format!("--data: {error}")))?;

    let execution_id = uuid::Uuid::now_v7().to_string();
    let mut payload = TriggerPayload {
        headers,
        query_parameters: query_parameters(args.query.as_deref()),
        raw_body: RawBody {
            data: bytes.to_vec(),
            content_type: content_type.clone(),
        },
        body: flow_core::Body { data, content_type },
        ..TriggerPayload::default()
    };
    runtime.describe_payload(&mut payload, flow, &instance, &execution_id);

    let polling = flow.config.trigger_type == flow_core::TriggerType::Polling;
    let triggered = if polling {
        runtime.run_poll(flow, &instance, payload).await
    } else {
        runtime.run_trigger(flow, &instance, payload).await
    };
    let trigger = triggered.map_err(|rejection| CliError::failed(format!("the trigger rejected the request: {rejection}")))?;
    if trigger.polled_no_changes {
        eprintln!("the poll found no changes; nothing ran (the saved polling state is not changed by `invoke`)");
        return Ok(());
    }
    if let Some(response) = &trigger.response {
        eprintln!("trigger response: {}", serde_json::to_string(response).unwrap_or_default());
    }

    let (execution_id, completion) = runtime
        .run_now(flow.stable_key(), &instance.id, trigger.payload, Source::Cli)
        .await
        .map_err(|error| CliError::failed(error.to_string()))?;
    eprintln!("execution {execution_id}");
    match completion {
        Completion::Succeeded(FlowOutput::Data(value)) => {
            print_line!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            Ok(())
        }
        Completion::Succeeded(FlowOutput::Response(response)) => {
            print_line!("{}", serde_json::to_string_pretty(&response).unwrap_or_default());
            Ok(())
        }
        Completion::Failed { error, retrying } => {
            let retry_note = if retrying { "; a retry is scheduled and runs under `serve`" } else { "" };
            Err(CliError::failed(format!("execution {execution_id} failed: {error}{retry_note}")))
        }
    }
}

/// Reads `--data`: JSON text as given, or the bytes of the file after `@`.
fn read_data(data: Option<&str>) -> Result<Vec<u8>, CliError> {
    match data {
        None => Ok(Vec::new()),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).map_err(|error| CliError::config(format!("cannot read --data file {path}: {error}")))
            }
            None => Ok(text.as_bytes().to_vec()),
        },
    }
}
