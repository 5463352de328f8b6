//! Client workloads that keep running through faults and record what they saw.
//!
//! Every client task holds one single-endpoint client per member and talks to one member at a
//! time, moving to the next member after any error, as etcd's own client does. That makes the
//! outcome of a failed request classifiable: a request refused at connect time was never sent
//! ([`Outcome::Failed`]); anything else after sending may have been applied
//! ([`Outcome::Unknown`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use futures::stream::{FuturesUnordered, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{certainly_not_sent, client_options, connect_with, header_revision};
use crate::history::{History, Op, Outcome, Record};
use crate::watchcheck::Change;

/// A flag that tells workload tasks to finish their current operation and return.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The client URLs workload tasks may use; the test changes it as members come and go.
#[derive(Clone, Debug, Default)]
pub struct Endpoints(Arc<RwLock<Vec<String>>>);

impl Endpoints {
    pub fn new(urls: Vec<String>) -> Endpoints {
        Endpoints(Arc::new(RwLock::new(urls)))
    }
    pub fn get(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, urls: Vec<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = urls;
    }
    pub fn add(&self, url: String) {
        let mut urls = self.0.write().unwrap_or_else(|e| e.into_inner());
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    pub fn remove(&self, url: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|u| u != url);
    }
}

/// One member at a time out of [`Endpoints`]; [`Router::rotate`] moves to the next.
pub struct Router {
    endpoints: Endpoints,
    clients: HashMap<String, Client>,
    position: usize,
    request_timeout: Duration,
}

impl Router {
    /// Starts at the `start`-th endpoint (modulo their number), so tasks spread over members.
    pub fn new(endpoints: Endpoints, start: usize, request_timeout: Duration) -> Router {
        Router {
            endpoints,
            clients: HashMap::new(),
            position: start,
            request_timeout,
        }
    }

    /// The current member's URL and a client of it only.
    pub async fn current(&mut self) -> (String, Client) {
        let urls = self.endpoints.get();
        assert!(!urls.is_empty(), "a workload has no endpoints");
        let url = urls[self.position % urls.len()].clone();
        if !self.clients.contains_key(&url) {
            let client = connect_with(
                std::slice::from_ref(&url),
                client_options(Some(self.request_timeout)),
            )
            .await;
            self.clients.insert(url.clone(), client);
        }
        let client = self.clients[&url].clone();
        (url, client)
    }

    pub fn rotate(&mut self) {
        self.position = self.position.wrapping_add(1);
    }
}

/// The mix of a [`RegisterWorkload`].
#[derive(Clone, Debug)]
pub struct RegisterWorkload {
    /// Concurrent client tasks.
    pub clients: usize,
    /// The registers.
    pub keys: Vec<String>,
    /// Percent of operations that are (linearizable) gets.
    pub get_percent: u32,
    /// Percent that are compare-and-swaps; the rest are puts.
    pub cas_percent: u32,
    /// Client-side bound on one operation; past it the outcome is unknown.
    pub op_timeout: Duration,
    /// Pause between a client's operations.
    pub think_time: Duration,
    /// Seeds each client's choices (client `c` uses `seed + c`).
    pub seed: u64,
}

/// Per-outcome counts of a history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub get: usize,
    pub put: usize,
    pub cas_swapped: usize,
    pub cas_not_swapped: usize,
    pub failed: usize,
    pub unknown: usize,
}

impl OutcomeCounts {
    pub fn of(records: &[Record]) -> OutcomeCounts {
        let mut c = OutcomeCounts::default();
        for r in records {
            match r.outcome {
                Outcome::Get(_) => c.get += 1,
                Outcome::Put => c.put += 1,
                Outcome::Cas(true) => c.cas_swapped += 1,
                Outcome::Cas(false) => c.cas_not_swapped += 1,
                Outcome::Failed => c.failed += 1,
                Outcome::Unknown => c.unknown += 1,
            }
        }
        c
    }
    pub fn total(&self) -> usize {
        self.get + self.put + self.cas_swapped + self.cas_not_swapped + self.failed + self.unknown
    }
}

impl RegisterWorkload {
    /// Starts the client tasks; they record into `history` until `stop`.
    pub fn spawn(
        &self,
        endpoints: &Endpoints,
        history: &Arc<History>,
        stop: &Stop,
    ) -> Vec<JoinHandle<()>> {
        assert!(!self.keys.is_empty() && self.get_percent + self.cas_percent <= 100);
        (0..self.clients)
            .map(|client| {
                let config = self.clone();
                let router = Router::new(endpoints.clone(), client, self.op_timeout);
                let history = history.clone();
                let stop = stop.clone();
                tokio::spawn(register_client(config, client, router, history, stop))
            })
            .collect()
    }
}

