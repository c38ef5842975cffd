//! The scheduler: fires scheduled and polling flows at their cron instants.
//!
//! Each schedule of a flow in an instance has a cursor in the store: every fire instant at or
//! before it is handled. A pass at time `now` handles the instants after the cursor and at or
//! before `now`:
//!
//! - one instant: it fires;
//! - several (the process was down, or the machine slept): only the latest fires, as one
//!   catch-up execution, and the earlier ones are recorded as `missed`;
//! - a `singleton` flow whose previous execution is still queued or running skips the tick,
//!   recorded as `skipped`;
//! - a polling flow runs its trigger with its saved state; no changes records `no_changes`,
//!   a failed trigger records `trigger_failed`, and neither starts an execution.
//!
//! The tick record, its execution and the polling state are committed together, and moving the
//! cursor is what claims the tick, so a tick fires once across restarts and processes. A new
//! schedule starts at the time of its first pass: instants before it are not caught up.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flow_core::{Body, BodyData, CronSchedule, TriggerPayload, TriggerType};
use serde::{Deserialize, Serialize};

use super::{Inner, Source, SubmitError};
use crate::polling::{POLLING_STATE_KEY, PollingState};
use crate::store::{NewTick, StateScope, StateWrite, StoreError, TickOutcome, TickRecord, TickRecorded};

/// Missed instants recorded one by one after downtime; older ones are only counted.
const MAX_RECORDED_MISSED: usize = 1000;

/// Missed instants counted one by one after downtime; past this the catch-up instant is found
/// by searching back from now, and the count stops.
const MAX_COUNTED_MISSED: u64 = 100_000;

/// Maximum sleep of the scheduler loop, so deployments changed by another process (the
/// `deploy` and `delete` commands) take effect within it.
const REFRESH: Duration = Duration::from_secs(5);

/// Maximum run time of a scheduled or polling trigger; a trigger still running then is
/// recorded as `trigger_failed`, and its polling state is not saved.
const TRIGGER_TIMEOUT: Duration = Duration::from_secs(60);

/// A flow's schedule in one instance, resolved from its cron literal or config variable.
#[derive(Debug, Clone)]
pub(crate) struct ScheduledFlow {
    pub(crate) flow: String,
    pub(crate) instance: String,
    pub(crate) cron: CronSchedule,
    pub(crate) singleton: bool,
    pub(crate) polling: bool,
}

/// The JSON body of a scheduled execution's trigger payload; a polling trigger receives it
/// too. Read it with `params.trigger.body.json::<ScheduledTick>()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledTick {
    /// The fire instant, in UTC; after downtime, the latest missed instant.
    pub scheduled_at: DateTime<Utc>,
    /// The IANA time zone the schedule's fields are read in.
    pub time_zone: String,
    /// How many earlier instants fell in downtime and were skipped for this one.
    pub missed_ticks: u64,
}

/// The instants due in `(cursor, now]`: the one to fire, the latest missed ones (at most
/// [`MAX_RECORDED_MISSED`], oldest first) and the count of missed ones.
struct DueTicks {
    fire: DateTime<Utc>,
    missed: Vec<DateTime<Utc>>,
    missed_total: u64,
}

fn due_ticks(cron: &CronSchedule, cursor: DateTime<Utc>, now: DateTime<Utc>) -> Option<DueTicks> {
    let mut recent: VecDeque<DateTime<Utc>> = VecDeque::new();
    let mut due: u64 = 0;
    let mut next = cron.next_after(cursor);
    while let Some(instant) = next
        && instant <= now
    {
        due += 1;
        if recent.len() > MAX_RECORDED_MISSED {
            recent.pop_front();
        }
        recent.push_back(instant);
        if due >= MAX_COUNTED_MISSED {
            if let Some(latest) = cron.latest_at_or_before(now)
                && latest > instant
            {
                recent.push_back(latest);
                due += 1;
            }
            break;
        }
        next = cron.next_after(instant);
    }

    let fire = recent.pop_back()?;
    Some(DueTicks {
        fire,
        missed: recent.into_iter().collect(),
        missed_total: due - 1,
    })
}

