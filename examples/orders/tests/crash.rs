//! Crash safety of the built `orders` binary: SIGKILL under load, restart on the same store,
//! then checks of every stored row against the responses the clients received.
//!
//! The load is payment webhooks for a parallel queue with a dedupe id, and ledger entries for a
//! sequential queue. Some payments are sent twice at once, the way a provider resends a delivery
//! it believes lost. One sender sends the ledger entries and waits for each response. The
//! server is killed once a fixed number of requests is acknowledged. Requests that got no
//! response count as unacknowledged and are resent after the restart, as a real sender would.
//! The dedupe id keeps a resent payment from running beside a stored copy that is still queued
//! or running.
//!
//! A second test sends ledger entries alone, without a kill, so that a failure of the ledger
//! checks there is known not to come from the crash.

#![cfg(unix)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flow_runtime::testing::{ServedBinary, free_port};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

const PAYMENT_KEY: &str = "k_test_pay456";
const LEDGER_KEY: &str = "k_test_ledger789";

/// Distinct payment ids sent.
const PAYMENTS: usize = 4000;
/// Every `RESEND_EVERY`-th payment is sent twice at once.
const RESEND_EVERY: usize = 8;
/// Ledger entries sent under load, with sequences 1 to this number.
const LEDGER_ENTRIES: u64 = 1000;
/// Ledger entries sent by the test without payments and without a kill.
const QUIET_LEDGER_ENTRIES: u64 = 300;
/// Client tasks that send payments; the ledger has one sender of its own.
const PAYMENT_CLIENTS: usize = 48;
/// Acknowledged requests after which the server is killed.
const KILL_AFTER_ACKNOWLEDGED: usize = 2000;
/// Accounts the ledger entries are booked to, in turn.
const ACCOUNTS: [&str; 4] = ["revenue", "receivables", "vat", "fees"];
/// Max time, in milliseconds, by which a copy's `created_at` may precede the finish of an earlier
/// execution of the same payment and still count as arriving after it. Both times are read
/// just before the store's writer receives the insert or the finish, so they differ from the
/// writer's order only by thread preemption between the read and the send.
const CLOCK_TOLERANCE_MILLIS: i64 = 20;
/// Deadline for the restarted server to finish every queued execution.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);
/// Deadline for the server to exit after SIGTERM; the runtime's shutdown grace is 30 seconds.
const EXIT_DEADLINE: Duration = Duration::from_secs(45);

/// Starts `orders serve` with `config` on `port`, with its log in `server-{run}.log` in
/// `folder`, and waits until it is healthy.
async fn start(folder: &Path, config: &Path, port: u16, run: usize) -> ServedBinary {
    ServedBinary::builder(env!("CARGO_BIN_EXE_orders"))
        .config(config)
        .port(port)
        .log(folder.join(format!("server-{run}.log")))
        .start()
        .await
}

fn write_config(folder: &Path) -> PathBuf {
    let store = folder.join("orders.db");
    // A SIGKILL loses no committed data in either durability mode. "full", the default, also
    // survives a power loss, which this test does not simulate.
    let text = format!(
        r#"[store]
url = "sqlite://{store}"
durability = "full"

[[instances]]
id = "acme"
name = "Acme Retail"
customer = {{ id = "cus_acme", name = "Acme Retail Ltd" }}
config = {{ "Warehouse" = "Rotterdam DC", "Currency" = "EUR" }}
api_keys = {{ "record-payment" = ["{PAYMENT_KEY}"], "post-ledger-entry" = ["{LEDGER_KEY}"] }}
"#,
        store = store.display()
    );
    let path = folder.join("flows.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FlowKind {
    Payment,
    Ledger,
}

impl FlowKind {
    fn stable_key(self) -> &'static str {
        match self {
            Self::Payment => "record-payment",
            Self::Ledger => "post-ledger-entry",
        }
    }

    fn api_key(self) -> &'static str {
        match self {
            Self::Payment => PAYMENT_KEY,
            Self::Ledger => LEDGER_KEY,
        }
    }
}

/// One webhook request of the load.
#[derive(Debug, Clone)]
struct Request {
    flow: FlowKind,
    /// `paymentId` or `entryId`.
    key: String,
    body: Value,
}

/// A request the server acknowledged with a 2xx response.
#[derive(Debug, Clone)]
struct Acknowledgement {
    flow: FlowKind,
    key: String,
    execution_id: String,
    deduplicated: bool,
}

enum Delivery {
    Acknowledged { execution_id: String, deduplicated: bool },
    Unacknowledged(String),
}

fn payment_request(index: usize) -> Request {
    let payment_id = format!("pay_{index:05}");
    let body = json!({
        "paymentId": payment_id,
        "orderId": format!("A-{}", 10_000 + index / 2),
        "amountCents": 100 + (index * 37) % 9_900,
        "currency": "EUR",
    });
    Request {
        flow: FlowKind::Payment,
        key: payment_id,
        body,
    }
}

fn ledger_amount(sequence: u64) -> i64 {
    let amount = i64::try_from(100 + (sequence * 53) % 4_900).expect("fits");
    if sequence.is_multiple_of(5) { -amount } else { amount }
}

fn ledger_account(sequence: u64) -> &'static str {
    ACCOUNTS[usize::try_from(sequence).expect("fits") % ACCOUNTS.len()]
}

