//! Schedules: a cron expression or a config variable holding one, in an IANA time zone.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::suggest::closest;
use crate::violation::Violation;

/// Source of a flow's cron expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScheduleSource {
    /// A cron expression written in the attribute, checked at compile time.
    Cron(String),
    /// The name of a config variable whose value is the cron expression, checked at deploy time.
    ConfigVar(String),
}

/// When a scheduled or polling flow runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// The cron expression, or the config variable that contains it.
    pub source: ScheduleSource,
    /// IANA time zone the cron fields are read in; UTC when absent.
    pub timezone: Option<String>,
}

impl Schedule {
    /// Checks the literal cron expression, the config variable name and the time zone.
    pub fn validate(&self) -> Vec<Violation> {
        let mut violations = Vec::new();
        if let ScheduleSource::ConfigVar(name) = &self.source
            && name.trim().is_empty()
        {
            violations.push(Violation::new(
                "schedule.config_var",
                "`schedule.config_var` must name a config variable; e.g. `schedule(config_var = \"Sync Schedule\")`",
            ));
        }
        if let ScheduleSource::Cron(expression) = &self.source {
            violations.extend(CronSchedule::parse(expression, None).err());
        }
        if let Some(zone) = &self.timezone {
            violations.extend(parse_time_zone(zone).err());
        }
        violations
    }
}

/// A parsed cron expression bound to a time zone.
///
/// Five fields (minute first) or six (seconds first); month and weekday names; 0 and 7 are
/// Sunday; `L`, `W` and `#`; when day-of-month and day-of-week are both restricted, a day
/// matching either runs. Parsing and next-instant search come from the `croner` crate.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    /// Parses `expression` in the time zone named `timezone` (UTC when `None`).
    ///
    /// # Errors
    ///
    /// Returns a [`Violation`] on `schedule.cron` with the parser's reason, or on
    /// `schedule.timezone` with the nearest valid zone names.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, Violation> {
        let cron = parse_cron(expression).map_err(|reason| {
            Violation::new(
                "schedule.cron",
                format!(
                    "`schedule.cron` \"{expression}\" is not a valid cron expression: {reason}; \
                     e.g. `schedule(cron = \"*/5 * * * *\")` (minute hour day-of-month month day-of-week)"
                ),
            )
        })?;
        let zone = match timezone {
            Some(name) => parse_time_zone(name)?,
            None => Tz::UTC,
        };
        Ok(Self { cron, zone })
    }

    /// Returns the time zone the fields are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Returns the first fire instant strictly after `after`, or `None` when there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// Returns the last fire instant at or before `at`, or `None` when there is none.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|previous| previous.with_timezone(&Utc))
    }

    /// Returns up to `count` fire instants strictly after `after`, in order.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut instants = Vec::with_capacity(count);
        let mut cursor = after;
        while instants.len() < count {
            let Some(next) = self.next_after(cursor) else { break };
            instants.push(next);
            cursor = next;
        }
        instants
    }
}

/// Checks a cron expression alone and returns why it is invalid, for messages that point to
/// where the expression came from, such as a config variable.
///
/// # Errors
///
/// Returns the reason: the invalid field, the wrong field count, or that no date matches.
pub fn check_cron(expression: &str) -> Result<(), String> {
    parse_cron(expression).map(|_| ())
}

fn parse_cron(expression: &str) -> Result<Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
    let field_count = expression.split_whitespace().count();
    if expression.trim_start().starts_with('@') {
        return Err(format!("nicknames such as `{}` are not supported; write the fields", expression.trim()));
    }
    if !(5..=6).contains(&field_count) {
        return Err(format!("expected 5 fields (minute hour day month weekday) or 6 (seconds first), found {field_count}"));
    }
    let cron = parser
        .parse(expression)
        .map_err(|error| describe_cron_error(&parser, expression, &error.to_string()))?;

    // A valid expression can still name no real date, such as 30 February; it would never fire.
    let reference = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
    if cron.find_next_occurrence(&reference, false).is_err() {
        return Err("no date matches it, so it would never fire (check the day-of-month and month fields)".to_owned());
    }
    Ok(cron)
}

