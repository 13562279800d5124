//! Master-key rotation: every sealed value's data key is re-wrapped under a new master key
//! while the node keeps serving, and an interruption at any point — SIGKILL included — loses
//! nothing; running `moat master-key rotate` again finishes the job.
//!
//! The steps, each safe to stop after:
//! 1. the new key is written to `<data-dir>/master.key.next` (0600, fsynced), or the one
//!    already there from an interrupted run is taken;
//! 2. the store records the new key's check value as `master_key_next_check`; from here on
//!    a starting node opens values with either key and seals new ones with the new key;
//! 3. values are re-wrapped in batches, each batch one transaction;
//! 4. one transaction makes the new key the store's key (`master_key_check`) and clears the
//!    marker;
//! 5. `master.key.next` is renamed over `master.key`. A node that starts between 4 and 5
//!    finds the new key in `master.key.next` and finishes the rename itself.
//!
//! Only a key kept in the key file can be rotated this way; a key from `--master-key-cmd`
//! or `MOAT_MASTER_KEY` belongs to the operator's secret store, which must rotate it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use moat_store::Store;
use moat_store::crypto::{Keyring, Sealer};
use zeroize::Zeroizing;

use crate::datadir::{self, KeySource, MasterKey};

/// What the data-sealing key is derived for, from the master key.
pub const DATA_KEY_PURPOSE: &str = "data-keys/v1";
const NEXT_FILE: &str = "master.key.next";
const NEXT_CHECK: &str = "master_key_next_check";
/// Values re-wrapped per transaction.
const BATCH: u32 = 256;

/// The node's keys, as rotation needs them.
pub struct KeyState {
    dir: PathBuf,
    /// `Some` when the master key lives in the key file (rotation is possible).
    key_file: Option<PathBuf>,
    /// The current data-sealing key (derived; the master key itself is not kept).
    data_key: std::sync::Mutex<Zeroizing<[u8; 32]>>,
    running: tokio::sync::Mutex<()>,
}

impl KeyState {
    pub fn new(dir: PathBuf, key_file: Option<PathBuf>, data_key: [u8; 32]) -> Self {
        KeyState {
            dir,
            key_file,
            data_key: std::sync::Mutex::new(Zeroizing::new(data_key)),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

/// The keyring for `master`, with `next` as the primary while a rotation is unfinished.
pub fn keyring(master: &MasterKey, next: Option<&MasterKey>) -> Keyring {
    let current = Sealer::new(master.derive(DATA_KEY_PURPOSE));
    match next {
        Some(next) => Keyring::new(Sealer::new(next.derive(DATA_KEY_PURPOSE)), vec![current]),
        None => Keyring::new(current, Vec::new()),
    }
}

fn load_next(dir: &Path) -> anyhow::Result<Option<MasterKey>> {
    let path = dir.join(NEXT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let (key, _) = datadir::master_key(KeySource::File(path))?;
    Ok(Some(key))
}

/// The new key of an unfinished rotation (step 2 reached), if any.
pub async fn pending_key(dir: &Path, store: &dyn Store) -> anyhow::Result<Option<MasterKey>> {
    let Some(check) = store.get_meta(NEXT_CHECK).await? else {
        return Ok(None);
    };
    match load_next(dir)? {
        Some(next) if next.check_value() == check => Ok(Some(next)),
        _ => bail!(
            "a master-key rotation is unfinished but `{}` is missing or is not its key; restore that file and run `moat master-key rotate` again",
            dir.join(NEXT_FILE).display()
        ),
    }
}

/// At start, when the store's key check does not match the key file: if the rotation's new
/// key matches it (stopped between steps 4 and 5), finish the rename and use that key.
pub fn finish_interrupted(
    dir: &Path,
    stored_check: &str,
    from_file: bool,
) -> anyhow::Result<Option<MasterKey>> {
    if !from_file {
        return Ok(None);
    }
    match load_next(dir)? {
        Some(next) if next.check_value() == stored_check => {
            std::fs::rename(dir.join(NEXT_FILE), dir.join("master.key"))
                .context("cannot finish the interrupted master-key rotation")?;
            sync_dir(dir)?;
            println!("moat: finished an interrupted master-key rotation");
            Ok(Some(next))
        }
        _ => Ok(None),
    }
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync `{}`", dir.display()))
}

/// What a rotation did.
pub struct Rotated {
    pub rewrapped: u64,
    pub key_id: String,
}

/// Runs (or resumes) a rotation to the end.
pub async fn rotate(keys: &KeyState, store: &Arc<dyn Store>) -> anyhow::Result<Rotated> {
    let _one_at_a_time = keys.running.lock().await;
    let Some(key_file) = &keys.key_file else {
        bail!(
            "this node's master key comes from --master-key-cmd or MOAT_MASTER_KEY; rotate it where it is kept, then restart with the new key"
        );
    };
    // Step 1: the new key, durable before anything depends on it.
    let next = match load_next(&keys.dir)? {
        Some(next) => next,
        None => {
            let (next, _) = datadir::master_key(KeySource::File(keys.dir.join(NEXT_FILE)))?;
            sync_dir(&keys.dir)?;
            next
        }
    };
    let current = Sealer::new(
        **keys
            .data_key
            .lock()
            .map_err(|_| anyhow::anyhow!("key state poisoned"))?,
    );
    let next_data = next.derive(DATA_KEY_PURPOSE);
    // Step 2.
    store
        .update_meta(vec![(NEXT_CHECK.to_string(), Some(next.check_value()))])
        .await?;
    store.set_keys(Keyring::new(Sealer::new(next_data), vec![current]))?;
    // Step 3.
    let mut rewrapped = 0;
    loop {
        let n = store.rewrap_sealed(BATCH).await?;
        if n == 0 {
            break;
        }
        rewrapped += n;
    }
    // Step 4.
    store
        .update_meta(vec![
            ("master_key_check".to_string(), Some(next.check_value())),
            (NEXT_CHECK.to_string(), None),
        ])
        .await?;
    // Step 5.
    std::fs::rename(keys.dir.join(NEXT_FILE), key_file)
        .context("cannot replace the master key file")?;
    sync_dir(&keys.dir)?;
    store.set_keys(Keyring::new(Sealer::new(next_data), Vec::new()))?;
    if let Ok(mut k) = keys.data_key.lock() {
        **k = next_data;
    }
    let key_id = hex::encode(Sealer::new(next_data).key_id());
    tracing::info!(key_id = %key_id, rewrapped, "master key rotated");
    Ok(Rotated { rewrapped, key_id })
}
