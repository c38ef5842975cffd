//! `executions list` and `executions show`: read the store.

use std::path::PathBuf;

use super::{CliError, load_settings, open_store};
use crate::config::{Overrides, StoreLocation};
use crate::http::given;
use crate::store::{ExecutionFilter, ExecutionStatus, ExecutionSummary, StoreError, execution_with_lineage, list_page};

#[derive(Debug, clap::Subcommand)]
pub(super) enum ExecutionsCommand {
    /// Lists executions, newest first.
    List {
        /// Only this flow (stable key).
        #[arg(long)]
        flow: Option<String>,
        /// Only this status: queued, running, succeeded, failed or cancelled.
        #[arg(long)]
        status: Option<ExecutionStatus>,
        /// Only this instance.
        #[arg(long)]
        instance: Option<String>,
        /// Only executions that this execution started (flows it invoked, requests it routed).
        #[arg(long)]
        parent: Option<String>,
        /// Only executions stored before the execution with this id. Pass the ID from the
        /// `more executions: pass --cursor ID` line of the previous page to list the next page.
        #[arg(long, value_name = "ID")]
        cursor: Option<String>,
        /// At most this many, at least 1.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Prints JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows one execution as JSON: status, result, error, attempts and logs.
    Show {
        /// Execution id.
        id: String,
    },
}

pub(super) async fn run(config: Option<PathBuf>, overrides: Overrides, command: ExecutionsCommand) -> Result<(), CliError> {
    let settings = load_settings(config, &overrides)?;
    if let StoreLocation::Sqlite(path) = &settings.store
        && !path.exists()
    {
        return Err(CliError::config(format!(
            "no store at {}; pass the server's --config FILE or --store URL",
            path.display()
        )));
    }
    let store = open_store(&settings).await?.shared();
    match command {
        ExecutionsCommand::List {
            flow,
            status,
            instance,
            parent,
            cursor,
            limit,
            json,
        } => {
            // An empty value filters nothing, as in `GET /executions?flow=`.
            let filter = ExecutionFilter {
                flow: given(flow),
                instance: given(instance),
                status,
                parent: given(parent),
                before: given(cursor),
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            };
            let (executions, next_cursor) = list_page(store.as_ref(), filter).await.map_err(|error| match error {
                StoreError::UnknownCursor(_) => {
                    CliError::config(format!("{error}; pass the --cursor ID that the previous page printed on stderr"))
                }
                other => CliError::failed(other.to_string()),
            })?;

            // Standard output keeps the format that scripts parse, and the cursor goes to stderr.
            print_executions(&executions, json);
            if let Some(id) = next_cursor {
                eprintln!("more executions: pass --cursor {id}");
            }
            Ok(())
        }
        ExecutionsCommand::Show { id } => {
            let record = execution_with_lineage(store.as_ref(), &id).await.map_err(|error| CliError::failed(error.to_string()))?;
            match record {
                Some(record) => {
                    print_line!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
                    Ok(())
                }
                None => Err(CliError::config(format!("execution \"{id}\" not found in {}", settings.store))),
            }
        }
    }
}

/// Prints executions to stdout as a JSON array or as a table.
fn print_executions(executions: &[ExecutionSummary], json: bool) {
    if json {
        print_line!("{}", serde_json::to_string_pretty(executions).unwrap_or_default());
        return;
    }
    print_line!("{:<38} {:<24} {:<12} {:<10} {:>8}  {}", "ID", "FLOW", "INSTANCE", "STATUS", "ATTEMPTS", "CREATED");
    for execution in executions {
        print_line!(
            "{:<38} {:<24} {:<12} {:<10} {:>8}  {}",
            execution.id,
            execution.flow,
            execution.instance,
            execution.status,
            execution.attempts,
            execution.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
    }
}
