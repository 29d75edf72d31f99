//! The node's identity record, `identity.json` in its data directory: cluster name, node id and
//! the founding address list (empty for a server that joined at runtime), written durably on
//! first start. It makes two mistakes impossible:
//! starting a data directory with a different address list (ids would silently change meaning),
//! and rejoining under an old id after the Raft log was lost (the node could vote twice in a term
//! or forget acknowledged writes; openraft #898, FAQ "wipe one node").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE_NAME: &str = "identity.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster: String,
    pub id: u64,
    /// Raft addresses of the founding members, in id order; empty for a server that joined.
    pub members: Vec<String>,
    /// True once this node has Raft state (it initialized or joined): from then on an empty log
    /// means the log was lost.
    pub joined: bool,
}

/// The stored identity, if the directory has one.
pub fn load(dir: &Path) -> Result<Option<Identity>> {
    match std::fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Config(format!("{} is damaged: {e}", dir.join(FILE_NAME).display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn save(dir: &Path, identity: &Identity) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(identity).map_err(std::io::Error::other)?;
    Ok(crate::store::write_atomically(dir, FILE_NAME, &bytes)?)
}

/// Checks the stored identity against the command line (`expected`), or records it on first
/// start. `log_is_empty`: the Raft log store holds neither a vote nor an entry.
pub fn check_or_create(dir: &Path, expected: &Identity, log_is_empty: bool) -> Result<Identity> {
    let Some(stored) = load(dir)? else {
        if !log_is_empty {
            return Err(Error::Config(format!(
                "{} holds Raft state but no {FILE_NAME}: refusing to guess which node this is",
                dir.display()
            )));
        }
        save(dir, expected)?;
        return Ok(expected.clone());
    };
    let joiner = stored.members.is_empty() && expected.members.is_empty();
    if joiner && !stored.joined && log_is_empty && stored != *expected {
        // A joining server that never had Raft state (its learner was removed before it caught
        // up, say) takes the id the cluster gives it now: nothing anywhere refers to the old one.
        save(dir, expected)?;
        return Ok(expected.clone());
    }
    if stored.cluster != expected.cluster
        || stored.id != expected.id
        || stored.members != expected.members
    {
        return Err(Error::Config(format!(
            "{} belongs to node {} of cluster {:?} with members {:?}, but the command line makes this node {} \
             with members {:?}. Start it with the original addresses, or use a new --data-dir for a new cluster.",
            dir.display(),
            stored.id,
            stored.cluster,
            stored.members,
            expected.id,
            expected.members
        )));
    }
    if stored.joined && log_is_empty {
        return Err(Error::Config(format!(
            "{} says node {} was a cluster member, but its Raft log and vote are gone. Rejoining with an \
             empty log under the same id could lose acknowledged writes or elect two leaders; refusing to start.",
            dir.display(),
            stored.id
        )));
    }
    Ok(stored)
}

/// Records durably that the node `identity` describes now has Raft state of its own.
pub fn record_joined(dir: &Path, identity: &Identity) -> Result<()> {
    let joined = Identity {
        joined: true,
        ..identity.clone()
    };
    save(dir, &joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(id: u64) -> Identity {
        Identity {
            cluster: "raftkv".into(),
            id,
            members: vec!["a:1".into(), "a:2".into()],
            joined: false,
        }
    }

    #[test]
    fn first_start_records_and_later_starts_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let stored = check_or_create(dir.path(), &ident(0), true).unwrap();
        assert!(check_or_create(dir.path(), &ident(0), true).is_ok());
        let err = check_or_create(dir.path(), &ident(1), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to node 0"), "{err}");
        record_joined(dir.path(), &stored).unwrap();
        let err = check_or_create(dir.path(), &ident(0), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("log and vote are gone"), "{err}");
        assert!(check_or_create(dir.path(), &ident(0), false).is_ok());
    }

    #[test]
    fn raft_state_without_identity_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_or_create(dir.path(), &ident(0), false).is_err());
    }
}