/// Resolves the schedule of every scheduled flow in every instance. Instances were checked
/// when they were built, so a schedule that does not resolve here is logged and left out.
pub(super) fn resolve_schedules(
    registry: &crate::registry::Registry,
    instances: &BTreeMap<String, Arc<crate::instance::Instance>>,
) -> Vec<ScheduledFlow> {
    let mut schedules = Vec::new();
    for instance in instances.values() {
        for flow in registry.flows() {
            let Some(schedule) = &flow.config.schedule else { continue };
            match crate::config::resolve_schedule(schedule, &instance.config, &instance.secret_config, &instance.id) {
                Ok(cron) => schedules.push(ScheduledFlow {
                    flow: flow.stable_key().to_owned(),
                    instance: instance.id.clone(),
                    cron,
                    singleton: flow.config.queue.as_ref().is_some_and(|queue| queue.singleton),
                    polling: flow.config.trigger_type == TriggerType::Polling,
                }),
                Err(message) => tracing::error!(
                    flow = flow.stable_key(),
                    instance = %instance.id,
                    %message,
                    "schedule does not resolve; the flow will not run on a clock"
                ),
            }
        }
    }
    schedules
}

/// Builds the payload of a tick: a JSON body with the fire instant, the zone and the missed count.
fn tick_payload(schedule: &ScheduledFlow, due: &DueTicks) -> TriggerPayload {
    let tick = ScheduledTick {
        scheduled_at: due.fire,
        time_zone: schedule.cron.zone().name().to_owned(),
        missed_ticks: due.missed_total,
    };
    let data = serde_json::to_value(&tick).unwrap_or_default();
    TriggerPayload {
        body: Body {
            data: BodyData::Json(data.into()),
            content_type: Some("application/json".to_owned()),
        },
        ..TriggerPayload::default()
    }
}

impl Inner {
    /// Handles every tick due by the clock's current time; see the module documentation.
    pub(crate) async fn run_schedules(&self) -> Result<Vec<TickRecord>, StoreError> {
        let now = self.clock.now();
        let mut reports = Vec::new();
        for schedule in &self.schedules {
            if !self.is_serving(&schedule.instance) {
                continue;
            }
            let (report, _) = self.run_schedule(schedule, now).await?;
            reports.extend(report);
        }
        Ok(reports)
    }

    /// Handles the ticks of one schedule due by `now`, and returns the tick it recorded and
    /// the instant up to which its ticks are now handled.
    async fn run_schedule(&self, schedule: &ScheduledFlow, now: DateTime<Utc>) -> Result<(Option<TickRecord>, DateTime<Utc>), StoreError> {
        let cursor = self.store.schedule_cursor(&schedule.flow, &schedule.instance, now).await?;
        let Some(due) = due_ticks(&schedule.cron, cursor, now) else {
            return Ok((None, cursor));
        };
        let handled_until = due.fire;
        let report = self.fire_tick(schedule, due, now).await?;
        Ok((report, handled_until))
    }