/// Names the field that makes `expression` invalid, when replacing that one field with `*`
/// makes it parse, and cleans up the parser's own reason.
fn describe_cron_error(parser: &CronParser, expression: &str, reason: &str) -> String {
    let reason = reason.trim().trim_end_matches(';').trim_end_matches('.').to_owned();
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: &[&str] = if fields.len() == 6 {
        &["second", "minute", "hour", "day-of-month", "month", "day-of-week"]
    } else {
        &["minute", "hour", "day-of-month", "month", "day-of-week"]
    };
    for (index, field) in fields.iter().enumerate() {
        let mut candidate = fields.clone();
        candidate[index] = "*";
        if parser.parse(&candidate.join(" ")).is_ok() {
            return format!("the {} field `{field}` is invalid ({reason})", names[index]);
        }
    }
    reason
}

/// Parses an IANA time zone name such as `America/Chicago`.
///
/// # Errors
///
/// Returns a [`Violation`] on `schedule.timezone` that lists the nearest valid names.
pub fn parse_time_zone(name: &str) -> Result<Tz, Violation> {
    if let Ok(zone) = Tz::from_str(name) {
        return Ok(zone);
    }
    let names = chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name());
    let nearest = closest(name, names, 3);
    let hint = if nearest.is_empty() {
        "use an IANA name such as \"America/Chicago\" or \"Europe/Berlin\"".to_owned()
    } else {
        let quoted: Vec<String> = nearest.iter().map(|zone| format!("\"{zone}\"")).collect();
        format!("did you mean {}?", quoted.join(", "))
    };
    Err(Violation::new(
        "schedule.timezone",
        format!("`schedule.timezone` \"{name}\" is not an IANA time zone name; {hint}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid instant").with_timezone(&Utc)
    }

    #[test]
    fn date_that_never_exists_is_rejected() {
        let violation = CronSchedule::parse("0 0 30 2 *", None).expect_err("30 February");
        assert!(violation.message.contains("never fire"), "{}", violation.message);
    }

    #[test]
    fn leap_day_is_accepted() {
        assert!(CronSchedule::parse("0 0 29 2 *", None).is_ok());
    }

    #[test]
    fn five_field_expression_parses() {
        assert!(CronSchedule::parse("*/5 * * * *", None).is_ok());
    }

    #[test]
    fn six_field_expression_reads_seconds_first() {
        let schedule = CronSchedule::parse("30 0 12 * * *", None).expect("valid");
        let next = schedule.next_after(instant("2024-01-01T00:00:00Z"));
        assert_eq!(next, Some(instant("2024-01-01T12:00:30Z")));
    }

    #[test]
    fn seven_fields_are_rejected() {
        let violation = CronSchedule::parse("0 0 0 1 1 * 2030", None).expect_err("seven fields");
        assert!(violation.message.contains("found 7"), "{}", violation.message);
    }

    #[test]
    fn out_of_range_minute_is_rejected_with_the_parser_reason() {
        let violation = CronSchedule::parse("61 * * * *", None).expect_err("minute 61");
        assert_eq!(violation.keys, vec!["schedule.cron"]);
        assert!(violation.message.contains("\"61 * * * *\""), "{}", violation.message);
    }

    #[test]
    fn invalid_cron_names_the_field() {
        let violation = CronSchedule::parse("0 25 * * *", None).expect_err("hour 25");
        assert!(violation.message.contains("the hour field `25` is invalid"), "{}", violation.message);
    }

    #[test]
    fn empty_config_var_name_is_rejected() {
        let schedule = Schedule {
            source: ScheduleSource::ConfigVar(" ".into()),
            timezone: None,
        };
        assert_eq!(schedule.validate()[0].keys, vec!["schedule.config_var"]);
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let after = instant("2024-01-01T00:00:00Z");
        let zero = CronSchedule::parse("0 9 * * 0", None).expect("valid").next_after(after);
        let seven = CronSchedule::parse("0 9 * * 7", None).expect("valid").next_after(after);
        assert_eq!(zero, Some(instant("2024-01-07T09:00:00Z")));
        assert_eq!(zero, seven);
    }

    #[test]
    fn schedule_runs_in_its_zone() {
        let schedule = CronSchedule::parse("0 9 * * *", Some("America/Chicago")).expect("valid");
        assert_eq!(schedule.next_after(instant("2024-01-01T00:00:00Z")), Some(instant("2024-01-01T15:00:00Z")));
    }

    #[test]
    fn misspelt_zone_suggests_nearest_names() {
        let violation = parse_time_zone("America/Chicgo").expect_err("misspelt");
        assert!(violation.message.contains("did you mean \"America/Chicago\""), "{}", violation.message);
    }

    #[test]
    fn upcoming_lists_instants_in_order() {
        let schedule = CronSchedule::parse("0 * * * *", None).expect("valid");
        let instants = schedule.upcoming(instant("2024-01-01T00:30:00Z"), 2);
        assert_eq!(instants, vec![instant("2024-01-01T01:00:00Z"), instant("2024-01-01T02:00:00Z")]);
    }
}

