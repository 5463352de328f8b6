//! YAML request bodies, decoded to JSON values with a bound on what aliases may expand to.
//!
//! YAML aliases (`*name`) repeat an anchored node wherever they appear, so a small document can
//! expand into an enormous one ("billion laughs"): a 3 MiB body could exhaust the apiserver's
//! memory. serde_yaml limits only the number of alias jumps (100 per event), not the size they
//! expand to. kube-apiserver's YAML decoder (go-yaml) refuses documents whose aliases make up too
//! much of what is decoded ("yaml: document contains excessive aliasing"). Here, what the
//! document decodes to is counted as it is built, in nodes and in string bytes, and refused once
//! it outgrows the document itself by more than legitimate aliasing does.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What a document of `input_bytes` may decode to: without aliases, a node needs at least one byte
/// of input and a string's bytes are in the input, so these leave room for moderate aliasing and
/// none for exponential expansion.
#[derive(Clone, Copy, Debug)]
struct Budget {
    nodes: usize,
    string_bytes: usize,
}

impl Budget {
    fn for_input(input_bytes: usize) -> Budget {
        Budget {
            nodes: input_bytes.saturating_mul(2).saturating_add(10_000),
            string_bytes: input_bytes.saturating_mul(2).saturating_add(64 * 1024),
        }
    }
}

pub const EXCESSIVE_ALIASING: &str = "yaml: document contains excessive aliasing";

/// Decodes one YAML document to a JSON value; `Err` carries a message for the client.
pub fn to_json(bytes: &[u8]) -> Result<Value, String> {
    let mut budget = Budget::for_input(bytes.len());
    let de = serde_yaml::Deserializer::from_slice(bytes);
    Counted {
        budget: &mut budget,
    }
    .deserialize(de)
    .map_err(|e| {
        let message = e.to_string();
        // serde_yaml's own alias limit says "repetition limit exceeded".
        if message.contains(EXCESSIVE_ALIASING) || message.contains("repetition limit exceeded") {
            EXCESSIVE_ALIASING.to_string()
        } else {
            message
        }
    })
}

/// Builds a `Value`, spending the budget on every node and string byte.
struct Counted<'b> {
    budget: &'b mut Budget,
}

impl Counted<'_> {
    fn node<E: de::Error>(&mut self) -> Result<(), E> {
        self.budget.nodes = self
            .budget
            .nodes
            .checked_sub(1)
            .ok_or_else(|| E::custom(EXCESSIVE_ALIASING))?;
        Ok(())
    }

    fn string<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        self.node()?;
        self.budget.string_bytes = self
            .budget
            .string_bytes
            .checked_sub(len)
            .ok_or_else(|| E::custom(EXCESSIVE_ALIASING))?;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Counted<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Counted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.node()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.node()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.node()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.node()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.string(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.string(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.node()?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.node()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Counted {
            budget: &mut *self.budget,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.node()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(Counted {
            budget: &mut *self.budget,
        })? {
            // JSON keys are strings; YAML's may be numbers or booleans (`1: a`, `true: b`).
            let key = match key {
                Value::String(s) => s,
                Value::Null => "null".to_string(),
                other => other.to_string(),
            };
            let value = map.next_value_seed(Counted {
                budget: &mut *self.budget,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_decode_as_before() {
        let doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: \"1\"}\ndata:\n  k: v\n  n: \"2\"\nlist: [1, 2.5, true, null, ~]\n";
        let ours = to_json(doc).unwrap();
        let theirs: Value = serde_yaml::from_slice(doc).unwrap();
        assert_eq!(ours, theirs);
        // Moderate aliasing, as hand-written manifests use it, is fine.
        let anchors = b"base: &b {image: nginx, ports: [80, 443]}\none: *b\ntwo: *b\nthree: *b\n";
        assert_eq!(
            to_json(anchors).unwrap(),
            serde_yaml::from_slice::<Value>(anchors).unwrap()
        );
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut doc = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, prev) in ('b'..='i').zip('a'..='h') {
            let refs = vec![format!("*{prev}"); 9].join(",");
            doc.push_str(&format!("{i}: &{i} [{refs}]\n"));
        }
        assert_eq!(to_json(doc.as_bytes()).unwrap_err(), EXCESSIVE_ALIASING);
    }

    #[test]
    fn a_wide_alias_of_a_large_node_is_refused() {
        // Few alias jumps (serde_yaml's own limit lets these through), each repeating a large
        // anchored list: 2,000 copies of a 5,000-item list is 10 million nodes from 30 KB.
        let items = vec!["x"; 5_000].join(",");
        let mut doc = format!("a: &a [{items}]\nb: [");
        doc.push_str(&vec!["*a"; 2_000].join(","));
        doc.push_str("]\n");
        assert_eq!(to_json(doc.as_bytes()).unwrap_err(), EXCESSIVE_ALIASING);
        // The same for a long string repeated.
        let long = "y".repeat(200_000);
        let mut doc = format!("a: &a \"{long}\"\nb: [");
        doc.push_str(&vec!["*a"; 100].join(","));
        doc.push_str("]\n");
        assert_eq!(to_json(doc.as_bytes()).unwrap_err(), EXCESSIVE_ALIASING);
    }

    #[test]
    fn syntax_errors_keep_their_text() {
        let e = to_json(b"a: [1, 2\n").unwrap_err();
        assert_ne!(e, EXCESSIVE_ALIASING);
        assert!(!e.is_empty());
    }
}
