//! Membership as this member sees it, and changes to it: listed from the applied membership,
//! made by the leader through Raft (etcd's `MemberAdd`, `MemberPromote`, `MemberRemove`,
//! `MemberUpdate`, and a started member's publish), forwarded there from any other member.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mainstay_raft::Member;
use openraft::error::{ClientWriteError, RaftError as ORaftError};
use openraft::ChangeMembers;

use super::{member_id_for, Node};
use crate::error::{Result, ServerError};
use crate::peer::wire::{ClusterOp, MemberInfo};
use crate::urls::parse_listen_url;

impl Node {
    /// The members as this member's applied membership lists them.
    pub fn members(&self) -> Vec<MemberInfo> {
        // Called per forwarded request (to find the leader's URL): read in place, no clone.
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, m)| MemberInfo {
                id: *id,
                member: m.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// Runs a membership change on the leader (forwarding it there when needed).
    pub async fn change_cluster(&self, op: ClusterOp) -> Result<Option<MemberInfo>> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let leader = self.wait_for_leader(deadline).await?;
            let result = if leader == self.member_id {
                self.change_cluster_local(op.clone()).await
            } else {
                match self.peer_url(leader) {
                    Some(url) => self.peers.change_cluster(&url, &op, deadline).await,
                    None => Ok(None),
                }
            };
            match result {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ServerError::Timeout);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The first peer URL of member `id`, as this member's membership lists it (where requests
    /// for the leader are forwarded).
    pub(super) fn peer_url(&self, id: u64) -> Option<String> {
        self.members()
            .into_iter()
            .find(|m| m.id == id)
            .and_then(|m| m.member.peer_urls.first().cloned())
    }

    /// Makes a membership change on this member, which must be the leader (`Ok(None)` otherwise).
    pub(crate) async fn change_cluster_local(
        &self,
        op: ClusterOp,
    ) -> Result<Option<Option<MemberInfo>>> {
        if !self.is_leader() {
            return Ok(None);
        }
        let members = self.members();
        let find = |id: u64| members.iter().find(|m| m.id == id).cloned();
        let (change, info): (ChangeMembers<u64, Member>, Option<MemberInfo>) = match op {
            ClusterOp::Add {
                peer_urls,
                is_learner,
            } => {
                check_peer_urls(&members, &peer_urls, None)?;
                if is_learner && members.iter().filter(|m| m.is_learner).count() >= 1 {
                    return Err(ServerError::TooManyLearners);
                }
                if !is_learner && !ready_to_add_voter(&members) {
                    return Err(ServerError::NotEnoughStartedMembers);
                }
                if !voters_connected(&members, |peer| self.connected_fully(peer)) {
                    return Err(ServerError::Unhealthy);
                }
                // As etcd, a time-dependent ID: a member removed and added again is a new member.
                let salt = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos().to_string())
                    .unwrap_or_default();
                let id = member_id_for(&peer_urls, &self.config.cluster_token, &salt);
                let member = Member {
                    name: String::new(),
                    peer_urls,
                    client_urls: Vec::new(),
                };
                match self.raft.add_learner(id, member.clone(), false).await {
                    Ok(_) => {}
                    Err(e) => return raft_change_error(e),
                }
                let info = MemberInfo {
                    id,
                    member,
                    is_learner,
                };
                if is_learner {
                    return Ok(Some(Some(info)));
                }
                (ChangeMembers::AddVoterIds(BTreeSet::from([id])), Some(info))
            }
            ClusterOp::Promote { id } => {
                let m = find(id).ok_or(ServerError::MemberNotFound)?;
                if !m.is_learner {
                    return Err(ServerError::MemberNotLearner);
                }
                if !ready_to_promote(&members) {
                    return Err(ServerError::NotEnoughStartedMembers);
                }
                let metrics = self.raft.metrics().borrow().clone();
                let leader_last = metrics.last_log_index.unwrap_or(0);
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index)
                    .unwrap_or(0);
                // etcd's readiness: the learner has at least 90% of the leader's log.
                if (matched as f64) < 0.9 * leader_last as f64 {
                    return Err(ServerError::LearnerNotReady);
                }
                (
                    ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                    Some(MemberInfo {
                        is_learner: false,
                        ..m
                    }),
                )
            }
            ClusterOp::Remove { id } => {
                let m = find(id).ok_or(ServerError::MemberNotFound)?;
                if m.is_learner {
                    (ChangeMembers::RemoveNodes(BTreeSet::from([id])), None)
                } else {
                    if !ready_to_remove_voter(&members, id) {
                        return Err(ServerError::NotEnoughStartedMembers);
                    }
                    let answering = |peer: u64| {
                        peer == self.member_id || self.peer_contacts.active_since(peer).is_some()
                    };
                    let keeps_quorum =
                        removal_keeps_active_quorum(&members, id, answering, |peer| {
                            self.connected_fully(peer)
                        });
                    if !keeps_quorum {
                        return Err(ServerError::Unhealthy);
                    }
                    (ChangeMembers::RemoveVoters(BTreeSet::from([id])), None)
                }
            }
            ClusterOp::Update { id, peer_urls } => {
                let m = find(id).ok_or(ServerError::MemberNotFound)?;
                check_peer_urls(&members, &peer_urls, Some(id))?;
                let member = Member {
                    peer_urls,
                    ..m.member
                };
                (
                    ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                    None,
                )
            }
            ClusterOp::Publish { id, member } => {
                let m = find(id).ok_or(ServerError::MemberNotFound)?;
                // A publish names the member and its client URLs; its peer URLs change only
                // through MemberUpdate (etcd's publish carries no peer URLs either).
                let member = Member {
                    peer_urls: m.member.peer_urls,
                    ..member
                };
                (
                    ChangeMembers::SetNodes(BTreeMap::from([(id, member)])),
                    None,
                )
            }
        };
        // `retain = false`: a voter removed is removed from the cluster, not kept as a learner.
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(Some(info)),
            Err(e) => raft_change_error(e),
        }
    }
}

