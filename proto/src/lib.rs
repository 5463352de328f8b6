//! etcd v3 API wire types and gRPC stubs for Mainstay.
//!
//! This crate owns the etcd v3 protobuf definitions (`proto/etcd/**.proto`, written for Mainstay
//! to be wire-compatible with etcd 3.4/3.5) and the code generated from them: prost message types
//! plus tonic client and server stubs for the `KV`, `Watch`, `Lease`, `Cluster`, `Maintenance`
//! and `Auth` services, and for etcd's `Lock` and `Election` services.
//!
//! Rules:
//! - It must not depend on the store, Raft or any server logic: it is only the wire contract.
//! - Generated types stay at the edges. The server crate converts them to and from the store's
//!   domain types; nothing deeper than the gRPC layer should use them.
//!
//! Modules mirror the protobuf packages (`mvccpb`, `authpb`, `etcdserverpb`, `v3lockpb`,
//! `v3electionpb`) and all sit at the crate root, because the generated code refers to other
//! packages as `super::mvccpb::KeyValue` and the like.

/// Package `mvccpb`: `KeyValue` and `Event`.
#[allow(clippy::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Package `authpb`: users, roles and permissions.
#[allow(clippy::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// Package `etcdserverpb`: the v3 client API services (`KV`, `Watch`, `Lease`, `Cluster`,
/// `Maintenance`, `Auth`) and their messages.
#[allow(clippy::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Package `v3lockpb`: the `Lock` service.
#[allow(clippy::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// Package `v3electionpb`: the `Election` service.
#[allow(clippy::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// Package `mainstaypb`: member-to-member RPCs (Raft traffic and requests forwarded to the
/// leader), served on the peer URLs. Not part of etcd's API.
#[allow(clippy::all)]
pub mod mainstaypb {
    tonic::include_proto!("mainstaypb");
}

#[cfg(test)]
mod tests {
    use super::etcdserverpb::{
        compare, watch_request, Compare, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest,
    };
    use prost::Message;

    #[test]
    fn put_request_round_trips() {
        let req = PutRequest {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            lease: 42,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: true,
        };
        let bytes = req.encode_to_vec();
        assert_eq!(PutRequest::decode(bytes.as_slice()).unwrap(), req);
    }

    #[test]
    fn watch_create_request_round_trips() {
        let req = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                    start_revision: 7,
                    progress_notify: true,
                    filters: vec![
                        super::etcdserverpb::watch_create_request::FilterType::Nodelete as i32,
                    ],
                    prev_kv: true,
                    watch_id: 3,
                    fragment: true,
                },
            )),
        };
        let bytes = req.encode_to_vec();
        let decoded = WatchRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, req);
        match decoded.request_union {
            Some(watch_request::RequestUnion::CreateRequest(create)) => {
                assert_eq!(create.start_revision, 7);
                assert_eq!(create.watch_id, 3);
            }
            other => panic!("expected a create request, got {other:?}"),
        }
    }

    /// Encodings worked out by hand from the field numbers: a tag byte is
    /// `(field_number << 3) | wire_type`, wire type 0 = varint, 2 = length-delimited.
    #[test]
    fn range_request_has_etcd_wire_encoding() {
        let req = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 5,
            ..Default::default()
        };
        // key = 1 (bytes) -> 0x0a; range_end = 2 (bytes) -> 0x12; limit = 3 (varint) -> 0x18.
        assert_eq!(
            req.encode_to_vec(),
            [0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x18, 0x05]
        );
    }

    #[test]
    fn oneofs_and_high_field_numbers_have_etcd_wire_encoding() {
        // WatchRequest.create_request = 1 (message) -> 0x0a, wrapping key = 1 -> 0x0a 0x01 'k'.
        let watch = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: b"k".to_vec(),
                    ..Default::default()
                },
            )),
        };
        assert_eq!(watch.encode_to_vec(), [0x0a, 0x03, 0x0a, 0x01, b'k']);

        // Compare: result = 1 (GREATER = 1) -> 0x08 0x01; target = 2 (VALUE = 3) -> 0x10 0x03;
        // key = 3 -> 0x1a; target_union.value = 7 (bytes) -> 0x3a;
        // range_end = 64 (bytes) -> tag 64 << 3 | 2 = 514 = varint 0x82 0x04.
        let cmp = Compare {
            result: compare::CompareResult::Greater as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"k".to_vec(),
            target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
            range_end: b"z".to_vec(),
        };
        assert_eq!(
            cmp.encode_to_vec(),
            [0x08, 0x01, 0x10, 0x03, 0x1a, 0x01, b'k', 0x3a, 0x01, b'v', 0x82, 0x04, 0x01, b'z']
        );
    }

    #[test]
    fn grpc_service_names_match_etcd() {
        use super::{etcdserverpb, v3electionpb, v3lockpb};
        assert_eq!(etcdserverpb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(
            etcdserverpb::watch_server::SERVICE_NAME,
            "etcdserverpb.Watch"
        );
        assert_eq!(
            etcdserverpb::lease_server::SERVICE_NAME,
            "etcdserverpb.Lease"
        );
        assert_eq!(
            etcdserverpb::cluster_server::SERVICE_NAME,
            "etcdserverpb.Cluster"
        );
        assert_eq!(
            etcdserverpb::maintenance_server::SERVICE_NAME,
            "etcdserverpb.Maintenance"
        );
        assert_eq!(etcdserverpb::auth_server::SERVICE_NAME, "etcdserverpb.Auth");
        assert_eq!(v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
        assert_eq!(
            v3electionpb::election_server::SERVICE_NAME,
            "v3electionpb.Election"
        );
    }
}
