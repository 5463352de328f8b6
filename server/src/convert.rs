//! Conversions between etcd's protobuf messages and the store's domain types. The only place where
//! both meet: nothing below the gRPC services sees a generated type.

use mainstay_proto::etcdserverpb as pb;
use mainstay_proto::mvccpb;
use mainstay_store as st;

use crate::error::{Result, ServerError};

fn invalid(what: &str, v: i32) -> ServerError {
    ServerError::InvalidArgument(format!("etcdserver: unknown {what} {v}"))
}

pub fn kv_to_pb(kv: st::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn event_to_pb(ev: st::Event) -> mvccpb::Event {
    let r#type = match ev.kind {
        st::EventKind::Put => mvccpb::event::EventType::Put,
        st::EventKind::Delete => mvccpb::event::EventType::Delete,
    } as i32;
    mvccpb::Event {
        r#type,
        kv: Some(kv_to_pb(ev.kv)),
        prev_kv: ev.prev_kv.map(kv_to_pb),
    }
}

pub fn range_from_pb(r: pb::RangeRequest) -> Result<st::RangeRequest> {
    use pb::range_request::{SortOrder as O, SortTarget as T};
    let sort_order =
        match O::try_from(r.sort_order).map_err(|_| invalid("sort order", r.sort_order))? {
            O::None => st::SortOrder::None,
            O::Ascend => st::SortOrder::Ascend,
            O::Descend => st::SortOrder::Descend,
        };
    let sort_target =
        match T::try_from(r.sort_target).map_err(|_| invalid("sort target", r.sort_target))? {
            T::Key => st::SortTarget::Key,
            T::Version => st::SortTarget::Version,
            T::Create => st::SortTarget::Create,
            T::Mod => st::SortTarget::Mod,
            T::Value => st::SortTarget::Value,
        };
    Ok(st::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

pub fn put_from_pb(r: pb::PutRequest) -> st::PutRequest {
    st::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

pub fn delete_from_pb(r: pb::DeleteRangeRequest) -> st::DeleteRangeRequest {
    st::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

fn compare_from_pb(c: pb::Compare) -> Result<st::Compare> {
    use pb::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match R::try_from(c.result).map_err(|_| invalid("compare result", c.result))? {
        R::Equal => st::CompareResult::Equal,
        R::Greater => st::CompareResult::Greater,
        R::Less => st::CompareResult::Less,
        R::NotEqual => st::CompareResult::NotEqual,
    };
    // etcd reads the operand of the target's own kind and uses its zero value otherwise.
    let target = match T::try_from(c.target).map_err(|_| invalid("compare target", c.target))? {
        T::Version => st::CompareTarget::Version(match c.target_union {
            Some(U::Version(v)) => v,
            _ => 0,
        }),
        T::Create => st::CompareTarget::CreateRevision(match c.target_union {
            Some(U::CreateRevision(v)) => v,
            _ => 0,
        }),
        T::Mod => st::CompareTarget::ModRevision(match c.target_union {
            Some(U::ModRevision(v)) => v,
            _ => 0,
        }),
        T::Value => st::CompareTarget::Value(match c.target_union {
            Some(U::Value(v)) => v,
            _ => Vec::new(),
        }),
        T::Lease => st::CompareTarget::Lease(match c.target_union {
            Some(U::Lease(v)) => v,
            _ => 0,
        }),
    };
    Ok(st::Compare {
        key: c.key,
        range_end: c.range_end,
        result,
        target,
    })
}

fn op_from_pb(op: pb::RequestOp) -> Result<st::RequestOp> {
    use pb::request_op::Request;
    Ok(match op.request {
        Some(Request::RequestRange(r)) => st::RequestOp::Range(range_from_pb(r)?),
        Some(Request::RequestPut(r)) => st::RequestOp::Put(put_from_pb(r)),
        Some(Request::RequestDeleteRange(r)) => st::RequestOp::DeleteRange(delete_from_pb(r)),
        Some(Request::RequestTxn(r)) => st::RequestOp::Txn(txn_from_pb(r)?),
        None => {
            return Err(ServerError::InvalidArgument(
                "etcdserver: request op without a request".into(),
            ))
        }
    })
}

pub fn txn_from_pb(r: pb::TxnRequest) -> Result<st::TxnRequest> {
    Ok(st::TxnRequest {
        compare: r
            .compare
            .into_iter()
            .map(compare_from_pb)
            .collect::<Result<_>>()?,
        success: r
            .success
            .into_iter()
            .map(op_from_pb)
            .collect::<Result<_>>()?,
        failure: r
            .failure
            .into_iter()
            .map(op_from_pb)
            .collect::<Result<_>>()?,
    })
}

/// A header carrying only a revision, as etcd gives the responses inside a txn.
fn rev_header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

pub fn range_to_pb(r: st::RangeResponse, header: Option<pb::ResponseHeader>) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header.or_else(|| rev_header(r.revision)),
        kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_to_pb(r: st::PutResponse, header: Option<pb::ResponseHeader>) -> pb::PutResponse {
    pb::PutResponse {
        header: header.or_else(|| rev_header(r.revision)),
        prev_kv: r.prev_kv.map(kv_to_pb),
    }
}

pub fn delete_to_pb(
    r: st::DeleteRangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header.or_else(|| rev_header(r.revision)),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv_to_pb).collect(),
    }
}

pub fn txn_to_pb(r: st::TxnResponse, header: Option<pb::ResponseHeader>) -> pb::TxnResponse {
    use pb::response_op::Response;
    let responses = r
        .responses
        .into_iter()
        .map(|op| pb::ResponseOp {
            response: Some(match op {
                st::ResponseOp::Range(r) => Response::ResponseRange(range_to_pb(r, None)),
                st::ResponseOp::Put(r) => Response::ResponsePut(put_to_pb(r, None)),
                st::ResponseOp::DeleteRange(r) => {
                    Response::ResponseDeleteRange(delete_to_pb(r, None))
                }
                // etcd leaves a nested txn's header unset.
                st::ResponseOp::Txn(t) => Response::ResponseTxn(txn_to_pb(t, None)),
            }),
        })
        .collect();
    let header = match header {
        Some(h) => Some(h),
        None if r.revision != 0 => rev_header(r.revision),
        None => None,
    };
    pb::TxnResponse {
        header,
        succeeded: r.succeeded,
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_operand_of_another_kind_is_the_targets_zero_value() {
        let c = pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Version as i32,
            key: b"k".to_vec(),
            target_union: Some(pb::compare::TargetUnion::Value(b"x".to_vec())),
            range_end: vec![],
        };
        let c = compare_from_pb(c).unwrap();
        assert_eq!(c.target, st::CompareTarget::Version(0));
    }

    #[test]
    fn unknown_enum_values_are_refused_not_guessed() {
        let r = pb::RangeRequest {
            key: b"k".to_vec(),
            sort_order: 7,
            ..Default::default()
        };
        assert!(matches!(
            range_from_pb(r),
            Err(ServerError::InvalidArgument(_))
        ));
    }

    #[test]
    fn nested_txn_has_no_header_and_ops_carry_revision_only() {
        let r = st::TxnResponse {
            revision: 9,
            succeeded: true,
            responses: vec![
                st::ResponseOp::Txn(st::TxnResponse::default()),
                st::ResponseOp::Put(st::PutResponse {
                    revision: 9,
                    prev_kv: None,
                }),
            ],
        };
        let p = txn_to_pb(r, None);
        assert_eq!(p.header.unwrap().revision, 9);
        match &p.responses[0].response {
            Some(pb::response_op::Response::ResponseTxn(t)) => assert!(t.header.is_none()),
            other => panic!("unexpected {other:?}"),
        }
        match &p.responses[1].response {
            Some(pb::response_op::Response::ResponsePut(r)) => {
                assert_eq!(r.header.as_ref().unwrap().revision, 9);
                assert_eq!(r.header.as_ref().unwrap().member_id, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
