use std::fs;
use std::io::{self, Write};

use openraft::type_config::alias::SnapshotMetaOf;

use super::data::HEADER;
use super::*;

// A type config of the test's own: `store` sits below `raft` and does not import it.
openraft::declare_raft_types!(TypeConfig: D = String, R = String);
type SnapshotMeta = SnapshotMetaOf<TypeConfig>;
type Snapshots = SnapshotFile<TypeConfig>;

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(openraft::testing::log_id::<TypeConfig>(1, 0, index)),
        ..Default::default()
    }
}

fn body(bytes: &'static [u8]) -> impl FnOnce(&mut dyn Write) -> io::Result<()> {
    move |out| out.write_all(bytes)
}

/// The snapshot's index and its sections' images, a delta's after a `+`.
fn state_of(data: &mut SnapshotData) -> (u64, String) {
    let mut state = String::new();
    let meta = data
        .read::<TypeConfig>(|kind, reader| {
            if kind == Kind::Delta {
                state.push('+');
            }
            reader.read_to_string(&mut state).map(drop)
        })
        .unwrap();
    (meta.last_log_id.unwrap().index, state)
}

fn current(file: &Snapshots) -> (u64, String) {
    state_of(&mut file.open_current().unwrap().unwrap())
}

/// The current snapshot file's size on disk.
fn len_of(dir: &Path) -> u64 {
    fs::metadata(dir.join(CURRENT)).unwrap().len()
}

fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// A snapshot at index 2: the full section "base" (index 1) and one delta "d1".
fn chain() -> (tempfile::TempDir, Snapshots) {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    file.write(&meta(1), body(b"base")).unwrap();
    file.append(Some(1), 2, &meta(2), body(b"d1"))
        .unwrap()
        .unwrap();
    (dir, file)
}

#[test]
fn a_written_snapshot_is_current_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    assert!(file.open_current().unwrap().is_none());
    let mut written = file.write(&meta(7), body(b"state")).unwrap();
    assert_eq!(state_of(&mut written), (7, "state".into()));
    assert_eq!(
        current(&Snapshots::new(dir.path()).unwrap()),
        (7, "state".into())
    );
}

#[test]
fn deltas_are_appended_in_place_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    file.write(&meta(1), body(b"base")).unwrap();
    let grown = file.append(Some(1), 2, &meta(2), body(b"d1")).unwrap();
    assert_eq!(state_of(&mut grown.unwrap()), (2, "base+d1".into()));
    file.append(Some(2), 2, &meta(3), body(b"d2"))
        .unwrap()
        .unwrap();
    let again = Snapshots::new(dir.path()).unwrap();
    assert_eq!(current(&again), (3, "base+d1+d2".into()));
    assert_eq!(again.current_meta().unwrap().unwrap(), meta(3));
    let mut data = again.open_current().unwrap().unwrap();
    assert_eq!(data.shape().deltas().0, 2);
    assert_eq!(data.len(), len_of(dir.path()), "every byte counts");
    let full = data.shape().full_bytes();
    assert_eq!(
        again.full_len(),
        full,
        "what compaction compares the log with"
    );
    assert!(full < data.len());
    assert_eq!(data.meta::<TypeConfig>().unwrap(), meta(3));
    assert_eq!(names(dir.path()), vec![std::ffi::OsString::from(CURRENT)]);
}

#[test]
fn a_delta_is_refused_against_another_snapshot_or_past_the_chains_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    assert!(
        file.append(Some(1), 1, &meta(2), body(b"d"))
            .unwrap()
            .is_none(),
        "no snapshot yet"
    );
    // The full section's body is its meta plus 32 bytes of state.
    file.write(&meta(1), body(&[b'b'; 32])).unwrap();
    let len = len_of(dir.path());
    assert!(
        file.append(Some(5), 1, &meta(6), body(b"d"))
            .unwrap()
            .is_none(),
        "another base"
    );
    assert!(
        file.append(None, 1, &meta(6), body(b"d"))
            .unwrap()
            .is_none(),
        "an unknown base"
    );
    assert!(
        file.append(Some(1), 1 << 20, &meta(2), body(b"d"))
            .unwrap()
            .is_none(),
        "too big"
    );
    assert_eq!(len_of(dir.path()), len, "a refused delta writes nothing");
    let full = file.open_current().unwrap().unwrap().shape().full_bytes();
    assert!(
        file.append(Some(1), full, &meta(2), body(b""))
            .unwrap()
            .is_some(),
        "just fits"
    );
    // The chain's length is bounded too, however small its deltas.
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    file.write(&meta(1), |out| out.write_all(&[b'b'; 1 << 16]))
        .unwrap();
    let mut base = 1;
    while file
        .append(Some(base), 0, &meta(base + 1), body(b""))
        .unwrap()
        .is_some()
    {
        base += 1;
    }
    assert_eq!(base as usize - 1, MAX_DELTAS, "{MAX_DELTAS} deltas at most");
}

