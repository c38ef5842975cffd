//! Supplier inventory: three flows that keep a customer's stock levels in step with a
//! supplier's API, on a clock rather than on requests.
//!
//! - "Sync Stock Levels" (`sync-stock`) is a polling flow. On its schedule (the `Poll
//!   Schedule` config variable, every five minutes by default) its trigger requests the
//!   supplier's changes after the saved cursor. No changes start nothing; changes start an
//!   execution that writes the new levels into the `stock` state shared by the instance's
//!   flows, and the new cursor is saved with the poll.
//! - "Daily Stock Report" (`daily-stock-report`) runs at 07:00 in New York, summer or winter
//!   time, and reports the SKUs below the `Low Stock Threshold`.
//! - "Stock Alerts" (`stock-alerts`) receives the supplier's pushed alerts. Deploying an
//!   instance subscribes its webhook URL at the supplier; deleting it ends the subscription.
//!
//! Run with `cargo run -p stock-sync -- serve --config examples/stock-sync/flows.toml` against a
//! supplier at the configured `Supplier API URL`; `cargo run -p stock-sync -- schedule
//! daily-stock-report` prints the report's next instants.

mod report;
mod stock;
mod supplier;
#[cfg(test)]
mod supplier_mock;
#[cfg(test)]
mod flow_tests;

use flow_runtime::prelude::*;

fn integration() -> Integration {
    Integration::new("stock-sync", "Supplier Inventory", env!("CARGO_PKG_VERSION"))
        .description("Keeps stock levels in step with a supplier's API")
        .config_var(ConfigVar::new("Supplier API URL").description("Base URL of the supplier's stock API").required())
        .config_var(
            ConfigVar::new("Poll Schedule")
                .description("Cron expression of the stock poll, in UTC")
                .default_value("*/5 * * * *"),
        )
        .config_var(
            ConfigVar::new("Low Stock Threshold")
                .description("A SKU with fewer units is listed in the daily report")
                .default_value(10),
        )
}

flow_runtime::main!(integration());