/// A majority of `n` voters.
fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Whether a member has started: it has published its name (etcd's `IsStarted`).
fn started(m: &MemberInfo) -> bool {
    !m.member.name.is_empty()
}

/// etcd's strict reconfiguration check (on by default) for a new voter: the started voters must
/// be a quorum of the voters with the new one. A member added by mistake (a mistyped URL) never
/// starts; this keeps a run of such adds from leaving a configuration that cannot commit.
fn ready_to_add_voter(members: &[MemberInfo]) -> bool {
    let voters: Vec<&MemberInfo> = members.iter().filter(|m| !m.is_learner).collect();
    let nstarted = voters.iter().filter(|m| started(m)).count();
    let nmembers = voters.len() + 1;
    // etcd's exception: a second member may join a one-member cluster (restoring from backup).
    if nstarted == 1 && nmembers == 2 {
        return true;
    }
    nstarted >= quorum(nmembers)
}

/// As [`ready_to_add_voter`] for a learner's promotion; the learner counts as started.
fn ready_to_promote(members: &[MemberInfo]) -> bool {
    let voters: Vec<&MemberInfo> = members.iter().filter(|m| !m.is_learner).collect();
    let nstarted = voters.iter().filter(|m| started(m)).count() + 1;
    let nmembers = voters.len() + 1;
    nstarted >= quorum(nmembers)
}

/// The voters left after removing `id` must have a quorum of started members.
fn ready_to_remove_voter(members: &[MemberInfo], id: u64) -> bool {
    let rest: Vec<&MemberInfo> = members
        .iter()
        .filter(|m| !m.is_learner && m.id != id)
        .collect();
    let nstarted = rest.iter().filter(|m| started(m)).count();
    nstarted >= quorum(rest.len())
}

/// etcd's guard on removing a voter while others are down: a member not answering at all is safe
/// to remove; otherwise the voters but it that have been connected for the health interval must
/// be a quorum of the voters now.
fn removal_keeps_active_quorum(
    members: &[MemberInfo],
    id: u64,
    answering: impl Fn(u64) -> bool,
    connected: impl Fn(u64) -> bool,
) -> bool {
    if !answering(id) {
        return true;
    }
    let voters: Vec<&MemberInfo> = members.iter().filter(|m| !m.is_learner).collect();
    let nactive = voters.iter().filter(|m| connected(m.id)).count();
    nactive.saturating_sub(1) > voters.len().saturating_sub(1) / 2
}

impl Node {
    /// Whether member `peer` has answered this one without a break for [`HEALTH_INTERVAL`]
    /// (etcd's "connected since"); this member itself always is.
    fn connected_fully(&self, peer: u64) -> bool {
        if peer == self.member_id {
            return true;
        }
        self.peer_contacts
            .active_since(peer)
            .is_some_and(|since| since.elapsed() >= HEALTH_INTERVAL)
    }
}

/// etcd's `HealthInterval`: a membership change needs the members concerned connected this long.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// etcd's check before any add: every voter is connected (a change made while one is cut off
/// would leave less margin than the operator counted on).
fn voters_connected(members: &[MemberInfo], connected: impl Fn(u64) -> bool) -> bool {
    members
        .iter()
        .filter(|m| !m.is_learner)
        .all(|m| connected(m.id))
}

/// etcd's checks of a member's new peer URLs: well-formed, and used by no other member.
fn check_peer_urls(
    members: &[MemberInfo],
    peer_urls: &[String],
    except: Option<u64>,
) -> Result<()> {
    if peer_urls.is_empty() || peer_urls.iter().any(|u| parse_listen_url(u).is_err()) {
        return Err(ServerError::MemberBadUrls);
    }
    let taken = members
        .iter()
        .any(|m| Some(m.id) != except && m.member.peer_urls.iter().any(|u| peer_urls.contains(u)));
    if taken {
        return Err(ServerError::PeerUrlExists);
    }
    Ok(())
}

fn raft_change_error<T>(e: ORaftError<u64, ClientWriteError<u64, Member>>) -> Result<Option<T>> {
    match crate::error::client_write_error(e) {
        None => Ok(None),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, is_learner: bool) -> MemberInfo {
        MemberInfo {
            id,
            member: Member {
                name: name.to_string(),
                peer_urls: vec![format!("http://127.0.0.1:{id}")],
                client_urls: Vec::new(),
            },
            is_learner,
        }
    }

    /// Three started members, then adds that never start: etcd 3.4 takes two and refuses the
    /// third (six voters, three started, quorum four).
    #[test]
    fn adds_that_never_start_are_refused_once_they_would_break_quorum() {
        let mut members: Vec<MemberInfo> = (1..=3).map(|i| member(i, "m", false)).collect();
        assert!(ready_to_add_voter(&members));
        members.push(member(4, "", false));
        assert!(ready_to_add_voter(&members));
        members.push(member(5, "", false));
        assert!(!ready_to_add_voter(&members));
        // A learner does not count, and its promotion counts it as started.
        let learner = vec![member(1, "m", false), member(2, "", true)];
        assert!(ready_to_promote(&learner));
        let lagging = vec![
            member(1, "m", false),
            member(2, "", false),
            member(3, "", false),
            member(4, "", true),
        ];
        assert!(!ready_to_promote(&lagging));
    }

    #[test]
    fn a_second_member_may_join_a_single_member() {
        assert!(ready_to_add_voter(&[member(1, "m", false)]));
        assert!(!ready_to_add_voter(&[member(1, "", false)]));
    }

    #[test]
    fn removals_keep_a_started_and_an_active_quorum() {
        let members = vec![
            member(1, "m", false),
            member(2, "m", false),
            member(3, "", false),
        ];
        // Removing a started member leaves {2 started, 3 not}: quorum 2, started 1.
        assert!(!ready_to_remove_voter(&members, 1));
        // Removing the one that never started is fine.
        assert!(ready_to_remove_voter(&members, 3));

        let three: Vec<MemberInfo> = (1..=3).map(|i| member(i, "m", false)).collect();
        // Member 3 is down: removing it is safe; removing 2 would leave 1 of 3 active.
        let active = |id: u64| id != 3;
        assert!(removal_keeps_active_quorum(&three, 3, active, active));
        assert!(!removal_keeps_active_quorum(&three, 2, active, active));
        assert!(removal_keeps_active_quorum(&three, 2, |_| true, |_| true));
        // Member 3 answers but only just reconnected: it does not count yet.
        assert!(!removal_keeps_active_quorum(&three, 2, |_| true, active));
    }

    /// etcd 3.4 with three started members and adds of members that never start: the first is
    /// taken, the next refused as "unhealthy cluster" (the first one is a voter that is not
    /// connected).
    #[test]
    fn adds_need_every_voter_connected() {
        let mut members: Vec<MemberInfo> = (1..=3).map(|i| member(i, "m", false)).collect();
        let connected = |id: u64| id <= 3;
        assert!(voters_connected(&members, connected));
        members.push(member(4, "", false));
        assert!(!voters_connected(&members, connected));
        // A learner that is not connected does not stop an add.
        members.pop();
        members.push(member(4, "", true));
        assert!(voters_connected(&members, connected));
    }
}