fn ledger_request(sequence: u64) -> Request {
    let entry_id = format!("L-{sequence:05}");
    let body = json!({
        "entryId": entry_id,
        "sequence": sequence,
        "account": ledger_account(sequence),
        "amountCents": ledger_amount(sequence),
    });
    Request {
        flow: FlowKind::Ledger,
        key: entry_id,
        body,
    }
}

/// Groups of payment requests; the requests of one group are sent at the same time.
fn payment_groups() -> Vec<Vec<Request>> {
    (0..PAYMENTS)
        .map(|index| {
            let request = payment_request(index);
            if index % RESEND_EVERY == 0 {
                vec![request.clone(), request]
            } else {
                vec![request]
            }
        })
        .collect()
}

/// Client state shared by every sender task, across both server runs.
struct Load {
    groups: Vec<Vec<Request>>,
    next_group: AtomicUsize,
    /// Payment requests that got no response, resent after the restart.
    unanswered_payments: Mutex<Vec<Request>>,
    /// Payment ids of every request resent after the restart.
    resent_payments: Mutex<HashSet<String>>,
    /// Sequence the ledger sender sends next; an unanswered entry is sent again.
    next_sequence: Mutex<u64>,
    /// Sequence of the last ledger entry to send.
    ledger_entries: u64,
    acknowledged: Mutex<Vec<Acknowledgement>>,
    acknowledged_count: AtomicUsize,
    /// Requests that got no response when the server was killed, by flow.
    unacknowledged: Mutex<BTreeMap<FlowKind, usize>>,
    /// Set just before the SIGKILL and cleared after the restart.
    killed: AtomicBool,
    /// Requests that failed while the server was meant to be up.
    failures: Mutex<Vec<String>>,
    kill_now: tokio::sync::Notify,
    kill_after: Option<usize>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Load {
    fn new(groups: Vec<Vec<Request>>, ledger_entries: u64, kill_after: Option<usize>) -> Self {
        Self {
            groups,
            next_group: AtomicUsize::new(0),
            unanswered_payments: Mutex::new(Vec::new()),
            resent_payments: Mutex::new(HashSet::new()),
            next_sequence: Mutex::new(1),
            ledger_entries,
            acknowledged: Mutex::new(Vec::new()),
            acknowledged_count: AtomicUsize::new(0),
            unacknowledged: Mutex::new(BTreeMap::new()),
            killed: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
            kill_now: tokio::sync::Notify::new(),
            kill_after,
        }
    }

    fn record(&self, request: &Request, execution_id: String, deduplicated: bool) {
        lock(&self.acknowledged).push(Acknowledgement {
            flow: request.flow,
            key: request.key.clone(),
            execution_id,
            deduplicated,
        });
        let count = self.acknowledged_count.fetch_add(1, Ordering::SeqCst) + 1;
        if self.kill_after == Some(count) {
            self.kill_now.notify_one();
        }
    }

    /// Records a request without a response and returns whether it failed because of the kill.
    fn record_unanswered(&self, request: &Request, reason: String) -> bool {
        if self.killed.load(Ordering::SeqCst) {
            *lock(&self.unacknowledged).entry(request.flow).or_insert(0) += 1;
            true
        } else {
            lock(&self.failures).push(format!("{} {}: {reason}", request.flow.stable_key(), request.key));
            false
        }
    }
}

async fn deliver(client: &reqwest::Client, base: &str, request: &Request) -> Delivery {
    let sent = client
        .post(format!("{base}/webhooks/acme/{}", request.flow.stable_key()))
        .header("Api-Key", request.flow.api_key())
        .json(&request.body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => return Delivery::Unacknowledged(format!("request failed: {error}")),
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Delivery::Unacknowledged(format!("reading the response body failed: {error}")),
    };
    if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return Delivery::Unacknowledged(format!("503: {text}"));
    }
    assert!(
        status.is_success(),
        "{} request {} was rejected with {status}: {text}",
        request.flow.stable_key(),
        request.key
    );
    let response_body: Value = serde_json::from_str(&text).expect("the response body is JSON");
    Delivery::Acknowledged {
        execution_id: response_body["executionId"]
            .as_str()
            .expect("the response body has an executionId")
            .to_owned(),
        deduplicated: response_body["deduplicated"].as_bool().unwrap_or(false),
    }
}

/// Sends payment groups, first the requests left unanswered by the previous run, until none
/// is left or the server is killed.
async fn send_payments(load: Arc<Load>, client: reqwest::Client, base: String) {
    loop {
        if load.killed.load(Ordering::SeqCst) {
            return;
        }
        let resend = lock(&load.unanswered_payments).pop();
        let group = match resend {
            Some(request) => vec![request],
            None => {
                let index = load.next_group.fetch_add(1, Ordering::SeqCst);
                match load.groups.get(index) {
                    Some(group) => group.clone(),
                    None => return,
                }
            }
        };
        let deliveries = deliver_group(&client, &base, &group).await;
        for (request, delivery) in group.iter().zip(deliveries) {
            match delivery {
                Delivery::Acknowledged {
                    execution_id,
                    deduplicated,
                } => load.record(request, execution_id, deduplicated),
                Delivery::Unacknowledged(reason) => {
                    if load.record_unanswered(request, reason) {
                        lock(&load.resent_payments).insert(request.key.clone());
                        lock(&load.unanswered_payments).push(request.clone());
                    }
                }
            }
        }
    }
}

