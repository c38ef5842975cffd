//! `schedule`: prints a scheduled flow's next fire instants.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{CliError, env_var, load_settings};
use crate::config::RuntimeSettings;
use crate::config::{Overrides, build_instances, resolve_schedule};
use crate::registry::Registry;

#[derive(Debug, clap::Args)]
pub(super) struct ScheduleArgs {
    /// Stable key of a flow with a schedule.
    stable_key: String,

    /// How many fire instants to print, from 1 to 10000.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    next: u16,

    /// Instant to search after, as RFC 3339 (e.g. 2026-03-08T00:00:00Z); now when omitted.
    #[arg(long, value_name = "RFC3339-INSTANT")]
    after: Option<String>,

    /// Instance whose config variables hold the schedule; may be left out when the
    /// configuration has one instance.
    #[arg(long)]
    instance: Option<String>,
}

/// Prints the lines of [`fire_lines`].
pub(super) fn schedule(
    registry: &Registry,
    config: Option<PathBuf>,
    overrides: &Overrides,
    args: ScheduleArgs,
) -> Result<(), CliError> {
    let settings = load_settings(config, overrides)?;
    for line in fire_lines(registry, &settings, &args)? {
        print_line!("{line}");
    }
    Ok(())
}

/// Returns one line per fire instant: the instant in UTC as `YYYY-MM-DDTHH:MM:SSZ`, then the
/// same instant in the schedule's time zone with its offset.
fn fire_lines(registry: &Registry, settings: &RuntimeSettings, args: &ScheduleArgs) -> Result<Vec<String>, CliError> {
    let Some(flow) = registry.get(&args.stable_key) else {
        return Err(CliError::config(format!("flow \"{}\" not found", args.stable_key)));
    };
    let Some(schedule) = &flow.config.schedule else {
        return Err(CliError::config(format!(
            "flow \"{}\" has no schedule; add `schedule(cron = \"...\")` to its #[flow] attribute",
            args.stable_key
        )));
    };
    let after = match &args.after {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|instant| instant.with_timezone(&Utc))
            .map_err(|error| {
                CliError::config(format!("--after \"{text}\" is not an RFC 3339 instant ({error}); e.g. 2026-03-08T00:00:00Z"))
            })?,
        None => Utc::now(),
    };

    // A literal schedule needs no instance, so it works without the server's configuration.
    let cron = match &schedule.source {
        flow_core::ScheduleSource::Cron(expression) if args.instance.is_none() => {
            flow_core::CronSchedule::parse(expression, schedule.timezone.as_deref())
                .map_err(|violation| CliError::config(violation.message))?
        }
        _ => instance_schedule(registry, settings, args, schedule)?,
    };
    let lines = cron
        .upcoming(after, usize::from(args.next))
        .into_iter()
        .map(|instant| {
            let local = instant.with_timezone(&cron.zone());
            format!(
                "{} {}",
                instant.to_rfc3339_opts(SecondsFormat::Secs, true),
                local.format("%Y-%m-%dT%H:%M:%S%:z")
            )
        })
        .collect();
    Ok(lines)
}

/// Resolves a schedule in the instance named by `--instance`, or the only instance.
fn instance_schedule(
    registry: &Registry,
    settings: &RuntimeSettings,
    args: &ScheduleArgs,
    schedule: &flow_core::Schedule,
) -> Result<flow_core::CronSchedule, CliError> {
    let instances = build_instances(settings, registry, env_var).map_err(|error| CliError::config(error.to_string()))?;
    let instance = match &args.instance {
        Some(id) => instances
            .iter()
            .find(|instance| &instance.id == id)
            .ok_or_else(|| {
                let ids: Vec<&str> = instances.iter().map(|instance| instance.id.as_str()).collect();
                CliError::config(format!("instance \"{id}\" not found in the configuration; instances: {}", ids.join(", ")))
            })?,
        None => match instances.as_slice() {
            [only] => only,
            _ => {
                return Err(CliError::config(
                    "the configuration has several instances; choose one with --instance",
                ));
            }
        },
    };

    resolve_schedule(schedule, &instance.config, &instance.secret_config, &instance.id).map_err(CliError::config)
}