/// Next fire instants across DST changes and cron dialect corners, with answers computed
/// independently of the parser.
#[cfg(test)]
mod dst_cases {
    use super::*;

    fn instant(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("valid instant").with_timezone(&Utc)
    }

    fn check(cron: &str, zone: &str, after: &str, expected: &[&str]) {
        let schedule = CronSchedule::parse(cron, Some(zone)).expect("valid schedule");
        let found = schedule.upcoming(instant(after), expected.len());
        let expected: Vec<DateTime<Utc>> = expected.iter().map(|text| instant(text)).collect();
        assert_eq!(found, expected, "{cron} in {zone} after {after}");
    }

    #[test]
    fn weekly_job_on_spring_forward_sunday_in_berlin() {
        check("0 12 * * 0", "Europe/Berlin", "2022-03-24T11:00:00Z", &["2022-03-27T10:00:00Z", "2022-04-03T10:00:00Z", "2022-04-10T10:00:00Z"]);
    }

    #[test]
    fn weekly_job_on_spring_forward_sunday_in_new_york() {
        check("0 12 * * 0", "America/New_York", "2022-03-10T17:00:00Z", &["2022-03-13T16:00:00Z", "2022-03-20T16:00:00Z"]);
    }

    #[test]
    fn weekly_job_on_spring_forward_sunday_in_sydney() {
        check("0 12 * * 0", "Australia/Sydney", "2022-09-29T02:00:00Z", &["2022-10-02T01:00:00Z", "2022-10-09T01:00:00Z"]);
    }

    #[test]
    fn daily_job_inside_the_gap_runs_once_shifted() {
        check("0 2 * * *", "America/New_York", "2025-03-09T06:30:00Z", &["2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z", "2025-03-11T06:00:00Z"]);
    }

    #[test]
    fn every_thirty_minutes_runs_in_both_copies_of_the_repeated_hour() {
        check(
            "*/30 * * * *",
            "America/Los_Angeles",
            "2022-11-06T07:45:00Z",
            &["2022-11-06T08:00:00Z", "2022-11-06T08:30:00Z", "2022-11-06T09:00:00Z", "2022-11-06T09:30:00Z", "2022-11-06T10:00:00Z", "2022-11-06T10:30:00Z"],
        );
    }

    #[test]
    fn hourly_runs_in_both_copies_of_the_repeated_hour() {
        check(
            "0 * * * *",
            "America/Los_Angeles",
            "2022-11-06T07:30:00Z",
            &["2022-11-06T08:00:00Z", "2022-11-06T09:00:00Z", "2022-11-06T10:00:00Z", "2022-11-06T11:00:00Z", "2022-11-06T12:00:00Z"],
        );
    }

    #[test]
    fn daily_job_in_the_repeated_hour_runs_once() {
        check("30 1 * * *", "America/Los_Angeles", "2022-11-06T07:45:00Z", &["2022-11-06T08:30:00Z", "2022-11-07T09:30:00Z", "2022-11-08T09:30:00Z"]);
    }

    #[test]
    fn day_of_month_and_day_of_week_together_mean_either() {
        check(
            "0 16 4 * fri",
            "UTC",
            "2016-11-26T00:00:00Z",
            &["2016-12-02T16:00:00Z", "2016-12-04T16:00:00Z", "2016-12-09T16:00:00Z", "2016-12-16T16:00:00Z", "2016-12-23T16:00:00Z"],
        );
    }

    #[test]
    fn last_day_of_month_includes_leap_day() {
        check(
            "0 0 L * *",
            "UTC",
            "2015-09-30T00:00:00Z",
            &["2015-10-31T00:00:00Z", "2015-11-30T00:00:00Z", "2015-12-31T00:00:00Z", "2016-01-31T00:00:00Z", "2016-02-29T00:00:00Z", "2016-03-31T00:00:00Z"],
        );
    }
}