async fn register_client(
    config: RegisterWorkload,
    client: usize,
    mut router: Router,
    history: Arc<History>,
    stop: Stop,
) {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(client as u64));
    // The last value this client saw for each key: CAS expects it, so many CASes succeed.
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    let mut seq = 0u64;
    while !stop.is_stopped() {
        let key = config.keys[rng.random_range(0..config.keys.len())].clone();
        let dice = rng.random_range(0..100);
        seq += 1;
        let value = format!("c{client}-{seq}");
        let op = if dice < config.get_percent {
            Op::Get { key }
        } else if dice < config.get_percent + config.cas_percent {
            let expected = known.get(&key).cloned().flatten();
            Op::Cas {
                key,
                expected,
                new: value,
            }
        } else {
            Op::Put { key, value }
        };
        let (_, mut c) = router.current().await;
        let call_ns = history.now_ns();
        let result = tokio::time::timeout(config.op_timeout, execute(&mut c, &op)).await;
        let (outcome, return_ns, revision) = match result {
            Ok(Ok((outcome, revision))) => (outcome, Some(history.now_ns()), Some(revision)),
            Ok(Err(e)) if certainly_not_sent(&e) => (Outcome::Failed, Some(history.now_ns()), None),
            Ok(Err(_)) | Err(_) => (Outcome::Unknown, None, None),
        };
        match (&op, &outcome) {
            (Op::Get { key }, Outcome::Get(v)) => {
                known.insert(key.clone(), v.clone());
            }
            (Op::Put { key, value }, Outcome::Put)
            | (
                Op::Cas {
                    key, new: value, ..
                },
                Outcome::Cas(true),
            ) => {
                known.insert(key.clone(), Some(value.clone()));
            }
            (Op::Cas { key, .. }, Outcome::Cas(false)) => {
                known.remove(key);
            }
            _ => {}
        }
        let failed = matches!(outcome, Outcome::Failed | Outcome::Unknown);
        history.push(Record {
            client,
            op,
            call_ns,
            return_ns,
            outcome,
            revision,
        });
        if failed {
            router.rotate();
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if !config.think_time.is_zero() {
            tokio::time::sleep(config.think_time).await;
        }
    }
}

/// Runs one register operation: its outcome and the response header's revision.
pub async fn execute(client: &mut Client, op: &Op) -> Result<(Outcome, i64), etcd_client::Error> {
    match op {
        Op::Get { key } => {
            let response = client.get(key.as_str(), None).await?;
            let revision = header_revision(response.header());
            let value = response
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
            Ok((Outcome::Get(value), revision))
        }
        Op::Put { key, value } => {
            let response = client.put(key.as_str(), value.as_str(), None).await?;
            Ok((Outcome::Put, header_revision(response.header())))
        }
        Op::Cas { key, expected, new } => {
            let compare = match expected {
                Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.as_str()),
                None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            };
            let txn =
                Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key.as_str(), new.as_str(), None)]);
            let response = client.txn(txn).await?;
            Ok((
                Outcome::Cas(response.succeeded()),
                header_revision(response.header()),
            ))
        }
    }
}

/// A put that was acknowledged.
#[derive(Clone, Debug)]
pub struct AckedPut {
    pub key: String,
    pub value: String,
    pub revision: i64,
    pub call: Instant,
    pub returned: Instant,
}

/// What unique-key writers did.
#[derive(Clone, Debug, Default)]
pub struct PutLog {
    pub acked: Vec<AckedPut>,
    /// Refused before sending.
    pub failed: usize,
    /// Outcome unknown (timed out, or an error after sending).
    pub unknown: usize,
    /// When each put that was not acknowledged (failed or unknown) was issued.
    pub unacked_calls: Vec<Instant>,
}

impl PutLog {
    /// The longest time between consecutive acknowledgements (over all tasks), and when it
    /// started.
    pub fn longest_ack_gap(&self) -> Option<(Duration, Instant)> {
        let mut returns: Vec<Instant> = self.acked.iter().map(|a| a.returned).collect();
        returns.sort();
        returns
            .windows(2)
            .map(|w| (w[1] - w[0], w[0]))
            .max_by_key(|&(gap, _)| gap)
    }

    /// Time from `since` until the first acknowledgement of a put issued at or after `since`.
    pub fn first_ack_after(&self, since: Instant) -> Option<Duration> {
        self.acked
            .iter()
            .filter(|a| a.call >= since)
            .map(|a| a.returned - since)
            .min()
    }
}

