//! A cluster of real server processes (mainstay or etcd) on loopback, with fault injection.
//!
//! Each member gets fixed client and peer ports for its whole life (its peer URL is its identity in
//! the membership, its client URL is what the tests dial), a directory with its data directory and
//! its log (stdout and stderr of every run), and is started with exactly etcd's flags, so the same
//! harness drives `mainstay store` and `etcd`.
//!
//! Every wait is bounded; a member that exits or never answers fails the test with its log. When a
//! test panics with a cluster alive, dropping the cluster prints the tail of every member's log and
//! keeps the directory for inspection.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, MemberAddOptions, StatusResponse};
use tokio::time::Instant;

use crate::client::{certainly_not_sent, client_options, connect, connect_with, REQUEST_TIMEOUT};

/// How long a member may take from spawn until it answers client requests.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the cluster may take to elect a leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long membership changes are retried while the server refuses them as premature
/// ("unhealthy cluster", learner not in sync yet, ...).
pub const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(50);
/// Starts the line the harness writes into a member's log before each start.
const RUN_HEADER: &str = "==== testkit: starting";
/// Lines of each member's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// Ports are drawn below the kernel's ephemeral range (32768.. on Linux by default), so an
/// outgoing connection cannot take a member's port while the member is down.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// Which server the tests run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Mainstay,
    Etcd,
}

impl Target {
    /// `MAINSTAY_TEST_TARGET` = `mainstay` (default) or `etcd`.
    pub fn from_env() -> Target {
        match std::env::var("MAINSTAY_TEST_TARGET").as_deref() {
            Err(_) | Ok("") | Ok("mainstay") => Target::Mainstay,
            Ok("etcd") => Target::Etcd,
            Ok(other) => panic!("MAINSTAY_TEST_TARGET must be `mainstay` or `etcd`, not {other:?}"),
        }
    }

    /// The executable and the arguments that precede etcd's flags.
    fn program(self, options: &ClusterOptions) -> (PathBuf, Vec<String>) {
        match self {
            Target::Etcd => (
                options.etcd_bin.clone().unwrap_or_else(|| {
                    std::env::var_os("ETCD_BIN")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("etcd"))
                }),
                Vec::new(),
            ),
            Target::Mainstay => (
                options.mainstay_bin.clone().unwrap_or_else(mainstay_binary),
                vec!["store".to_string()],
            ),
        }
    }
}

/// `MAINSTAY_BIN`, else the `mainstay` built with the same profile as the running test (tests
/// live in `<target>/<profile>/deps/`, the binary in `<target>/<profile>/`).
fn mainstay_binary() -> PathBuf {
    let path = if let Some(bin) = std::env::var_os("MAINSTAY_BIN") {
        PathBuf::from(bin)
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("mainstay")))
            .unwrap_or_else(|| PathBuf::from("mainstay"))
    };
    assert!(
        path.exists(),
        "the mainstay binary {} does not exist: build it (scripts/build.sh) or set \
         MAINSTAY_BIN, or run against etcd with MAINSTAY_TEST_TARGET=etcd",
        path.display()
    );
    path
}

/// Options for [`Cluster::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ClusterOptions {
    /// `--snapshot-count`: committed entries between snapshots (the server's default if `None`).
    pub snapshot_count: Option<u64>,
    /// More flags for every member.
    pub extra_args: Vec<String>,
    /// The server to run; `MAINSTAY_TEST_TARGET` if `None`.
    pub target: Option<Target>,
    /// The mainstay executable; `MAINSTAY_BIN` or the cargo target directory's if `None`.
    pub mainstay_bin: Option<PathBuf>,
    /// The etcd executable; `ETCD_BIN` or `etcd` on the `PATH` if `None`.
    pub etcd_bin: Option<PathBuf>,
    /// Where the cluster's temporary directory is made; the system's temporary directory if
    /// `None`.
    pub base_dir: Option<PathBuf>,
}

/// What [`Cluster::add_member`] should add.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddMember {
    /// Add as a non-voting learner.
    pub learner: bool,
    /// Re-add the (removed, wiped) member at this index with its old name and ports, instead of a
    /// new member.
    pub reuse: Option<usize>,
}

