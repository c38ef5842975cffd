//! `invoke`: runs one flow in this process and prints its result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use flow_core::{FlowOutput, RawBody, TriggerPayload};

use super::{CliError, PreparedRuntime, load_settings, open_store};
use crate::config::Overrides;
use crate::engine::{Completion, Source};
use crate::http::request::{parse_body, query_parameters};
use crate::http::security::API_KEY_HEADER;
use crate::registry::Registry;
use crate::store::DeploymentStatus;

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
    let prepared = PreparedRuntime::new(registry, &settings)?;

    // The command line is checked before the store opens, so a mistake in it leaves no new
    // store file.
    if prepared.registry().get(&args.stable_key).is_none() {
        let keys: Vec<&str> = prepared.registry().flows().iter().map(|flow| flow.stable_key()).collect();
        return Err(CliError::config(format!(
            "flow \"{}\" not found; stable keys: {}",
            args.stable_key,
            keys.join(", ")
        )));
    }
    let instance_id = chosen_instance(&prepared, args.instance.as_deref())?;
    let headers = parsed_headers(&args.headers)?;
    let given_body = match &args.data {
        Some(data) => Some(parsed_body(read_data(data, settings.body_limit)?, &headers, data).await?),
        None => None,
    };

    let store = open_store(&settings).await?;
    // A server keeps state in memory, so it would overwrite the state that this run saves.
    let _lock = store.lock_for_serving().map_err(|error| {
        CliError::config(format!(
            "{}. A server keeps flow state in memory and would overwrite the state this run saves, so send the \
             request to the server's webhook instead",
            error.message
        ))
    })?;
    let (runtime, _) = prepared.on(store.shared());
    let (Some(flow), Some(instance)) = (runtime.registry().get(&args.stable_key), runtime.instance(&instance_id).cloned()) else {
        return Err(CliError::failed(format!(
            "flow \"{}\" or instance \"{instance_id}\" is missing from the runtime built from the configuration",
            args.stable_key
        )));
    };

    // The server rejects webhooks of a deleted instance with 409, so this runs nothing either.
    let deployments = runtime
        .deployments()
        .await
        .map_err(|error| CliError::failed(format!("cannot read instance deployments: {error}")))?;
    if deployments
        .iter()
        .any(|record| record.instance == instance.id && record.status == DeploymentStatus::Deleted)
    {
        return Err(CliError::config(format!(
            "instance \"{}\" is deleted, so its flows do not run; run `deploy {}` first",
            instance.id, instance.id
        )));
    }

    // A scheduled flow run by hand without --data gets the body a tick at this second gets.
    let body = match given_body {
        Some(body) => body,
        None => {
            let tick = runtime.schedule_of(flow.stable_key(), &instance.id).map(|cron| {
                let now = chrono::Utc::now();
                let tick = crate::engine::ScheduledTick {
                    scheduled_at: now - chrono::Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos())),
                    time_zone: cron.zone().name().to_owned(),
                    missed_ticks: 0,
                };
                serde_json::to_vec(&tick).unwrap_or_default()
            });
            parsed_body(tick.unwrap_or_default(), &headers, "").await?
        }
    };

    let execution_id = uuid::Uuid::now_v7().to_string();
    let mut payload = TriggerPayload {
        headers,
        query_parameters: query_parameters(args.query.as_deref()),
        raw_body: RawBody {
            data: body.bytes.to_vec(),
            content_type: body.content_type.clone(),
        },
        body: flow_core::Body {
            data: body.data,
            content_type: body.content_type,
        },
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

/// Returns the instance to run in: `--instance`, or the only configured one.
fn chosen_instance(prepared: &PreparedRuntime, chosen: Option<&str>) -> Result<String, CliError> {
    let mut ids: Vec<&str> = prepared.instances().iter().map(|instance| instance.id.as_str()).collect();
    ids.sort_unstable();
    match (chosen, ids.as_slice()) {
        (Some(id), _) if ids.contains(&id) => Ok(id.to_owned()),
        (Some(id), _) => Err(CliError::config(format!(
            "instance \"{id}\" not found in the configuration; instances: {}",
            ids.join(", ")
        ))),
        (None, [only]) => Ok((*only).to_owned()),
        (None, _) => Err(CliError::config(format!(
            "the configuration has {} instances; choose one with --instance ({})",
            ids.len(),
            ids.join(", ")
        ))),
    }
}

/// Reads each `--header 'Name: value'` into lowercase names. Repeated headers are joined with
/// ", ", as the HTTP layer joins them. An `Api-Key` header is dropped, as the webhook handler
/// drops it, so that no key reaches the flow or the store. `invoke` runs as the operator, who
/// has the configuration, so it checks no key.
fn parsed_headers(lines: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut headers = BTreeMap::new();
    for header in lines {
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
        if name.as_str() == API_KEY_HEADER {
            continue;
        }
        let value = value.to_str().unwrap_or_default().to_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined: &mut String| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(headers)
}

/// A request body with its content type and the data parsed from it.
struct ParsedBody {
    bytes: bytes::Bytes,
    content_type: Option<String>,
    data: flow_core::BodyData,
}

/// Parses `body` by the `content-type` header, or as JSON when that is absent and the body is
/// not empty. `data` is the `--data` argument the body came from, named in a parse error.
async fn parsed_body(body: Vec<u8>, headers: &BTreeMap<String, String>, data: &str) -> Result<ParsedBody, CliError> {
    let content_type = headers
        .get("content-type")
        .cloned()
        .or_else(|| (!body.is_empty()).then(|| "application/json".to_owned()));
    let bytes = bytes::Bytes::from(body);
    let parsed = parse_body(content_type.as_deref(), &bytes).await.map_err(|error| {
        let source = match data.strip_prefix('@') {
            Some(path) => format!("--data file {path}"),
            None => "--data".to_owned(),
        };
        CliError::config(format!("{source}: {error}"))
    })?;
    Ok(ParsedBody {
        bytes,
        content_type,
        data: parsed,
    })
}

/// Reads `--data`: the text itself, or the file after `@`. A body over `limit` bytes is
/// rejected, as the server rejects such a request with 413.
fn read_data(text: &str, limit: usize) -> Result<Vec<u8>, CliError> {
    let too_large = |what: &str| {
        CliError::config(format!(
            "{what} is larger than the body limit of {limit} bytes; send a smaller body or raise server.body_limit"
        ))
    };
    let Some(path) = text.strip_prefix('@') else {
        return if text.len() > limit { Err(too_large("--data")) } else { Ok(text.as_bytes().to_vec()) };
    };

    let cannot_read = |error: std::io::Error| CliError::config(format!("cannot read --data file {path}: {error}"));
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    // Reading one byte past the limit distinguishes a file over the limit from one at it.
    let mut bytes = Vec::new();
    let read_limit = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, read_limit), &mut bytes).map_err(cannot_read)?;
    if bytes.len() > limit {
        return Err(too_large(&format!("--data file {path}")));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, String) {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().join("body.json");
        std::fs::write(&path, bytes).expect("writes the file");
        (folder, format!("@{}", path.display()))
    }

    #[test]
    fn data_file_at_the_limit_is_read() {
        let (_folder, data) = file_of(b"[1,2]");

        assert_eq!(read_data(&data, 5).expect("within the limit"), b"[1,2]");
    }

    #[test]
    fn data_file_over_the_limit_is_rejected() {
        let (_folder, data) = file_of(b"[1,2,3]");

        let error = read_data(&data, 5).expect_err("over the limit");

        assert!(error.message.contains("larger than the body limit of 5 bytes"), "{}", error.message);
        assert!(error.message.contains("body.json"), "{}", error.message);
    }

    #[test]
    fn data_file_is_read_under_the_largest_limit() {
        let (_folder, data) = file_of(b"[1,2]");

        assert_eq!(read_data(&data, usize::MAX).expect("within the limit"), b"[1,2]");
    }

    #[test]
    fn inline_data_over_the_limit_is_rejected() {
        let error = read_data("[1,2,3]", 5).expect_err("over the limit");

        assert!(error.message.starts_with("--data is larger"), "{}", error.message);
    }
}
