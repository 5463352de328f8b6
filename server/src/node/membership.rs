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
                find(id).ok_or(ServerError::MemberNotFound)?;
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