#[test]
fn a_handle_opened_before_a_delta_still_reads_and_sends_the_older_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    file.write(&meta(1), body(b"base")).unwrap();
    let mut before = file.open_current().unwrap().unwrap();
    file.append(Some(1), 2, &meta(2), body(b"d1"))
        .unwrap()
        .unwrap();
    assert_eq!(state_of(&mut before), (1, "base".into()));
    // What a transfer sends from that handle is a whole snapshot file of its own.
    let sent = before.read_chunk(0, 1 << 20).unwrap();
    assert_eq!(sent.len() as u64, before.len());
    let received = dir.path().join("received");
    fs::write(&received, &sent).unwrap();
    assert_eq!(
        state_of(&mut SnapshotData::open(received).unwrap()),
        (1, "base".into())
    );
}

#[test]
fn a_delta_cut_short_by_a_crash_counts_for_nothing_and_is_written_over() {
    let (dir, file) = chain();
    let whole = len_of(dir.path());
    let path = dir.path().join(CURRENT);
    // A crash before the length was written: a header of length 0 and part of a body.
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&0u64.to_le_bytes()).unwrap();
    f.write_all(&[Kind::Delta as u8]).unwrap();
    f.write_all(b"half a delta").unwrap();
    assert_eq!(current(&file), (2, "base+d1".into()));
    // A length that runs past the end of the file (the tail lost) reads the same.
    f.set_len(whole).unwrap();
    f.write_all(&1000u64.to_le_bytes()).unwrap();
    f.write_all(&[Kind::Delta as u8, 0x90]).unwrap();
    drop(f);
    assert_eq!(
        current(&Snapshots::new(dir.path()).unwrap()),
        (2, "base+d1".into())
    );
    file.append(Some(2), 2, &meta(3), body(b"d2"))
        .unwrap()
        .unwrap();
    assert_eq!(current(&file), (3, "base+d1+d2".into()));
    assert_eq!(
        len_of(dir.path()),
        file.open_current().unwrap().unwrap().len(),
        "the torn tail was written over"
    );
    assert!(len_of(dir.path()) > whole + HEADER);
}

#[test]
fn an_older_snapshot_never_replaces_a_newer_one_but_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    file.write(&meta(9), body(b"nine")).unwrap();
    let mut older = file.write(&meta(5), body(b"five")).unwrap();
    assert_eq!(state_of(&mut older), (5, "five".into()));
    assert_eq!(file.current_meta().unwrap().unwrap(), meta(9));
    assert_eq!(
        names(dir.path()),
        vec![std::ffi::OsString::from(CURRENT)],
        "no leftovers"
    );
}

#[test]
fn a_replaced_snapshot_is_still_readable_through_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    let mut first = file.write(&meta(3), body(b"three")).unwrap();
    file.write(&meta(4), body(b"four")).unwrap();
    assert_eq!(state_of(&mut first), (3, "three".into()));
    assert_eq!(first.read_chunk(0, 8).unwrap(), MAGIC);
}

#[test]
fn a_snapshot_of_the_legacy_format_is_read_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = LegacyImage::<TypeConfig> {
        meta: meta(11),
        data: b"old state".to_vec(),
    };
    fs::write(
        dir.path().join(CURRENT),
        rmp_serde::to_vec_named(&legacy).unwrap(),
    )
    .unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    assert_eq!(current(&file), (11, "old state".into()));
    assert_eq!(&fs::read(dir.path().join(CURRENT)).unwrap()[..8], MAGIC);
}

#[test]
fn a_snapshot_of_the_format_before_sections_is_read_but_never_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = MAGIC_V2.to_vec();
    rmp_serde::encode::write_named(&mut bytes, &meta(4)).unwrap();
    bytes.extend_from_slice(b"v2 state");
    fs::write(dir.path().join(CURRENT), &bytes).unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    assert_eq!(current(&file), (4, "v2 state".into()));
    assert!(
        file.append(Some(4), 1, &meta(5), body(b"d"))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        fs::read(dir.path().join(CURRENT)).unwrap(),
        bytes,
        "left as it was"
    );
}

#[test]
fn a_half_received_snapshot_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(INCOMING), b"RKVSNAP3 and then nothing").unwrap();
    let file = Snapshots::new(dir.path()).unwrap();
    assert!(!file.incoming_path().exists());
    assert!(file.open_current().unwrap().is_none());
}

#[test]
fn a_file_that_is_not_a_whole_snapshot_is_refused_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("x", &b"RKVSNAP1 garbage"[..]),
        ("y", &b"RKVSNAP3\0\0\0\0"[..]),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = SnapshotData::open(path).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{name}");
    }
}

#[test]
fn a_delta_that_fails_half_way_leaves_the_file_byte_for_byte_as_it_was() {
    let (dir, file) = chain();
    let before = fs::read(dir.path().join(CURRENT)).unwrap();
    // As a full disk would: part of the body written, then an error.
    let failed = file.append(Some(2), 2, &meta(3), |out| {
        out.write_all(&[b'x'; 3 << 20])?;
        Err(io::Error::other("No space left on device"))
    });
    assert!(failed.is_err());
    assert_eq!(fs::read(dir.path().join(CURRENT)).unwrap(), before);
    assert_eq!(current(&file), (2, "base+d1".into()));
}
