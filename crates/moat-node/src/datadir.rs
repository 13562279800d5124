//! The data dir: its lock, the master key, and the bootstrap admin token.
//!
//! Files holding secrets are created with mode 0600 in a 0700 directory, and a key file
//! whose mode is wider is refused rather than used.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustix::fs::{FlockOperation, flock};
use zeroize::Zeroizing;

/// The node's master key. Never logged, never written anywhere but its key file.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A key for one purpose, derived so that no two uses share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.0.as_ref()).expect("any length");
        mac.update(b"moat/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The value the store keeps to tell whether a later start has the same key.
    pub fn check_value(&self) -> String {
        hex::encode(self.derive("key-check/v1"))
    }
}

/// An exclusive hold on a data dir for the life of the node.
pub struct DataDirLock {
    _file: File,
}

/// Creates the data dir (0700) if needed and takes its lock.
pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir `{}`", dir.display()))?;
    }
    // Everything inside (store, keys, compiled code) is the node's alone, whatever the umask.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict data dir `{}` to mode 0700", dir.display()))?;
    let path = dir.join("moat.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open `{}`", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        bail!(
            "data dir `{}` is in use by another moat node (pid {}); stop it first or use another --data-dir",
            dir.display(),
            holder.trim()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

/// Where the master key comes from, in SPEC §5's order of precedence.
pub enum KeySource {
    Command(String),
    Env(String),
    File(PathBuf),
}

/// Loads the master key, creating the key file on first start. Returns whether it was created.
pub fn master_key(source: KeySource) -> anyhow::Result<(MasterKey, bool)> {
    let (text, created) = match source {
        KeySource::Command(cmd) => {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .output()
                .context("cannot run --master-key-cmd")?;
            if !out.status.success() {
                bail!("--master-key-cmd exited with {}", out.status);
            }
            (Zeroizing::new(String::from_utf8(out.stdout)?), false)
        }
        KeySource::Env(value) => (Zeroizing::new(value), false),
        KeySource::File(path) => match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!(
                        "master key file `{}` has mode {mode:o}; it must be 0600 (chmod 600 it)",
                        path.display()
                    );
                }
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                (Zeroizing::new(text), false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                getrandom::fill(key.as_mut()).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
                let text = Zeroizing::new(STANDARD.encode(key.as_ref()));
                write_secret_file(&path, text.as_bytes())?;
                (text, true)
            }
            Err(e) => return Err(e).context(format!("cannot read `{}`", path.display())),
        },
    };
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .context("the master key is not valid base64")?,
    );
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the master key must be 32 bytes, base64-encoded"))?;
    Ok((MasterKey(Zeroizing::new(key)), created))
}

/// Writes a new file readable only by its owner, atomically.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create `{}`", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

/// A new API token: `moat_` and 256 random bits.
pub fn new_token() -> anyhow::Result<Zeroizing<String>> {
    let mut b = Zeroizing::new([0u8; 32]);
    getrandom::fill(b.as_mut()).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    Ok(Zeroizing::new(format!(
        "moat_{}",
        URL_SAFE_NO_PAD.encode(b.as_ref())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (k1, created) = master_key(KeySource::File(path.clone())).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (k2, created) = master_key(KeySource::File(path.clone())).unwrap();
        assert!(!created);
        assert_eq!(k1.check_value(), k2.check_value());
        assert_ne!(k1.derive("a"), k1.derive("b"));
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        master_key(KeySource::File(path.clone())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = master_key(KeySource::File(path)).err().unwrap();
        assert!(e.to_string().contains("must be 0600"), "{e}");
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(master_key(KeySource::Env("not base64!".into())).is_err());
        assert!(master_key(KeySource::Env(STANDARD.encode([1u8; 16]))).is_err());
        assert!(master_key(KeySource::Env(STANDARD.encode([1u8; 32]))).is_ok());
    }

    #[test]
    fn the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let e = lock(dir.path()).err().unwrap();
        assert!(e.to_string().contains("in use by another moat node"), "{e}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