/// Sends the requests of a group at the same time.
async fn deliver_group(client: &reqwest::Client, base: &str, group: &[Request]) -> Vec<Delivery> {
    match group {
        [request] => vec![deliver(client, base, request).await],
        [first, second] => {
            let (first, second) = tokio::join!(deliver(client, base, first), deliver(client, base, second));
            vec![first, second]
        }
        _ => unreachable!("payment_groups builds groups of one or two requests"),
    }
}

/// Sends ledger entries in sequence order, each after the previous one was acknowledged,
/// until the last one is acknowledged or the server is killed.
async fn send_ledger(load: Arc<Load>, client: reqwest::Client, base: String) {
    loop {
        if load.killed.load(Ordering::SeqCst) {
            return;
        }
        let sequence = *lock(&load.next_sequence);
        if sequence > load.ledger_entries {
            return;
        }
        let request = ledger_request(sequence);
        match deliver(&client, &base, &request).await {
            Delivery::Acknowledged {
                execution_id,
                deduplicated,
            } => {
                load.record(&request, execution_id, deduplicated);
                *lock(&load.next_sequence) = sequence + 1;
            }
            Delivery::Unacknowledged(reason) => {
                load.record_unanswered(&request, reason);
                return;
            }
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("builds the HTTP client")
}

fn spawn_senders(load: &Arc<Load>, base: &str) -> Vec<tokio::task::JoinHandle<()>> {
    let client = client();
    let mut handles = vec![tokio::spawn(send_ledger(
        Arc::clone(load),
        client.clone(),
        base.to_owned(),
    ))];
    for _ in 0..PAYMENT_CLIENTS {
        handles.push(tokio::spawn(send_payments(
            Arc::clone(load),
            client.clone(),
            base.to_owned(),
        )));
    }
    handles
}

async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        handle.await.expect("a sender task panicked");
    }
}

async fn count_with_status(client: &reqwest::Client, base: &str, status: &str) -> usize {
    let listed: Value = client
        .get(format!("{base}/executions?status={status}&limit=1"))
        .send()
        .await
        .expect("lists executions")
        .json()
        .await
        .expect("JSON");
    listed["executions"].as_array().expect("executions").len()
}

/// Polls until no execution is queued or running, up to `DRAIN_DEADLINE`.
async fn wait_until_idle(base: &str) {
    let client = client();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while Instant::now() < deadline {
        // Queued is checked again last: a running execution may go back to queued for a retry.
        let queued = count_with_status(&client, base, "queued").await;
        let running = count_with_status(&client, base, "running").await;
        let queued_again = count_with_status(&client, base, "queued").await;
        if queued + running + queued_again == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "executions were still queued or running {} seconds after the load",
        DRAIN_DEADLINE.as_secs()
    );
}

fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .expect("opens the store read-only")
}

/// Status and attempt number of every execution that was queued or running at the kill.
fn unfinished_at_kill(store: &Path) -> HashMap<String, (String, i64)> {
    let connection = open_read_only(store);
    let mut statement = connection
        .prepare("SELECT id, status, attempt FROM executions WHERE status IN ('queued', 'running')")
        .expect("prepares");
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, (row.get(1)?, row.get(2)?))))
        .expect("queries");
    rows.collect::<Result<_, _>>().expect("reads")
}

/// An execution row, with its attempts and journaled steps.
#[derive(Debug, Clone)]
struct Stored {
    seq: i64,
    id: String,
    flow: String,
    status: String,
    attempt: i64,
    created_at: i64,
    related_id: Option<String>,
    body: Value,
    result: Value,
    attempts: Vec<StoredAttempt>,
    steps: Vec<(String, Value, i64)>,
}

#[derive(Debug, Clone)]
struct StoredAttempt {
    number: i64,
    status: String,
    started_at: i64,
    finished_at: i64,
}

impl Stored {
    fn succeeded_attempt(&self) -> Option<&StoredAttempt> {
        self.attempts.iter().find(|attempt| attempt.status == "succeeded")
    }

    /// `paymentId` or `entryId` of the request.
    fn key(&self) -> String {
        let field = if self.flow == FlowKind::Payment.stable_key() {
            "paymentId"
        } else {
            "entryId"
        };
        self.body[field].as_str().unwrap_or_default().to_owned()
    }
}

