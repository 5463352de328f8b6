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
}