    /// Returns the first fire instant after `after` of any schedule of a serving instance.
    pub(crate) fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedules
            .iter()
            .filter(|schedule| self.is_serving(&schedule.instance))
            .filter_map(|schedule| schedule.cron.next_after(after))
            .min()
    }

    async fn fire_tick(&self, schedule: &ScheduledFlow, due: DueTicks, now: DateTime<Utc>) -> Result<Option<TickRecord>, StoreError> {
        let (Some(flow), Some(instance)) = (self.registry.get(&schedule.flow), self.instances.get(&schedule.instance)) else {
            return Ok(None);
        };
        let mut tick = NewTick {
            flow: schedule.flow.clone(),
            instance: schedule.instance.clone(),
            scheduled_at: due.fire,
            missed: due.missed.clone(),
            missed_total: due.missed_total,
            outcome: TickOutcome::Started,
            detail: None,
            execution: None,
            singleton: schedule.singleton,
            state: None,
            recorded_at: now,
        };

        // A singleton's trigger does not run while its previous execution is unfinished, so a
        // poll whose result would be dropped does not move the polling state.
        let running = if schedule.singleton {
            self.store.unfinished_execution(&schedule.flow, &schedule.instance).await?
        } else {
            None
        };
        if let Some(running) = running {
            tick.outcome = TickOutcome::Skipped;
            tick.detail = Some(format!("execution {running} of the previous tick is still queued or running"));
            return self.record(tick).await;
        }

        let execution_id = uuid::Uuid::now_v7().to_string();
        let mut payload = tick_payload(schedule, &due);
        self.describe_payload(&mut payload, flow, instance, &execution_id);

        if flow.handlers.on_trigger.is_some() {
            let scope = StateScope::Polling {
                instance: schedule.instance.clone(),
                flow: schedule.flow.clone(),
            };
            let polling = if schedule.polling {
                let saved = self.store.load_state(scope.clone()).await?;
                Some(Arc::new(PollingState::new(saved.get(POLLING_STATE_KEY).cloned())))
            } else {
                None
            };
            let trigger = self.run_trigger_with(flow, instance, payload.clone(), polling.clone());
            let outcome = tokio::time::timeout(TRIGGER_TIMEOUT, trigger).await.unwrap_or_else(|_| {
                Err(flow_core::TriggerError::internal(format!(
                    "the trigger did not finish within {} seconds",
                    TRIGGER_TIMEOUT.as_secs()
                )))
            });
            match outcome {
                Ok(result) => {
                    tick.state = polling.and_then(|state| state.changed_value()).map(|value| StateWrite {
                        scope,
                        changes: [(POLLING_STATE_KEY.to_owned(), Some(value))].into_iter().collect(),
                    });
                    if result.polled_no_changes {
                        tick.outcome = TickOutcome::NoChanges;
                    } else {
                        payload = result.payload;
                        self.describe_payload(&mut payload, flow, instance, &execution_id);
                    }
                }
                Err(rejection) => {
                    tick.outcome = TickOutcome::TriggerFailed;
                    tick.detail = Some(rejection.message);
                }
            }
        }

        if tick.outcome == TickOutcome::Started {
            let execution = self
                .new_execution(flow, instance, &mut payload, &Source::Schedule, now, None, false)
                .map_err(|error| match error {
                    SubmitError::Store(error) => error,
                    other => StoreError::Corrupt(other.to_string()),
                })?;
            tick.execution = Some(execution);
        }
        self.record(tick).await
    }

    async fn record(&self, tick: NewTick) -> Result<Option<TickRecord>, StoreError> {
        let mut report = TickRecord {
            flow: tick.flow.clone(),
            instance: tick.instance.clone(),
            scheduled_at: tick.scheduled_at,
            outcome: tick.outcome,
            execution_id: tick.execution.as_ref().map(|execution| execution.id.clone()),
            missed: tick.missed_total,
            detail: tick.detail.clone(),
            recorded_at: tick.recorded_at,
        };
        match self.store.record_tick(tick).await? {
            TickRecorded::AlreadyHandled => {
                tracing::debug!(flow = %report.flow, instance = %report.instance, scheduled_at = %report.scheduled_at, "tick already handled by another process");
                return Ok(None);
            }
            TickRecorded::Recorded(outcome) => report.outcome = outcome,
        }
        if report.outcome != TickOutcome::Started {
            report.execution_id = None;
        }

        if report.outcome == TickOutcome::Started {
            self.queue_changed();
        }
        tracing::info!(
            flow = %report.flow,
            instance = %report.instance,
            scheduled_at = %report.scheduled_at,
            outcome = %report.outcome,
            execution_id = report.execution_id.as_deref().unwrap_or(""),
            missed = report.missed,
            "schedule tick"
        );
        Ok(Some(report))
    }
}