/// `tasks` writers putting unique keys `{prefix}{task}-{seq}` until `stop`; the join handle
/// yields what was acknowledged.
pub fn spawn_unique_writers(
    endpoints: &Endpoints,
    tasks: usize,
    prefix: &str,
    op_timeout: Duration,
    stop: &Stop,
) -> JoinHandle<PutLog> {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let mut router = Router::new(endpoints.clone(), task, op_timeout);
            let prefix = prefix.to_string();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut log = PutLog::default();
                let mut seq = 0u64;
                while !stop.is_stopped() {
                    seq += 1;
                    let key = format!("{prefix}{task}-{seq:06}");
                    let value = format!("v{task}-{seq}");
                    let (_, mut client) = router.current().await;
                    let call = Instant::now();
                    let result = tokio::time::timeout(
                        op_timeout,
                        client.put(key.as_str(), value.as_str(), None),
                    )
                    .await;
                    match result {
                        Ok(Ok(response)) => log.acked.push(AckedPut {
                            key,
                            value,
                            revision: header_revision(response.header()),
                            call,
                            returned: Instant::now(),
                        }),
                        Ok(Err(e)) if certainly_not_sent(&e) => {
                            log.failed += 1;
                            log.unacked_calls.push(call);
                            router.rotate();
                        }
                        Ok(Err(_)) | Err(_) => {
                            log.unknown += 1;
                            log.unacked_calls.push(call);
                            router.rotate();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                log
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = PutLog::default();
        for handle in handles {
            let log = handle.await.expect("a writer task panicked");
            all.acked.extend(log.acked);
            all.failed += log.failed;
            all.unknown += log.unknown;
            all.unacked_calls.extend(log.unacked_calls);
        }
        all.acked.sort_by_key(|a| a.call);
        all.unacked_calls.sort();
        all
    })
}

/// Puts `count` keys `{prefix}{i:06}` with `concurrency` requests in flight, retrying each key
/// until acknowledged (a put is idempotent), through `endpoints` (moving on after errors). Fails
/// the test after `timeout`.
pub async fn write_keys(
    endpoints: &Endpoints,
    prefix: &str,
    count: usize,
    concurrency: usize,
    timeout: Duration,
) -> Vec<AckedPut> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + timeout;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let next = next.clone();
            let mut router = Router::new(endpoints.clone(), task, Duration::from_secs(5));
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        return acked;
                    }
                    let key = format!("{prefix}{i:06}");
                    let value = format!("value-{i}");
                    loop {
                        if Instant::now() > deadline {
                            panic!("writing {count} keys took longer than {timeout:?}");
                        }
                        let (_, mut client) = router.current().await;
                        let call = Instant::now();
                        match client.put(key.as_str(), value.as_str(), None).await {
                            Ok(response) => {
                                acked.push(AckedPut {
                                    key: key.clone(),
                                    value: value.clone(),
                                    revision: header_revision(response.header()),
                                    call,
                                    returned: Instant::now(),
                                });
                                break;
                            }
                            Err(_) => {
                                router.rotate();
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let mut acked = Vec::with_capacity(count);
    for task in tasks {
        acked.extend(task.await.expect("a writer task panicked"));
    }
    acked
}

/// Issues a put through `endpoints` every `interval` (each attempt bounded by `op_timeout`,
/// attempts overlapping) until one is acknowledged; the time from `since` to that
/// acknowledgement. This measures when the cluster accepts writes again, independent of how long
/// a request sent into the failure happens to hang.
pub async fn time_until_write_succeeds(
    endpoints: &[String],
    key: &str,
    since: Instant,
    interval: Duration,
    op_timeout: Duration,
    limit: Duration,
) -> Duration {
    let mut clients = Vec::new();
    for url in endpoints {
        clients
            .push(connect_with(std::slice::from_ref(url), client_options(Some(op_timeout))).await);
    }
    let deadline = since + limit;
    let mut in_flight = FuturesUnordered::new();
    let mut ticker = tokio::time::interval(interval);
    let mut attempt = 0usize;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if Instant::now() > deadline {
                    panic!("no write succeeded within {limit:?} through {endpoints:?}");
                }
                let mut client = clients[attempt % clients.len()].clone();
                attempt += 1;
                let key = key.to_string();
                in_flight.push(async move {
                    tokio::time::timeout(op_timeout, client.put(key, "probe", None)).await
                });
            }
            Some(result) = in_flight.next() => {
                if let Ok(Ok(_)) = result {
                    return Instant::now() - since;
                }
            }
        }
    }
}