/// A member as the cluster's member list describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    /// Empty until an added member has started and published its name.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// A HashKV answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub compact_revision: i64,
    /// The header's revision (the member's current revision).
    pub header_revision: i64,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Holds `data/` and `member.log`.
    dir: PathBuf,
    /// `--initial-cluster` and `--initial-cluster-state` this member is (re)started with.
    initial_cluster: String,
    initial_state: &'static str,
    child: Option<Child>,
    /// Learned from the member's Status once it answered (or from MemberAdd).
    id: Option<u64>,
    /// Removed from the membership (and not re-added).
    removed: bool,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("member.log")
    }
}

/// A cluster of server processes. Dropping it kills every process.
pub struct Cluster {
    target: Target,
    /// The executable and the arguments before etcd's flags.
    program: (PathBuf, Vec<String>),
    options: ClusterOptions,
    token: String,
    dir: Option<tempfile::TempDir>,
    members: Vec<Member>,
}

impl Cluster {
    /// Starts `n` members with default options; see [`Cluster::start_with`].
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, ClusterOptions::default()).await
    }

    /// Starts `n` members of a new cluster (target from `MAINSTAY_TEST_TARGET`) and waits until
    /// every member answers and all agree on a leader.
    pub async fn start_with(n: usize, options: ClusterOptions) -> Cluster {
        assert!(n >= 1, "a cluster needs at least one member");
        let target = options.target.unwrap_or_else(Target::from_env);
        // Fails early if the binary is missing.
        let program = target.program(&options);
        let mut builder = tempfile::Builder::new();
        builder.prefix("mainstay-cluster-");
        let dir = match &options.base_dir {
            Some(base) => builder.tempdir_in(base),
            None => builder.tempdir(),
        }
        .expect("creating the cluster's temporary directory");
        let token = format!("testkit-{}", rand::random::<u64>());
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("n{}", i + 1);
            let member_dir = dir.path().join(&name);
            std::fs::create_dir_all(&member_dir).expect("creating a member directory");
            members.push(Member {
                name,
                client_port: allocate_port(),
                peer_port: allocate_port(),
                dir: member_dir,
                initial_cluster: String::new(),
                initial_state: "new",
                child: None,
                id: None,
                removed: false,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.initial_cluster = initial_cluster.clone();
        }
        let mut cluster = Cluster {
            target,
            program,
            options,
            token,
            dir: Some(dir),
            members,
        };
        eprintln!(
            "testkit: starting a {n}-member {target:?} cluster in {}",
            cluster.dir().display()
        );
        // All members first: none of them serves clients before a quorum has formed.
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_member_ready(i, START_TIMEOUT).await;
        }
        cluster.wait_for_agreed_leader(LEADER_TIMEOUT).await;
        cluster
    }

    pub fn target(&self) -> Target {
        self.target
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster directory").path()
    }

    /// Number of member slots (including removed and stopped members).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    pub fn client_url(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    pub fn peer_url(&self, i: usize) -> String {
        self.members[i].peer_url()
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.members[i].data_dir()
    }

    /// The process ID of member `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// The member's ID, once known (it answered a Status, or was added by MemberAdd).
    pub fn member_id(&self, i: usize) -> Option<u64> {
        self.members[i].id
    }

    /// The index of the member with this ID.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id == Some(id))
    }

    pub fn is_removed(&self, i: usize) -> bool {
        self.members[i].removed
    }

    /// Whether the member's process is running (started and not exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut() {
            Some(c) => c.try_wait().expect("polling a member process").is_none(),
            None => false,
        }
    }

    /// Indices of members whose process runs and that are not removed.
    pub fn alive(&mut self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| !self.members[i].removed && self.is_running(i))
            .collect()
    }

    /// Client URLs of the members that are part of the membership (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| !m.removed && !m.initial_cluster.is_empty())
            .map(Member::client_url)
            .collect()
    }

    /// Client URLs of the running members.
    pub fn alive_endpoints(&mut self) -> Vec<String> {
        self.alive()
            .into_iter()
            .map(|i| self.client_url(i))
            .collect()
    }

    /// A client of member `i` only.
    pub async fn client(&self, i: usize) -> Client {
        connect(&[self.client_url(i)]).await
    }

    /// A client of all members in the membership (etcd-client balances over them).
    pub async fn client_all(&self) -> Client {
        connect(&self.endpoints()).await
    }

    /// The member's log so far (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.members[i].log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of member `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = self.log(i);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `kill -9` member `i` (no shutdown path runs) and reap it. A no-op if it is not running.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill(); // fails only if it exited already
            let _ = child.wait();
        }
    }

    /// Starts member `i` again with the same flags (an existing data directory makes it rejoin)
    /// and waits until it answers.
    pub async fn start_member(&mut self, i: usize) {
        assert!(
            !self.members[i].removed,
            "member {} was removed; re-add it with add_member",
            self.members[i].name
        );
        assert!(
            !self.is_running(i),
            "member {} is already running",
            self.members[i].name
        );
        self.spawn(i);
        self.wait_member_ready(i, START_TIMEOUT).await;
    }

    /// Kill and start again.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_member(i).await;
    }

    /// Deletes member `i`'s data directory (it must not be running).
    pub fn wipe(&mut self, i: usize) {
        assert!(
            !self.is_running(i),
            "wipe member {} only after stopping it",
            self.members[i].name
        );
        let data = self.members[i].data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).expect("removing a member's data directory");
        }
    }

    /// Member `i`'s Status (one request, bounded by the client's timeouts).
    pub async fn status(&self, i: usize) -> Result<StatusResponse, etcd_client::Error> {
        let mut client = connect_with(&[self.client_url(i)], short_options()).await;
        bounded(client.status()).await
    }

    /// HashKV of member `i` at `revision` (0: its current revision).
    pub async fn hash_kv(&self, i: usize, revision: i64) -> Result<HashKv, etcd_client::Error> {
        let mut client = connect_with(&[self.client_url(i)], short_options()).await;
        let response = bounded(client.hash_kv(revision)).await?;
        Ok(HashKv {
            hash: response.hash(),
            compact_revision: response.compact_version(),
            header_revision: response.header().map(|h| h.revision()).unwrap_or(0),
        })
    }

    /// The index of the running member that reports itself leader (the highest term wins if
    /// several do), asking every running member.
    pub async fn leader(&mut self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, status) in self.statuses().await {
            let Ok(status) = status else { continue };
            let Some(header) = status.header() else {
                continue;
            };
            if status.leader() != 0 && status.leader() == header.member_id() {
                let term = status.raft_term();
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Waits until some running member reports itself leader; its index.
    pub async fn wait_for_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader().await {
                return i;
            }
            if Instant::now() > deadline {
                panic!("no leader within {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running member answers Status and all name the same leader, which is
    /// one of them; the leader's index.
    pub async fn wait_for_agreed_leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let statuses = self.statuses().await;
            let mut leaders = HashSet::new();
            let mut all_ok = true;
            for (i, status) in &statuses {
                match status {
                    Ok(s) => {
                        leaders.insert(s.leader());
                    }
                    Err(e) => {
                        all_ok = false;
                        last = format!("{}: {e}", self.members[*i].name);
                    }
                }
            }
            if all_ok && leaders.len() == 1 {
                let leader = *leaders.iter().next().expect("one leader");
                if leader != 0 {
                    if let Some(i) = self.index_of(leader) {
                        return i;
                    }
                }
                last = format!("leader id {leader:x}");
            } else if all_ok {
                last = format!("members disagree on the leader: {leaders:x?}");
            }
            if Instant::now() > deadline {
                panic!("the members did not agree on a leader within {timeout:?}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Status of every running member, in index order.
    async fn statuses(&mut self) -> Vec<(usize, Result<StatusResponse, etcd_client::Error>)> {
        let alive = self.alive();
        let futures = alive.iter().map(|&i| self.status(i));
        let results = futures::future::join_all(futures).await;
        alive.into_iter().zip(results).collect()
    }

    /// The revision the leader has now (from its Status header).
    pub async fn leader_revision(&mut self) -> i64 {
        let deadline = Instant::now() + LEADER_TIMEOUT;
        loop {
            let leader = self.wait_for_leader(LEADER_TIMEOUT).await;
            if let Ok(status) = self.status(leader).await {
                if let Some(h) = status.header() {
                    return h.revision();
                }
            }
            if Instant::now() > deadline {
                panic!("could not read the leader's revision within {LEADER_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until member `i` knows a leader and has applied every entry the leader had
    /// committed when the wait began (Status `raft_applied_index` against the leader's
    /// `raft_index`); how long that took.
    pub async fn wait_caught_up(&mut self, i: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        let target = loop {
            let leader = self.wait_for_leader(timeout).await;
            if let Ok(status) = self.status(leader).await {
                break status.raft_index();
            }
            if Instant::now() > deadline {
                panic!("could not read the leader's raft index within {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        };
        loop {
            let last = match self.status(i).await {
                Ok(status) if status.leader() != 0 && status.raft_applied_index() >= target => {
                    return start.elapsed();
                }
                Ok(status) => format!(
                    "leader {:x}, applied {} of {target}",
                    status.leader(),
                    status.raft_applied_index()
                ),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "member {} did not catch up within {timeout:?}; last: {last}",
                    self.name(i)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every member in `members` answers HashKV at the leader's current revision with
    /// the same hash; returns (revision, hash). The revision is re-read while members disagree,
    /// so writes still in flight are tolerated.
    pub async fn wait_converged(&mut self, members: &[usize], timeout: Duration) -> (i64, u32) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let revision = self.leader_revision().await;
            let futures = members.iter().map(|&i| self.hash_kv(i, revision));
            let results = futures::future::join_all(futures).await;
            let mut hashes = Vec::new();
            for (&i, result) in members.iter().zip(&results) {
                match result {
                    Ok(h) => hashes.push((i, h.hash)),
                    Err(e) => last = format!("{} at revision {revision}: {e}", self.name(i)),
                }
            }
            if hashes.len() == members.len() {
                let first = hashes[0].1;
                if hashes.iter().all(|&(_, h)| h == first) {
                    return (revision, first);
                }
                last = format!(
                    "hashes at revision {revision} differ: {}",
                    hashes
                        .iter()
                        .map(|&(i, h)| format!("{}={h:08x}", self.name(i)))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            if Instant::now() > deadline {
                panic!("members did not converge within {timeout:?}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The member list, asked of a running member (any that answers).
    pub async fn member_list(&mut self) -> Vec<MemberInfo> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut last = String::new();
        loop {
            for i in self.alive() {
                let mut client = self.client(i).await;
                match bounded(client.member_list()).await {
                    Ok(response) => return response.members().iter().map(member_info).collect(),
                    Err(e) => last = format!("{}: {e}", self.name(i)),
                }
            }
            if Instant::now() > deadline {
                panic!("no member answered MemberList within {REQUEST_TIMEOUT:?}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// MemberAdd through a running member, retried while refused as premature. Returns the new
    /// member's ID and the member list from the answer.
    pub async fn member_add(&mut self, peer_url: &str, is_learner: bool) -> (u64, Vec<MemberInfo>) {
        let urls = vec![peer_url.to_string()];
        let response = self
            .membership_call("MemberAdd", |mut client| {
                let urls = urls.clone();
                async move {
                    let options = is_learner.then(|| MemberAddOptions::new().with_is_learner());
                    client.member_add(urls, options).await
                }
            })
            .await;
        let id = response
            .member()
            .expect("MemberAdd answers the member")
            .id();
        (id, response.member_list().iter().map(member_info).collect())
    }

    /// Adds a member to the membership (MemberAdd) and prepares its flags
    /// (`--initial-cluster-state existing`, the full `--initial-cluster`), without starting it;
    /// start it with [`Cluster::start_member`]. Returns its index.
    pub async fn add_member(&mut self, add: AddMember) -> usize {
        let i = match add.reuse {
            Some(i) => {
                assert!(
                    self.members[i].removed,
                    "only a removed member can be re-added"
                );
                assert!(!self.is_running(i), "stop a member before re-adding it");
                assert!(
                    !self.members[i].data_dir().exists(),
                    "wipe a removed member before re-adding it"
                );
                i
            }
            None => {
                let i = self.members.len();
                let name = format!("n{}", i + 1);
                let dir = self.dir().join(&name);
                std::fs::create_dir_all(&dir).expect("creating a member directory");
                self.members.push(Member {
                    name,
                    client_port: allocate_port(),
                    peer_port: allocate_port(),
                    dir,
                    initial_cluster: String::new(),
                    initial_state: "existing",
                    child: None,
                    id: None,
                    removed: true, // not a member until MemberAdd succeeded
                });
                i
            }
        };
        let peer_url = self.peer_url(i);
        let (id, list) = self.member_add(&peer_url, add.learner).await;
        // As etcdctl prints it for the new member: every member's name (the new one's is still
        // empty in the list) with each of its peer URLs.
        let mut parts = Vec::new();
        for m in &list {
            let name = if m.id == id {
                self.members[i].name.clone()
            } else {
                m.name.clone()
            };
            assert!(
                !name.is_empty(),
                "member {:x} has not started yet; cannot build --initial-cluster",
                m.id
            );
            for url in &m.peer_urls {
                parts.push(format!("{name}={url}"));
            }
        }
        let m = &mut self.members[i];
        m.initial_cluster = parts.join(",");
        m.initial_state = "existing";
        m.id = Some(id);
        m.removed = false;
        i
    }

    /// MemberPromote of learner `i`, retried while the server refuses (learner not in sync yet).
    pub async fn member_promote(&mut self, i: usize) {
        let id = self.members[i].id.expect("the member's ID is known");
        self.membership_call("MemberPromote", |mut client| async move {
            client.member_promote(id).await
        })
        .await;
    }

    /// MemberRemove of member `i` (asked of another running member). Does not stop the process.
    pub async fn member_remove(&mut self, i: usize) {
        let id = self.members[i].id.expect("the member's ID is known");
        self.membership_call_excluding("MemberRemove", Some(i), |mut client| async move {
            client.member_remove(id).await
        })
        .await;
        self.members[i].removed = true;
    }

    async fn membership_call<T, F, Fut>(&mut self, what: &str, call: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        self.membership_call_excluding(what, None, call).await
    }

    /// Sends a membership change through running members (but not `exclude`), retrying only
    /// refusals that say the change was not made (quorum safety checks, learner not in sync,
    /// no connection): a retried change that had been applied would fail confusingly.
    async fn membership_call_excluding<T, F, Fut>(
        &mut self,
        what: &str,
        exclude: Option<usize>,
        mut call: F,
    ) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + MEMBERSHIP_TIMEOUT;
        let mut attempts = 0;
        let mut last = String::from("no running voter to ask");
        loop {
            for i in self.alive() {
                if Some(i) == exclude {
                    continue;
                }
                // A learner refuses membership changes; ask a voter.
                if let Ok(status) = self.status(i).await {
                    if status.is_learner() {
                        continue;
                    }
                }
                attempts += 1;
                let client = self.client(i).await;
                match bounded(call(client)).await {
                    Ok(v) => {
                        if attempts > 1 {
                            eprintln!("testkit: {what} succeeded after {attempts} attempts");
                        }
                        return v;
                    }
                    Err(e) if is_retryable_membership_refusal(&e) => {
                        last = format!("{}: {e}", self.name(i));
                    }
                    Err(e) => panic!("{what} through {} failed: {e}", self.name(i)),
                }
            }
            if Instant::now() > deadline {
                panic!("{what} still refused after {MEMBERSHIP_TIMEOUT:?}; last: {last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Spawns member `i` with its flags; output to its log.
    fn spawn(&mut self, i: usize) {
        let (program, leading) = &self.program;
        let m = &self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.log_path())
            .expect("opening a member log");
        let mut header = log.try_clone().expect("cloning the log handle");
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(
            header,
            "{RUN_HEADER} {} ({:?}, --initial-cluster-state {}) at {}.{:06} UTC-seconds \
             (time of day {:02}:{:02}:{:02}.{:06}) ====",
            m.name,
            self.target,
            m.initial_state,
            since_epoch.as_secs(),
            since_epoch.subsec_micros(),
            since_epoch.as_secs() / 3600 % 24,
            since_epoch.as_secs() / 60 % 60,
            since_epoch.as_secs() % 60,
            since_epoch.subsec_micros()
        );
        let client_url = m.client_url();
        let peer_url = m.peer_url();
        let mut command = Command::new(program);
        command
            .args(leading)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(m.data_dir())
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &m.initial_cluster])
            .args(["--initial-cluster-state", m.initial_state])
            .args(["--initial-cluster-token", &self.token]);
        if let Some(count) = self.options.snapshot_count {
            command.args(["--snapshot-count", &count.to_string()]);
        }
        command.args(&self.options.extra_args);
        // Both servers read ETCD_* variables; the test's environment must not leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                command.env_remove(key);
            }
        }
        command
            .env(
                "RUST_LOG",
                std::env::var("MAINSTAY_TEST_LOG").unwrap_or("info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().expect("cloning the log handle"),
            ))
            .stderr(Stdio::from(log));
        let child = spawn_child(command)
            .unwrap_or_else(|e| panic!("spawning {} ({}): {e}", m.name, program.display()));
        self.members[i].child = Some(child);
    }

    /// Waits until member `i` answers Status, and records its ID.
    async fn wait_member_ready(&mut self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.members[i].child.as_mut() {
                if let Some(status) = child.try_wait().expect("polling a member process") {
                    self.members[i].child = None;
                    panic!(
                        "member {} exited during startup ({status}); log tail:\n{}",
                        self.members[i].name,
                        self.log_tail(i, LOG_TAIL_LINES)
                    );
                }
            } else {
                panic!("member {} is not running", self.members[i].name);
            }
            let last = match self.status(i).await {
                Ok(status) => {
                    let id = status.header().map(|h| h.member_id()).unwrap_or(0);
                    if let Some(known) = self.members[i].id {
                        assert_eq!(
                            known, id,
                            "member {} answers with another member ID",
                            self.members[i].name
                        );
                    }
                    self.members[i].id = Some(id);
                    return;
                }
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "member {} did not answer within {timeout:?} (last error: {last}); log tail:\n{}",
                    self.members[i].name,
                    self.log_tail(i, LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Member `i`'s log since its latest start.
    pub fn last_run_log(&self, i: usize) -> String {
        let log = self.log(i);
        match log.rfind(RUN_HEADER) {
            Some(at) => log[at..].to_string(),
            None => log,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for (i, m) in self.members.iter().enumerate() {
                eprintln!(
                    "---- {} log ({}), last {LOG_TAIL_LINES} lines ----\n{}",
                    m.name,
                    m.log_path().display(),
                    self.log_tail(i, LOG_TAIL_LINES)
                );
            }
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("testkit: kept the cluster directory {}", kept.display());
            }
        }
    }
}

fn member_info(m: &etcd_client::Member) -> MemberInfo {
    MemberInfo {
        id: m.id(),
        name: m.name().to_string(),
        peer_urls: m.peer_urls().to_vec(),
        client_urls: m.client_urls().to_vec(),
        is_learner: m.is_learner(),
    }
}

/// Refusals after which the change was certainly not made and may succeed later.
fn is_retryable_membership_refusal(e: &etcd_client::Error) -> bool {
    if certainly_not_sent(e) {
        return true;
    }
    let text = e.to_string();
    [
        "unhealthy cluster",
        "not enough started members",
        "in sync with leader",
        "no leader",
    ]
    .iter()
    .any(|m| text.contains(m))
}

fn short_options() -> ConnectOptions {
    client_options(Some(Duration::from_secs(2)))
}

/// Awaits a client call, turning a hang past [`REQUEST_TIMEOUT`] into an error.
async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, etcd_client::Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), fut).await {
        Ok(result) => result,
        Err(_) => Err(etcd_client::Error::IoError(io::Error::new(
            io::ErrorKind::TimedOut,
            "testkit: request timed out",
        ))),
    }
}

/// A port that is free now and not handed out before by this process.
fn allocate_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = rand::random_range(PORT_RANGE);
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free loopback port in {PORT_RANGE:?} after 1000 attempts");
}

/// Spawns `command` from one long-lived thread, with the child set to be SIGKILLed when that
/// thread (which lives as long as the test process) dies: an aborted test run leaves no servers
/// behind. (`PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so forking from a tokio
/// worker could kill servers early.)
fn spawn_child(command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
                    unsafe {
                        let parent = libc::getpid();
                        command.pre_exec(move || {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(io::Error::last_os_error());
                            }
                            // The parent may have died between fork and prctl.
                            if libc::getppid() != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply_tx))
        .expect("the spawner thread is alive");
    reply_rx.recv().expect("the spawner thread answers")
}