fn read_store(path: &Path) -> (Vec<Stored>, Value) {
    let connection = open_read_only(path);
    let mut statement = connection
        .prepare(
            "SELECT seq, id, flow, status, attempt, created_at, related_id, payload, result \
             FROM executions JOIN payloads USING (seq) ORDER BY seq",
        )
        .expect("prepares");
    let rows = statement
        .query_map([], |row| {
            let payload: String = row.get(7)?;
            let result: Option<String> = row.get(8)?;
            let payload: Value = serde_json::from_str(&payload).expect("payload is JSON");
            Ok(Stored {
                seq: row.get(0)?,
                id: row.get(1)?,
                flow: row.get(2)?,
                status: row.get(3)?,
                attempt: row.get(4)?,
                created_at: row.get(5)?,
                related_id: row.get(6)?,
                // A JSON request is stored in the compact form, with its body text under `json`.
                // Without `json`, the compact form wraps the public form under `payload`.
                body: match (payload.get("json"), payload.get("compact")) {
                    (Some(json), _) => json.clone(),
                    (None, Some(_)) => payload["payload"]["body"]["data"].clone(),
                    (None, None) => payload["body"]["data"].clone(),
                },
                result: result.map_or(Value::Null, |text| {
                    serde_json::from_str::<Value>(&text).expect("result is JSON")["data"].clone()
                }),
                attempts: Vec::new(),
                steps: Vec::new(),
            })
        })
        .expect("queries");
    let mut executions: Vec<Stored> = rows.collect::<Result<_, _>>().expect("reads executions");
    let index: HashMap<String, usize> = executions
        .iter()
        .enumerate()
        .map(|(at, row)| (row.id.clone(), at))
        .collect();

    let mut statement = connection
        .prepare(
            "SELECT execution_id, number, status, started_at, finished_at FROM attempts ORDER BY execution_id, number",
        )
        .expect("prepares");
    let attempts = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                StoredAttempt {
                    number: row.get(1)?,
                    status: row.get(2)?,
                    started_at: row.get(3)?,
                    finished_at: row.get(4)?,
                },
            ))
        })
        .expect("queries");
    for attempt in attempts {
        let (id, attempt) = attempt.expect("reads attempts");
        executions[index[&id]].attempts.push(attempt);
    }

    // The attempt that succeeded is kept in its execution's row, after the failed ones.
    let mut statement = connection
        .prepare("SELECT id, attempt, attempt_started_at, updated_at FROM executions WHERE attempt_started_at IS NOT NULL")
        .expect("prepares");
    let succeeded = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                StoredAttempt {
                    number: row.get(1)?,
                    status: "succeeded".to_owned(),
                    started_at: row.get(2)?,
                    finished_at: row.get(3)?,
                },
            ))
        })
        .expect("queries");
    for attempt in succeeded {
        let (id, attempt) = attempt.expect("reads executions");
        executions[index[&id]].attempts.push(attempt);
    }

    let mut statement = connection
        .prepare("SELECT execution_id, name, result, recorded_at FROM steps")
        .expect("prepares");
    let steps = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .expect("queries");
    for step in steps {
        let (id, name, result, recorded_at) = step.expect("reads steps");
        let result = serde_json::from_str(&result).expect("step result is JSON");
        executions[index[&id]].steps.push((name, result, recorded_at));
    }

    let ledger_state: String = connection
        .query_row(
            "SELECT value FROM state WHERE scope = 'flow/acme/post-ledger-entry'",
            [],
            |row| row.get(0),
        )
        .expect("the ledger flow saved its state");
    (executions, serde_json::from_str(&ledger_state).expect("state is JSON"))
}

