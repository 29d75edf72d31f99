//! One client operation as observed from outside: what was asked, when it was invoked and when it
//! completed (milliseconds on one clock), and how it ended. Values are `String`s by default; a
//! long run records them as ids of [`Values`] instead.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind<V = String> {
    /// APPEND `value` to `key`. Values are unique across the history.
    Append { key: String, value: V },
    /// GET `key` (linearizable).
    Read { key: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome<V = String> {
    /// Acknowledged; a read carries the list it returned (empty for a missing key).
    Ok(Option<Vec<V>>),
    /// Definitely not applied (the service said nothing was appended, or it never got the request).
    Failed,
    /// May or may not have been applied (timeout after sending, "outcome unknown").
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op<V = String> {
    pub client: usize,
    pub kind: Kind<V>,
    pub invoked_ms: u64,
    pub completed_ms: u64,
    pub outcome: Outcome<V>,
}

impl<V> Op<V> {
    pub fn key(&self) -> &str {
        match &self.kind {
            Kind::Append { key, .. } | Kind::Read { key } => key,
        }
    }

    /// The same operation with every value passed through `f`.
    pub fn map<W>(self, mut f: impl FnMut(V) -> W) -> Op<W> {
        let kind = match self.kind {
            Kind::Append { key, value } => Kind::Append {
                key,
                value: f(value),
            },
            Kind::Read { key } => Kind::Read { key },
        };
        let outcome = match self.outcome {
            Outcome::Ok(list) => Outcome::Ok(list.map(|l| l.into_iter().map(f).collect())),
            Outcome::Failed => Outcome::Failed,
            Outcome::Unknown => Outcome::Unknown,
        };
        Op {
            client: self.client,
            kind,
            invoked_ms: self.invoked_ms,
            completed_ms: self.completed_ms,
            outcome,
        }
    }
}

/// Every distinct value once, by a small id. A read records the whole list it returned, so a
/// list-append soak holds hundreds of thousands of lists of up to 256 values: as `String`s they
/// were most of a 600 s soak's 4.5 GB.
#[derive(Debug, Default)]
pub struct Values {
    ids: HashMap<String, u32>,
}

impl Values {
    /// The id of `text`, new if it was not seen before.
    pub fn id(&mut self, text: String) -> u32 {
        let next = u32::try_from(self.ids.len()).expect("fewer than 2^32 distinct values");
        *self.ids.entry(text).or_insert(next)
    }

    /// Every value's text, indexed by id.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = vec![""; self.ids.len()];
        for (text, id) in &self.ids {
            texts[*id as usize] = text;
        }
        texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_keeps_its_id_and_its_text() {
        let mut values = Values::default();
        let a = values.id("c1-7".into());
        let b = values.id("c2-7".into());
        assert_ne!(a, b);
        assert_eq!(values.id("c1-7".into()), a);
        let texts = values.texts();
        assert_eq!((texts[a as usize], texts[b as usize]), ("c1-7", "c2-7"));
    }

    #[test]
    fn mapping_an_op_maps_its_value_and_every_value_it_read() {
        let read = Op {
            client: 3,
            kind: Kind::<String>::Read { key: "k".into() },
            invoked_ms: 1,
            completed_ms: 2,
            outcome: Outcome::Ok(Some(vec!["a".into(), "bb".into()])),
        };
        let mapped = read.map(|v| v.len());
        assert_eq!(mapped.outcome, Outcome::Ok(Some(vec![1, 2])));
        assert_eq!((mapped.client, mapped.key()), (3, "k"));
        let append = Op {
            client: 0,
            kind: Kind::Append {
                key: "k".into(),
                value: "ccc".to_string(),
            },
            invoked_ms: 1,
            completed_ms: 2,
            outcome: Outcome::Unknown,
        };
        let mapped = append.map(|v| v.len());
        assert_eq!(
            mapped.kind,
            Kind::Append {
                key: "k".into(),
                value: 3
            }
        );
        assert_eq!(mapped.outcome, Outcome::Unknown);
    }
}
