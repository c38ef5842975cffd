//! The daily stock report, at 07:00 New York time.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use flow_runtime::prelude::*;
use serde::Serialize;

use crate::stock::STOCK_KEY;

/// Key of the last report in the flow's instance state.
const LAST_REPORT_KEY: &str = "lastReport";

/// The report of one day.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StockReport {
    /// The day in New York the report is for.
    pub(crate) report_date: String,
    /// How many SKUs have a known level.
    pub(crate) skus: usize,
    /// SKUs below the threshold, with their levels.
    pub(crate) low_stock: BTreeMap<String, u64>,
}

#[flow(
    name = "Daily Stock Report",
    stable_key = "daily-stock-report",
    description = "Lists the SKUs below the low-stock threshold every morning",
    schedule(cron = "0 7 * * *", timezone = "America/New_York"),
    queue(parallel, singleton),
)]
pub(crate) async fn daily_stock_report(ctx: &Context, params: ExecutionParams) -> FlowResult {
    let tick: ScheduledTick = params.trigger.body.json().map_err(|error| FlowError::terminal(error.to_string()))?;
    let zone: Tz = tick
        .time_zone
        .parse()
        .map_err(|error| FlowError::terminal(format!("unknown time zone {}: {error}", tick.time_zone)))?;
    let threshold: u64 = ctx.config("Low Stock Threshold")?;

    let stock: BTreeMap<String, u64> = ctx.cross_flow_state().get(STOCK_KEY).unwrap_or_default();
    let low_stock = stock
        .iter()
        .filter(|(_, quantity)| **quantity < threshold)
        .map(|(sku, quantity)| (sku.clone(), *quantity))
        .collect();
    let report = StockReport {
        report_date: tick.scheduled_at.with_timezone(&zone).date_naive().to_string(),
        skus: stock.len(),
        low_stock,
    };

    ctx.logger().info(format!("stock report for {}: {} low", report.report_date, report.low_stock.len()));
    ctx.instance_state().set(LAST_REPORT_KEY, &report)?;
    Ok(serde_json::to_value(&report)?.into())
}