#[cfg(test)]
mod tests {
    use flow_core::{FlowConfig, Schedule, ScheduleSource};

    use super::*;
    use crate::config::{FileConfig, RuntimeSettings};
    use crate::definition::{Flow, Handlers, SourceLocation};
    use crate::integration::Integration;

    fn registry(source: ScheduleSource, timezone: &str) -> Registry {
        let flow = Flow {
            config: FlowConfig {
                name: "Nightly Report".into(),
                stable_key: "nightly-report".into(),
                schedule: Some(Schedule {
                    source,
                    timezone: Some(timezone.into()),
                }),
                ..FlowConfig::default()
            },
            execute: |_, _| Box::pin(async { Ok(serde_json::Value::Null.into()) }),
            handlers: Handlers::default(),
            source: SourceLocation {
                file: "report.rs",
                line: 1,
                function: "nightly_report",
            },
        };
        let integration = Integration::new("t", "t", "0").config_var(crate::integration::ConfigVar::new("Report Schedule"));
        Registry::new(integration, vec![flow]).expect("valid")
    }

    fn args(after: &str, next: u16) -> ScheduleArgs {
        ScheduleArgs {
            stable_key: "nightly-report".into(),
            next,
            after: Some(after.into()),
            instance: None,
        }
    }

    fn settings(text: &str) -> RuntimeSettings {
        let file: FileConfig = toml::from_str(text).expect("valid TOML");
        RuntimeSettings::resolve(file, &Overrides::default(), |_| None).expect("valid")
    }

    #[test]
    fn lines_show_utc_then_the_zone_across_spring_forward() {
        let registry = registry(ScheduleSource::Cron("0 12 * * 0".into()), "Europe/Berlin");
        let lines = fire_lines(&registry, &settings(""), &args("2022-03-24T11:00:00Z", 2)).expect("valid");
        assert_eq!(
            lines,
            vec![
                "2022-03-27T10:00:00Z 2022-03-27T12:00:00+02:00".to_owned(),
                "2022-04-03T10:00:00Z 2022-04-03T12:00:00+02:00".to_owned(),
            ]
        );
    }

    #[test]
    fn schedule_from_a_config_variable_is_read_from_the_instance() {
        let registry = registry(ScheduleSource::ConfigVar("Report Schedule".into()), "UTC");
        let text = "[[instances]]\nid = \"acme\"\nconfig = { \"Report Schedule\" = \"0 6 * * *\" }\n";
        let lines = fire_lines(&registry, &settings(text), &args("2026-01-01T00:00:00Z", 1)).expect("valid");
        assert_eq!(lines, vec!["2026-01-01T06:00:00Z 2026-01-01T06:00:00+00:00".to_owned()]);
    }

    #[test]
    fn invalid_after_instant_names_the_value() {
        let registry = registry(ScheduleSource::Cron("0 6 * * *".into()), "UTC");
        let error = fire_lines(&registry, &settings(""), &args("yesterday", 1)).expect_err("invalid");
        assert!(error.message.contains("--after \"yesterday\""), "{}", error.message);
    }

    #[test]
    fn literal_schedule_needs_no_instance_config() {
        let registry = registry(ScheduleSource::Cron("0 12 * * 0".into()), "Europe/Berlin");
        let several = settings("[[instances]]\nid = \"a\"\n[[instances]]\nid = \"b\"\n");
        let lines = fire_lines(&registry, &several, &args("2022-03-24T11:00:00Z", 1)).expect("valid");
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn invalid_config_var_schedule_names_the_variable() {
        let registry = registry(ScheduleSource::ConfigVar("Report Schedule".into()), "UTC");
        let settings = settings("[[instances]]\nid = \"acme\"\nconfig = { \"Report Schedule\" = \"61 * * * *\" }\n");
        let error = fire_lines(&registry, &settings, &args("2022-03-24T11:00:00Z", 1)).expect_err("invalid minute");
        assert!(error.message.contains("config variable \"Report Schedule\" holds \"61 * * * *\""), "{}", error.message);
    }
}
