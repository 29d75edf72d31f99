//! What changed since a snapshot, for snapshots written as deltas (`store::snapshot`): the keys
//! written since (recorded as requests are applied), the image of their values now, and how a
//! decoded delta is merged into the state it was taken against.
//!
//! A delta image has the same form as a full one (`KvImage`), holding only the changed keys;
//! the de-duplication table and the node-id counter are written whole in every delta (the table
//! is bounded and changes with every write). Keys are never deleted, so the changed keys'
//! values are all a delta needs.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use imbl::OrdMap;
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{Command, KvState, RecentRef, Request, RequestId, Response};

/// Keys written since some snapshot.
#[derive(Debug, Default)]
pub struct ChangedKeys(HashSet<String>);

impl ChangedKeys {
    /// Notes the keys `request` writes (before it is applied, which consumes it). A duplicate
    /// request is noted too: harmless, the delta then holds a value that did not change.
    pub fn record(&mut self, request: &Request) {
        match &request.command {
            Command::Put { key, .. } | Command::Append { key, .. } => {
                // A lookup first: the common write is to a key already noted, and needs no copy.
                if !self.0.contains(key) {
                    self.0.insert(key.clone());
                }
            }
            Command::Batch(requests) => requests.iter().for_each(|r| self.record(r)),
            Command::ReserveNodeId { .. } => {}
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A delta image borrowed from a state: [`KvImage`](super::KvImage)'s fields, names and order.
#[derive(Serialize)]
struct DeltaRef<'a> {
    data: ChangedRef<'a>,
    recent: RecentRef<'a>,
    next_node_id: u64,
}

struct ChangedRef<'a>(&'a KvState, &'a ChangedKeys);

impl Serialize for ChangedRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ChangedRef(state, keys) = self;
        serializer.collect_map(
            keys.0
                .iter()
                .filter_map(|k| state.data.get(k).map(|v| (k, v.as_slice()))),
        )
    }
}

impl KvState {
    /// The delta image of this state against one `keys` changed since: serializes as a full
    /// image that holds only those keys.
    pub fn delta<'a>(&'a self, keys: &'a ChangedKeys) -> impl Serialize + 'a {
        DeltaRef {
            data: ChangedRef(self, keys),
            recent: RecentRef(&self.order),
            next_node_id: self.next_node_id,
        }
    }

    /// About how many bytes [`KvState::delta`] serializes to (MessagePack adds a few per string).
    pub fn delta_bytes(&self, keys: &ChangedKeys) -> u64 {
        let values: usize = keys
            .0
            .iter()
            .filter_map(|k| self.data.get(k).map(|v| (k, v)))
            .map(|(k, v)| k.len() + 5 + v.iter().map(|s| s.len() + 5).sum::<usize>())
            .sum();
        // A request id and its reply: 16 bytes and a small map, ~34 bytes in all.
        (values + self.order.len() * 34) as u64
    }

    /// Brings this state (the one a delta was taken against) to the state the delta was taken
    /// of, reading the delta image from `image` as it goes: the delta's keys take its values, the
    /// de-duplication table and the node-id counter become the delta's. A full image merged into
    /// an empty state gives the state it was taken of.
    ///
    /// Key by key, never the decoded image beside the state: a delta may be as large as the
    /// state, and a node installing a snapshot must need the state plus a little, not twice it.
    pub fn merge<'de, D: Deserializer<'de>>(&mut self, image: D) -> Result<(), D::Error> {
        image.deserialize_struct("KvImage", &["data", "recent", "next_node_id"], Merge(self))
    }
}

/// Reads an image's fields (a MessagePack map, as `write_named` writes it) into a state.
struct Merge<'a>(&'a mut KvState);

impl<'de> Visitor<'de> for Merge<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key/value state image")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        while let Some(field) = fields.next_key::<String>()? {
            match field.as_str() {
                "data" => fields.next_value_seed(Entries(&mut self.0.data))?,
                "recent" => {
                    let recent: Vec<(RequestId, Response)> = fields.next_value()?;
                    (self.0.replies, self.0.order) = Default::default();
                    for (id, reply) in recent {
                        self.0.remember(id, reply);
                    }
                }
                "next_node_id" => self.0.next_node_id = fields.next_value()?,
                _ => {
                    fields.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Inserts an image's keys into the map one by one as they are decoded.
struct Entries<'a>(&'a mut OrdMap<String, Arc<Vec<String>>>);

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, entries: D) -> Result<(), D::Error> {
        entries.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of keys to lists of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        while let Some((key, values)) = entries.next_entry::<String, Vec<String>>()? {
            self.0.insert(key, Arc::new(values));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: u128, key: &str, value: &str) -> Request {
        Request {
            id: RequestId(id),
            command: Command::Put {
                key: key.into(),
                values: vec![value.into()],
            },
        }
    }

    fn append(id: u128, key: &str, value: &str) -> Request {
        Request {
            id: RequestId(id),
            command: Command::Append {
                key: key.into(),
                value: value.into(),
            },
        }
    }

    fn bytes<T: Serialize>(image: T) -> Vec<u8> {
        rmp_serde::to_vec_named(&image).unwrap()
    }

    fn merge(state: &mut KvState, image: &[u8]) {
        state
            .merge(&mut rmp_serde::Deserializer::new(image))
            .unwrap();
    }

    #[test]
    fn a_snapshot_then_its_delta_give_back_the_state_the_delta_was_taken_of() {
        let mut state = KvState::default();
        for i in 0..50u128 {
            state.apply(put(i, &format!("k{i}"), "v"));
        }
        let full = bytes(&state);
        let mut snapshot = KvState::default();
        merge(&mut snapshot, &full);
        assert_eq!(snapshot, state, "a full image merged into nothing");
        assert_eq!(snapshot, rmp_serde::from_slice::<KvState>(&full).unwrap());
        let mut changed = ChangedKeys::default();
        let later = [
            append(100, "k3", "w"),
            put(101, "new", "x"),
            Request {
                id: RequestId(102),
                command: Command::Batch(vec![append(103, "k7", "y"), put(104, "k9", "z")]),
            },
            Request {
                id: RequestId(105),
                command: Command::ReserveNodeId { at_least: 6 },
            },
            append(100, "k3", "w"), // a duplicate: not applied twice
        ];
        for request in later {
            changed.record(&request);
            state.apply_entry(request);
        }
        assert_eq!(changed.len(), 4, "k3, new, k7, k9");
        let mut restored = snapshot;
        merge(&mut restored, &bytes(state.delta(&changed)));
        assert_eq!(restored, state);
        assert_eq!(
            restored.get("k3").unwrap(),
            &vec!["v".to_string(), "w".into()]
        );
        // The de-duplication table came with it: the retried APPEND is still recognised.
        assert!(restored.apply(append(100, "k3", "w")).1);
        let bytes = rmp_serde::to_vec_named(&state.delta(&changed))
            .unwrap()
            .len() as u64;
        let estimate = state.delta_bytes(&changed);
        assert!(
            estimate / 2 <= bytes && bytes <= estimate * 2,
            "estimate {estimate} bytes, written {bytes}"
        );
    }
}