/// Returns up to five items of a list for an assertion message.
fn sample<T: std::fmt::Debug>(items: &[T]) -> String {
    format!("{:#?}", &items[..items.len().min(5)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_and_repeats_nothing() {
    let started = Instant::now();
    let folder = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_config(folder.path());
    let store_path = folder.path().join("orders.db");

    // Run 1: load until KILL_AFTER_ACKNOWLEDGED acknowledgements, then SIGKILL.
    let mut server = start(folder.path(), &config, port, 1).await;
    let base = server.base_url();
    let load = Arc::new(Load::new(
        payment_groups(),
        LEDGER_ENTRIES,
        Some(KILL_AFTER_ACKNOWLEDGED),
    ));
    let senders = spawn_senders(&load, &base);
    tokio::time::timeout(Duration::from_secs(60), load.kill_now.notified())
        .await
        .expect("the load reached the kill point within 60 seconds");
    load.killed.store(true, Ordering::SeqCst);
    let killed_status = server.kill();
    let acknowledged_before_kill = load.acknowledged_count.load(Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), join_all(senders))
        .await
        .expect("senders stopped within 60 seconds of the kill");
    let run_one = started.elapsed();
    assert_eq!(
        killed_status.signal(),
        Some(9),
        "the server did not die of SIGKILL: {killed_status}"
    );

    let at_kill = unfinished_at_kill(&store_path);
    let acknowledged_at_kill = load.acknowledged_count.load(Ordering::SeqCst);

    // Run 2: restart on the same store and config, resend what got no response, send the rest.
    let restart = Instant::now();
    let mut server = start(folder.path(), &config, port, 2).await;
    let restart_time = restart.elapsed();
    load.killed.store(false, Ordering::SeqCst);
    join_all(spawn_senders(&load, &base)).await;
    let sent = started.elapsed();
    wait_until_idle(&base).await;
    let drained = started.elapsed();
    let exit = server.terminate(EXIT_DEADLINE).await;
    assert!(
        exit.success(),
        "the restarted server did not exit cleanly after SIGTERM: {exit}"
    );

    let acknowledged = lock(&load.acknowledged).clone();
    let unacknowledged = lock(&load.unacknowledged).clone();
    let failures = lock(&load.failures).clone();
    let (executions, ledger_state) = read_store(&store_path);
    let by_id: HashMap<&str, &Stored> = executions.iter().map(|row| (row.id.as_str(), row)).collect();
    let responses = examine_responses(&acknowledged, &by_id);
    let runs = examine_runs(&executions, &by_id, &at_kill);
    let payments = examine_payments(&executions);
    let ledger = examine_ledger(&executions);

    let count_at_kill = |flow: FlowKind, status: &str| {
        at_kill
            .iter()
            .filter(|(id, (stored, _))| stored == status && by_id[id.as_str()].flow == flow.stable_key())
            .count()
    };
    let unanswered_payments = unacknowledged.get(&FlowKind::Payment).copied().unwrap_or(0);
    let unanswered_ledger = unacknowledged.get(&FlowKind::Ledger).copied().unwrap_or(0);
    let resent = lock(&load.resent_payments).clone();
    println!(
        "acknowledged: {} requests ({acknowledged_before_kill} when the kill was sent, {acknowledged_at_kill} when the \
         senders stopped, {} acknowledged as deduplicated); unanswered at the kill and resent: {unanswered_payments} \
         payments, {unanswered_ledger} ledger entries",
        acknowledged.len(),
        acknowledged.iter().filter(|ack| ack.deduplicated).count(),
    );
    println!(
        "recovered after the kill: {} running and {} queued payments, {} running and {} queued ledger entries",
        count_at_kill(FlowKind::Payment, "running"),
        count_at_kill(FlowKind::Payment, "queued"),
        count_at_kill(FlowKind::Ledger, "running"),
        count_at_kill(FlowKind::Ledger, "queued"),
    );
    println!(
        "stored: {} executions, {} cancelled as duplicates, {} succeeded without a response to their sender, {} with \
         attempts > 1 ({} reused the journaled receipt); payment copies that ran again after the first run \
         finished: {} ({} of them resent after the kill, {} created up to {CLOCK_TOLERANCE_MILLIS} ms before that \
         finish); ledger entries skipped as resent duplicates: {}; ledger runs that read stale state: {}",
        executions.len(),
        runs.cancelled,
        responses.succeeded_unanswered,
        runs.rerun,
        payments.receipts_replayed,
        payments.late_copies.len(),
        payments.late_copies.iter().filter(|key| resent.contains(*key)).count(),
        payments.late_copies_within_tolerance,
        ledger.skipped,
        ledger.broken_chain.len(),
    );
    println!(
        "ledger state: lastSequence {}, entryCount {} of {LEDGER_ENTRIES}, violations {}",
        ledger_state["lastSequence"],
        ledger_state["entryCount"],
        ledger_state["violations"].as_array().map_or(0, Vec::len),
    );
    println!(
        "timings: run 1 {:.1} s, restart {:.1} s, all sent at {:.1} s, drained at {:.1} s, total {:.1} s",
        run_one.as_secs_f64(),
        restart_time.as_secs_f64(),
        sent.as_secs_f64(),
        drained.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );

    // Every request that failed failed because of the kill, and every planned request was sent.
    assert!(
        failures.is_empty(),
        "{} requests failed while the server was up: {}",
        failures.len(),
        sample(&failures)
    );
    assert_eq!(
        *lock(&load.next_sequence),
        LEDGER_ENTRIES + 1,
        "the ledger sender did not finish"
    );
    assert!(lock(&load.unanswered_payments).is_empty(), "payments left unsent");

    // None lost: every id a sender was given exists, belongs to its request and succeeded.
    assert!(
        responses.missing.is_empty(),
        "acknowledged executions not in the store: {}",
        sample(&responses.missing)
    );
    assert!(
        responses.wrong_request.is_empty(),
        "responses name another request's execution: {}",
        sample(&responses.wrong_request)
    );
    assert!(
        responses.not_succeeded.is_empty(),
        "acknowledged executions that did not succeed: {}",
        sample(&responses.not_succeeded)
    );

    // Each acknowledged request is one row, and a request the kill left unanswered is at most one.
    for (flow, unanswered) in [
        (FlowKind::Payment, unanswered_payments),
        (FlowKind::Ledger, unanswered_ledger),
    ] {
        let rows = executions.iter().filter(|row| row.flow == flow.stable_key()).count();
        let answered = acknowledged.iter().filter(|ack| ack.flow == flow).count();
        assert!(
            rows >= answered,
            "{}: {rows} rows for {answered} answered requests",
            flow.stable_key()
        );
        assert!(
            rows - answered <= unanswered,
            "{}: {rows} rows for {answered} answered and {unanswered} unanswered requests",
            flow.stable_key()
        );
    }

    // Every execution ended, each succeeded exactly once, and only the ones the kill interrupted
    // ran twice.
    assert!(
        runs.unfinished.is_empty(),
        "executions neither succeeded nor cancelled: {}",
        sample(&runs.unfinished)
    );
    assert!(
        runs.failed_attempts.is_empty(),
        "failed attempts: {}",
        sample(&runs.failed_attempts)
    );
    assert!(
        runs.wrong_success_count.is_empty(),
        "executions with a wrong number of succeeded attempts: {}",
        sample(&runs.wrong_success_count)
    );
    assert!(
        runs.rerun_unexpectedly.is_empty(),
        "executions not running at the kill ran again: {}",
        sample(&runs.rerun_unexpectedly)
    );
    assert!(
        runs.interrupted_not_rerun.is_empty(),
        "executions running at the kill that did not end with attempt 2: {}",
        sample(&runs.interrupted_not_rerun)
    );

    // Payments: duplicates point at an earlier execution of the same payment, and a payment ran
    // twice only when its copy arrived after the earlier execution finished.
    assert!(
        runs.bad_links.is_empty(),
        "cancelled rows without a matching earlier execution: {}",
        sample(&runs.bad_links)
    );
    assert_eq!(
        runs.cancelled_ledger, 0,
        "ledger rows cancelled although the ledger flow has no dedupe id"
    );
    assert!(
        payments.never_ran.is_empty(),
        "payments without a succeeded execution: {}",
        sample(&payments.never_ran)
    );
    assert!(
        payments.overlapping_runs.is_empty(),
        "payments ran twice although the copy arrived while an earlier execution was unfinished \
         (payment, copy, copy created at, earlier finished at): {}",
        sample(&payments.overlapping_runs)
    );
    assert!(
        payments.receipt_mismatch.is_empty(),
        "receipts differ from the journal: {}",
        sample(&payments.receipt_mismatch)
    );

    // Ledger: runs were one at a time in arrival order, each applied entry read the state its
    // predecessor saved, and the saved state counts every entry once.
    assert!(
        ledger.overlaps.is_empty(),
        "ledger runs overlapped or left arrival order: {}",
        sample(&ledger.overlaps)
    );
    assert!(
        ledger.decreasing.is_empty(),
        "ledger sequences decreased in arrival order: {}",
        sample(&ledger.decreasing)
    );
    assert_eq!(
        ledger.applied,
        (1..=LEDGER_ENTRIES).collect::<Vec<_>>(),
        "applied ledger sequences in arrival order"
    );
    assert!(
        ledger.wrong_skips.is_empty(),
        "ledger entries skipped as out of order: {}",
        sample(&ledger.wrong_skips)
    );
    assert!(
        ledger.skipped <= unanswered_ledger,
        "{} ledger duplicates for {unanswered_ledger} resent entries",
        ledger.skipped
    );
    assert!(
        ledger.broken_chain.is_empty(),
        "{} applied ledger entries read stale state, not the state their predecessor saved: {}",
        ledger.broken_chain.len(),
        sample(&ledger.broken_chain)
    );
    assert_ledger_state(&ledger_state, LEDGER_ENTRIES);
}

/// Checks the ledger flow's saved state after sequences 1 to `entries` were sent.
fn assert_ledger_state(state: &Value, entries: u64) {
    assert_eq!(
        state["violations"],
        Value::Null,
        "violations recorded in the ledger state"
    );
    assert_eq!(
        state["lastSequence"],
        json!(entries),
        "last applied sequence in the ledger state"
    );
    assert_eq!(
        state["entryCount"],
        json!(entries),
        "applied entries counted in the ledger state"
    );
    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    for sequence in 1..=entries {
        *expected.entry(ledger_account(sequence)).or_insert(0) += ledger_amount(sequence);
    }
    assert_eq!(state["balancesCents"], json!(expected), "balances in the ledger state");
}

/// What the store holds for the ids the senders were given.
struct ResponseFindings {
    /// Acknowledged ids with no row.
    missing: Vec<Acknowledgement>,
    /// Acknowledged ids whose row is another flow's or another payment's or entry's.
    wrong_request: Vec<Acknowledgement>,
    /// Acknowledged ids whose row did not succeed, with its status.
    not_succeeded: Vec<(Acknowledgement, String)>,
    /// Succeeded rows whose id no sender received: stored before the kill, response lost.
    succeeded_unanswered: usize,
}

fn examine_responses(acknowledged: &[Acknowledgement], by_id: &HashMap<&str, &Stored>) -> ResponseFindings {
    let mut findings = ResponseFindings {
        missing: Vec::new(),
        wrong_request: Vec::new(),
        not_succeeded: Vec::new(),
        succeeded_unanswered: 0,
    };
    for ack in acknowledged {
        let Some(row) = by_id.get(ack.execution_id.as_str()) else {
            findings.missing.push(ack.clone());
            continue;
        };
        if row.flow != ack.flow.stable_key() || row.key() != ack.key {
            findings.wrong_request.push(ack.clone());
        }
        if row.status != "succeeded" {
            findings.not_succeeded.push((ack.clone(), row.status.clone()));
        }
    }
    let answered: HashSet<&str> = acknowledged.iter().map(|ack| ack.execution_id.as_str()).collect();
    findings.succeeded_unanswered = by_id
        .values()
        .filter(|row| row.status == "succeeded" && !answered.contains(row.id.as_str()))
        .count();
    findings
}

/// How the stored executions ran.
struct RunFindings {
    /// Rows neither succeeded nor cancelled: (id, flow, status).
    unfinished: Vec<(String, String, String)>,
    /// Failed attempts: (execution id, attempt number).
    failed_attempts: Vec<(String, i64)>,
    /// Rows whose count of succeeded attempts is not 1 (succeeded) or 0 (cancelled).
    wrong_success_count: Vec<(String, usize)>,
    /// Rows with attempt > 1 that were not running at the kill: (id, attempt).
    rerun_unexpectedly: Vec<(String, i64)>,
    /// Rows running at the kill whose final attempt number is not 2: (id, attempt).
    interrupted_not_rerun: Vec<(String, i64)>,
    /// Cancelled rows whose `related_id` is not an earlier succeeded execution of the same
    /// request key: (id, related id).
    bad_links: Vec<(String, Option<String>)>,
    /// Cancelled rows of the ledger flow.
    cancelled_ledger: usize,
    /// Cancelled rows.
    cancelled: usize,
    /// Rows with attempt > 1.
    rerun: usize,
}

fn examine_runs(
    executions: &[Stored],
    by_id: &HashMap<&str, &Stored>,
    at_kill: &HashMap<String, (String, i64)>,
) -> RunFindings {
    let running_at_kill = |id: &str| at_kill.get(id).is_some_and(|(status, _)| status == "running");
    let mut findings = RunFindings {
        unfinished: Vec::new(),
        failed_attempts: Vec::new(),
        wrong_success_count: Vec::new(),
        rerun_unexpectedly: Vec::new(),
        interrupted_not_rerun: Vec::new(),
        bad_links: Vec::new(),
        cancelled_ledger: 0,
        cancelled: 0,
        rerun: 0,
    };
    for row in executions {
        if row.status != "succeeded" && row.status != "cancelled" {
            findings
                .unfinished
                .push((row.id.clone(), row.flow.clone(), row.status.clone()));
        }
        for attempt in row.attempts.iter().filter(|attempt| attempt.status != "succeeded") {
            findings.failed_attempts.push((row.id.clone(), attempt.number));
        }
        let successes = row
            .attempts
            .iter()
            .filter(|attempt| attempt.status == "succeeded")
            .count();
        if successes != usize::from(row.status == "succeeded") {
            findings.wrong_success_count.push((row.id.clone(), successes));
        }
        if row.attempt > 1 {
            findings.rerun += 1;
            if !running_at_kill(&row.id) {
                findings.rerun_unexpectedly.push((row.id.clone(), row.attempt));
            }
        }
        if running_at_kill(&row.id) && row.attempt != 2 {
            findings.interrupted_not_rerun.push((row.id.clone(), row.attempt));
        }
        if row.status == "cancelled" {
            findings.cancelled += 1;
            if row.flow == FlowKind::Ledger.stable_key() {
                findings.cancelled_ledger += 1;
            }
            let target = row.related_id.as_deref().and_then(|id| by_id.get(id));
            let matches = target.is_some_and(|target| {
                target.flow == row.flow
                    && target.key() == row.key()
                    && target.status == "succeeded"
                    && target.seq < row.seq
            });
            if !matches {
                findings.bad_links.push((row.id.clone(), row.related_id.clone()));
            }
        }
    }
    findings
}

/// How often each payment ran.
struct PaymentFindings {
    /// Planned payment ids with no succeeded execution.
    never_ran: Vec<String>,
    /// Later executions of a payment created while an earlier one was unfinished:
    /// (payment id, execution id, created at, earlier finished at), in milliseconds.
    overlapping_runs: Vec<(String, String, i64, i64)>,
    /// Payment ids of later executions created after every earlier one had finished.
    late_copies: Vec<String>,
    /// Late copies created up to `CLOCK_TOLERANCE_MILLIS` before the earlier finish.
    late_copies_within_tolerance: usize,
    /// Succeeded executions whose journaled receipt is missing or differs from the result.
    receipt_mismatch: Vec<String>,
    /// Executions run again whose receipt came from the journal of the interrupted attempt.
    receipts_replayed: usize,
}

fn examine_payments(executions: &[Stored]) -> PaymentFindings {
    let succeeded = || {
        executions
            .iter()
            .filter(|row| row.flow == FlowKind::Payment.stable_key() && row.status == "succeeded")
    };
    let mut by_payment: BTreeMap<String, Vec<&Stored>> = BTreeMap::new();
    for row in succeeded() {
        by_payment.entry(row.key()).or_default().push(row);
    }
    let mut findings = PaymentFindings {
        never_ran: (0..PAYMENTS)
            .map(|index| payment_request(index).key)
            .filter(|key| !by_payment.contains_key(key))
            .collect(),
        overlapping_runs: Vec::new(),
        late_copies: Vec::new(),
        late_copies_within_tolerance: 0,
        receipt_mismatch: Vec::new(),
        receipts_replayed: 0,
    };
    for runs in by_payment.values() {
        let mut earlier_finished: Option<i64> = None;
        for run in runs {
            if let Some(finished) = earlier_finished {
                if run.created_at + CLOCK_TOLERANCE_MILLIS < finished {
                    findings
                        .overlapping_runs
                        .push((run.key(), run.id.clone(), run.created_at, finished));
                } else {
                    findings.late_copies.push(run.key());
                    if run.created_at < finished {
                        findings.late_copies_within_tolerance += 1;
                    }
                }
            }
            let finished = run.succeeded_attempt().map_or(i64::MAX, |attempt| attempt.finished_at);
            earlier_finished = Some(earlier_finished.map_or(finished, |earlier| earlier.max(finished)));
        }
    }
    for row in succeeded() {
        let journaled = match row.steps.as_slice() {
            [(name, receipt, recorded_at)] if name == "book receipt" => Some((receipt, *recorded_at)),
            _ => None,
        };
        match journaled {
            Some((receipt, _)) if receipt["receiptId"] == row.result["receiptId"] => {}
            _ => findings.receipt_mismatch.push(row.id.clone()),
        }
        let replayed = row.attempt > 1
            && journaled
                .zip(row.succeeded_attempt())
                .is_some_and(|((_, recorded_at), attempt)| recorded_at < attempt.started_at);
        if replayed {
            findings.receipts_replayed += 1;
        }
    }
    findings
}

/// How the ledger entries ran, in arrival order.
struct LedgerFindings {
    /// Neighbours in arrival order where the later run started before the earlier finished.
    overlaps: Vec<(String, String)>,
    /// Neighbours in arrival order whose sequence decreased.
    decreasing: Vec<(u64, u64)>,
    /// Sequences of applied entries, in arrival order.
    applied: Vec<u64>,
    /// Applied entries whose `previousSequence` is not the sequence applied before them:
    /// (execution id, sequence, previous sequence it read, its attempt's start, the
    /// predecessor's execution id, the predecessor's finish), times in milliseconds.
    broken_chain: Vec<(String, u64, u64, i64, String, i64)>,
    /// Skipped entries that are not resent copies of the last applied entry:
    /// (execution id, posting, sequence, previous sequence).
    wrong_skips: Vec<(String, String, u64, u64)>,
    /// Entries skipped as resent copies.
    skipped: usize,
}

fn examine_ledger(executions: &[Stored]) -> LedgerFindings {
    let ledger: Vec<&Stored> = executions
        .iter()
        .filter(|row| row.flow == FlowKind::Ledger.stable_key() && row.status == "succeeded")
        .collect();
    let mut findings = LedgerFindings {
        overlaps: Vec::new(),
        decreasing: Vec::new(),
        applied: Vec::new(),
        broken_chain: Vec::new(),
        wrong_skips: Vec::new(),
        skipped: 0,
    };
    for pair in ledger.windows(2) {
        let previous_finished = pair[0]
            .succeeded_attempt()
            .map_or(i64::MAX, |attempt| attempt.finished_at);
        let next_started = pair[1]
            .succeeded_attempt()
            .map_or(i64::MIN, |attempt| attempt.started_at);
        if next_started < previous_finished {
            findings.overlaps.push((pair[0].id.clone(), pair[1].id.clone()));
        }
        let (previous, next) = (pair[0].result["sequence"].as_u64(), pair[1].result["sequence"].as_u64());
        if next < previous {
            findings.decreasing.push((previous.unwrap_or(0), next.unwrap_or(0)));
        }
    }
    let mut predecessor: Option<&Stored> = None;
    for row in &ledger {
        let sequence = row.result["sequence"].as_u64().unwrap_or(0);
        let previous_sequence = row.result["previousSequence"].as_u64().unwrap_or(0);
        let posting = row.result["posting"].as_str().unwrap_or_default();
        if posting != "applied" {
            findings.skipped += 1;
            if posting != "duplicate" || sequence != previous_sequence {
                findings
                    .wrong_skips
                    .push((row.id.clone(), posting.to_owned(), sequence, previous_sequence));
            }
            continue;
        }
        findings.applied.push(sequence);
        let expected_previous = predecessor.map_or(0, |before| before.result["sequence"].as_u64().unwrap_or(0));
        if previous_sequence != expected_previous {
            findings.broken_chain.push((
                row.id.clone(),
                sequence,
                previous_sequence,
                row.succeeded_attempt().map_or(0, |attempt| attempt.started_at),
                predecessor.map_or_else(String::new, |before| before.id.clone()),
                predecessor
                    .and_then(|before| before.succeeded_attempt())
                    .map_or(0, |attempt| attempt.finished_at),
            ));
        }
        predecessor = Some(row);
    }
    findings
}

/// Without payments and without a kill, so a failure here is not caused by the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_runs_read_the_state_their_predecessor_saved() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = write_config(folder.path());
    let mut server = start(folder.path(), &config, free_port(), 1).await;
    let base = server.base_url();

    let load = Arc::new(Load::new(Vec::new(), QUIET_LEDGER_ENTRIES, None));
    join_all(spawn_senders(&load, &base)).await;
    wait_until_idle(&base).await;
    let exit = server.terminate(EXIT_DEADLINE).await;
    assert!(exit.success(), "the server did not exit cleanly after SIGTERM: {exit}");

    let failures = lock(&load.failures).clone();
    assert!(
        failures.is_empty(),
        "{} requests failed: {}",
        failures.len(),
        sample(&failures)
    );
    let (executions, ledger_state) = read_store(&folder.path().join("orders.db"));
    let ledger = examine_ledger(&executions);
    println!(
        "quiet ledger: {QUIET_LEDGER_ENTRIES} entries, {} applied runs read stale state; saved entryCount {}",
        ledger.broken_chain.len(),
        ledger_state["entryCount"],
    );
    assert!(
        ledger.overlaps.is_empty(),
        "ledger runs overlapped or left arrival order: {}",
        sample(&ledger.overlaps)
    );
    assert_eq!(
        ledger.applied,
        (1..=QUIET_LEDGER_ENTRIES).collect::<Vec<_>>(),
        "applied ledger sequences in arrival order"
    );
    assert!(
        ledger.broken_chain.is_empty(),
        "{} applied ledger entries read stale state, not the state their predecessor saved: {}",
        ledger.broken_chain.len(),
        sample(&ledger.broken_chain)
    );
    assert_ledger_state(&ledger_state, QUIET_LEDGER_ENTRIES);
}