/// Fires due ticks and sleeps until the next fire instant, until the engine stops.
///
/// Each schedule's ticks are handled on a task of their own, so a slow poll holds back only its
/// own schedule. The loop remembers each schedule's next fire instant and reads the store only
/// when that instant has come (or the schedule is new to it).
pub(super) async fn run_scheduler(inner: Arc<Inner>) {
    let mut stopping = inner.stopping.subscribe();
    let next_due: Arc<Mutex<HashMap<usize, DateTime<Utc>>>> = Arc::default();
    let in_flight: Arc<Mutex<HashSet<usize>>> = Arc::default();
    loop {
        if *stopping.borrow() {
            return;
        }
        if let Err(error) = inner.refresh_deployments().await {
            tracing::error!(%error, "could not read instance deployments; keeping the last known ones");
        }

        let now = inner.clock.now();
        for (index, schedule) in inner.schedules.iter().enumerate() {
            if !inner.is_serving(&schedule.instance) {
                continue;
            }
            let known_due = next_due.lock().unwrap_or_else(PoisonError::into_inner).get(&index).copied();
            if known_due.is_some_and(|due| due > now) {
                continue;
            }
            if !in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(index) {
                continue;
            }

            let (inner, next_due, in_flight) = (Arc::clone(&inner), Arc::clone(&next_due), Arc::clone(&in_flight));
            tokio::spawn(async move {
                let schedule = &inner.schedules[index];
                match inner.run_schedule(schedule, now).await {
                    Ok((_, handled_until)) => {
                        let next = schedule.cron.next_after(handled_until.max(now));
                        let mut next_due = next_due.lock().unwrap_or_else(PoisonError::into_inner);
                        match next {
                            Some(next) => next_due.insert(index, next),
                            None => next_due.insert(index, DateTime::<Utc>::MAX_UTC),
                        };
                    }
                    Err(error) => tracing::error!(
                        %error,
                        flow = %schedule.flow,
                        instance = %schedule.instance,
                        "could not handle a schedule tick; retrying at the next pass"
                    ),
                }
                in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&index);
            });
        }

        let now = inner.clock.now();
        let wait = inner
            .next_fire(now)
            .and_then(|next| (next - now).to_std().ok())
            .map_or(REFRESH, |until_next| until_next.min(REFRESH));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, 0).single().expect("valid instant")
    }

    fn every_quarter_hour() -> CronSchedule {
        CronSchedule::parse("*/15 * * * *", None).expect("valid cron")
    }

    #[test]
    fn nothing_is_due_before_the_next_instant() {
        assert!(due_ticks(&every_quarter_hour(), at(10, 0), at(10, 14)).is_none());
    }

    #[test]
    fn one_due_instant_fires_without_missed_ones() {
        let due = due_ticks(&every_quarter_hour(), at(10, 0), at(10, 15)).expect("due");
        assert_eq!(due.fire, at(10, 15));
        assert_eq!(due.missed_total, 0);
    }

    #[test]
    fn downtime_fires_latest_lists_missed() {
        let due = due_ticks(&every_quarter_hour(), at(10, 0), at(11, 5)).expect("due");
        assert_eq!(due.fire, at(11, 0));
        assert_eq!(due.missed, vec![at(10, 15), at(10, 30), at(10, 45)]);
        assert_eq!(due.missed_total, 3);
    }

    #[test]
    fn long_downtime_records_only_the_latest_missed_instants() {
        let every_minute = CronSchedule::parse("* * * * *", None).expect("valid cron");
        let due = due_ticks(&every_minute, at(0, 0), at(23, 0)).expect("due");
        assert_eq!(due.fire, at(23, 0));
        assert_eq!(due.missed_total, 23 * 60 - 1);
        assert_eq!(due.missed.len(), MAX_RECORDED_MISSED);
        assert_eq!(due.missed.last(), Some(&at(22, 59)));
    }
}
