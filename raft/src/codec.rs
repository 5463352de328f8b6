//! bincode encoding of everything the Raft layer writes to disk or sends to a peer.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{RaftError, Result};

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serialize(value).map_err(|e| RaftError::Codec(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::deserialize(bytes).map_err(|e| RaftError::Codec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, LogId, Request};
    use mainstay_store::{Command, PutRequest};
    use openraft::{CommittedLeaderId, EntryPayload};

    #[test]
    fn an_entry_round_trips() {
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 7), 42),
            payload: EntryPayload::Normal(Request {
                commands: vec![
                    Command::Put(PutRequest {
                        key: b"k".to_vec(),
                        value: vec![0, 255, 7],
                        ..Default::default()
                    }),
                    Command::Compact { revision: 1 },
                ],
            }),
        };
        let bytes = encode(&entry).unwrap();
        let back: Entry = decode(&bytes).unwrap();
        assert_eq!(back, entry);
        assert!(decode::<Entry>(&bytes[..bytes.len() - 1]).is_err());
    }

    /// The bincode form of a command that is `levels` txns nested in one another: each level
    /// a txn whose success branch holds only the next.
    fn nested_txn_command(levels: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(2u32.to_le_bytes()); // Command::Txn
        for _ in 1..levels {
            b.extend(0u64.to_le_bytes()); // compare: []
            b.extend(1u64.to_le_bytes()); // success: [one op]
            b.extend(3u32.to_le_bytes()); // RequestOp::Txn
        }
        b.extend([0u64, 0, 0].iter().flat_map(|n| n.to_le_bytes())); // the innermost: empty
        for _ in 1..levels {
            b.extend(0u64.to_le_bytes()); // failure: []
        }
        b
    }

    #[test]
    fn deeply_nested_txns_are_refused_not_a_stack_overflow() {
        // What a client can send (protobuf stops at 50 levels) decodes, and its shape is what
        // the bytes say.
        let cmd: Command = decode(&nested_txn_command(50)).unwrap();
        let mut levels = 0;
        let mut txn = match &cmd {
            Command::Txn(t) => Some(t),
            _ => None,
        };
        while let Some(t) = txn {
            levels += 1;
            txn = match t.success.first() {
                Some(mainstay_store::RequestOp::Txn(inner)) => Some(inner),
                _ => None,
            };
        }
        assert_eq!(levels, 50);
        // A forged peer message of 2 MB nesting 100,000 levels is an error, decoded on a
        // thread with the default 2 MiB stack (it overflowed before the nesting bound), and the
        // bound leaves nothing behind for the next decode on the same thread.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let err = decode::<Command>(&nested_txn_command(100_000)).unwrap_err();
                assert!(err.to_string().contains("nested deeper than 64"), "{err}");
                // A top-level txn and 64 nested in it pass; one more level does not.
                assert!(decode::<Command>(&nested_txn_command(65)).is_ok());
                assert!(decode::<Command>(&nested_txn_command(66)).is_err());
                assert!(decode::<Command>(&nested_txn_command(65)).is_ok());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