/// Reads everything under `prefix` from `endpoints` (retrying other members on errors) and
/// checks every acknowledged put is there with its value; the number of keys read.
pub async fn verify_acked_puts(endpoints: &[String], prefix: &str, acked: &[AckedPut]) -> usize {
    let kvs = read_prefix(endpoints, prefix).await;
    let mut missing = Vec::new();
    for put in acked {
        match kvs.get(&put.key) {
            Some(v) if *v == put.value => {}
            Some(v) => missing.push(format!(
                "{} has {v:?}, acknowledged {:?} at revision {}",
                put.key, put.value, put.revision
            )),
            None => missing.push(format!(
                "{} (acknowledged at revision {}) is missing",
                put.key, put.revision
            )),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged puts are lost: {}",
        missing.len(),
        acked.len(),
        missing
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    kvs.len()
}

/// Every key and value under `prefix` (a linearizable read through the first member that
/// answers).
pub async fn read_prefix(endpoints: &[String], prefix: &str) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        for url in endpoints {
            let mut client = connect_with(
                std::slice::from_ref(url),
                client_options(Some(Duration::from_secs(10))),
            )
            .await;
            match client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
            {
                Ok(response) => {
                    return response
                        .kvs()
                        .iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(kv.key()).into_owned(),
                                String::from_utf8_lossy(kv.value()).into_owned(),
                            )
                        })
                        .collect();
                }
                Err(e) => last = format!("{url}: {e}"),
            }
        }
        if Instant::now() > deadline {
            panic!("could not read {prefix:?} within 30s; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What churn writers did: every acknowledged change (puts, and deletes that deleted a key).
#[derive(Clone, Debug, Default)]
pub struct ChurnLog {
    pub acked: Vec<Change>,
    pub failed: usize,
    pub unknown: usize,
}

/// `tasks` writers putting (and with `delete_percent`, deleting) keys `{prefix}k{0..keys}` until
/// `stop`.
pub fn spawn_churn_writers(
    endpoints: &Endpoints,
    tasks: usize,
    prefix: &str,
    keys: usize,
    delete_percent: u32,
    op_timeout: Duration,
    stop: &Stop,
) -> JoinHandle<ChurnLog> {
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let mut router = Router::new(endpoints.clone(), task, op_timeout);
            let prefix = prefix.to_string();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(rand::random());
                let mut log = ChurnLog::default();
                let mut seq = 0u64;
                while !stop.is_stopped() {
                    seq += 1;
                    let key = format!("{prefix}k{}", rng.random_range(0..keys));
                    let delete = rng.random_range(0..100) < delete_percent;
                    let value = format!("w{task}-{seq}");
                    let (_, mut client) = router.current().await;
                    let result = tokio::time::timeout(op_timeout, async {
                        if delete {
                            let r = client.delete(key.as_str(), None).await?;
                            Ok::<_, etcd_client::Error>((
                                header_revision(r.header()),
                                r.deleted() > 0,
                            ))
                        } else {
                            let r = client.put(key.as_str(), value.as_str(), None).await?;
                            Ok((header_revision(r.header()), true))
                        }
                    })
                    .await;
                    match result {
                        Ok(Ok((revision, changed))) => {
                            if changed {
                                log.acked.push(Change {
                                    revision,
                                    key: key.into_bytes(),
                                    value: (!delete).then(|| value.into_bytes()),
                                });
                            }
                        }
                        Ok(Err(e)) if certainly_not_sent(&e) => {
                            log.failed += 1;
                            router.rotate();
                        }
                        Ok(Err(_)) | Err(_) => {
                            log.unknown += 1;
                            router.rotate();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                log
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut all = ChurnLog::default();
        for handle in handles {
            let log = handle.await.expect("a writer task panicked");
            all.acked.extend(log.acked);
            all.failed += log.failed;
            all.unknown += log.unknown;
        }
        all.acked.sort_by_key(|c| c.revision);
        all
    })
}

/// The median of some durations (the upper one of the middle two).
pub fn median(durations: &[Duration]) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// A seed from `MAINSTAY_TEST_SEED`, else a random one; printed so a failure can be replayed.
pub fn seed_from_env() -> u64 {
    let seed = match std::env::var("MAINSTAY_TEST_SEED") {
        Ok(s) => s.parse().expect("MAINSTAY_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    };
    println!("seed: {seed} (replay the same client choices with MAINSTAY_TEST_SEED={seed})");
    seed
}
