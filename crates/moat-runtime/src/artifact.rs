//! Compiled artifacts on disk, sealed with a MAC, and the one `unsafe` load.
//!
//! A compiled component is native code: wasmtime loads it without re-validating, so whoever
//! can write it can run code in the node. Each artifact therefore carries an HMAC-SHA256
//! keyed from the master key over the component digest, the engine id and the bytes, and is
//! loaded only from the very buffer whose MAC was checked (never re-read from the file).

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"MOATCW01";
const MAC_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("compiled artifact `{0}` failed its integrity check")]
    Tampered(PathBuf),
    #[error("compiled artifact `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directory of sealed compiled artifacts.
#[derive(Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
    key: [u8; 32],
    engine_id: String,
}

impl ArtifactStore {
    /// `key` must be derived from the master key and used for nothing else.
    pub fn new(dir: PathBuf, key: [u8; 32], engine_id: String) -> Self {
        ArtifactStore {
            dir,
            key,
            engine_id,
        }
    }

    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.{}.cwasm", self.engine_id))
    }

    fn mac(&self, digest: &str, payload: &[u8]) -> Hmac<Sha256> {
        #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(MAGIC);
        mac.update(digest.as_bytes());
        mac.update(b"\0");
        mac.update(self.engine_id.as_bytes());
        mac.update(b"\0");
        mac.update(payload);
        mac
    }

    /// Writes an artifact atomically (temp file, fsync, rename).
    pub fn write(&self, digest: &str, compiled: &[u8]) -> Result<PathBuf, ArtifactError> {
        let path = self.path(digest);
        let io = |source| ArtifactError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let tag = self.mac(digest, compiled).finalize().into_bytes();
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&tag).map_err(io)?;
        f.write_all(compiled).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    /// Reads an artifact and checks its MAC. `Ok(None)` when there is none yet.
    pub fn read_verified(&self, digest: &str) -> Result<Option<Verified>, ArtifactError> {
        let path = self.path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ArtifactError::Io { path, source }),
        };
        if bytes.len() < MAGIC.len() + MAC_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err(ArtifactError::Tampered(path));
        }
        let (tag, payload) = bytes[MAGIC.len()..].split_at(MAC_LEN);
        // verify_slice compares in constant time.
        if self.mac(digest, payload).verify_slice(tag).is_err() {
            return Err(ArtifactError::Tampered(path));
        }
        Ok(Some(Verified {
            bytes,
            offset: MAGIC.len() + MAC_LEN,
        }))
    }

    /// Removes an artifact (after a failed check, so it is recompiled from the source).
    pub fn remove(&self, digest: &str) {
        let _ = std::fs::remove_file(self.path(digest));
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Artifact bytes whose MAC has been checked. Only [`ArtifactStore::read_verified`] makes one.
pub struct Verified {
    bytes: Vec<u8>,
    offset: usize,
}

/// Turns verified compiled bytes into a component.
///
/// This is the only `unsafe` in Moat.
pub fn load(engine: &Engine, artifact: &Verified) -> wasmtime::Result<Component> {
    #[allow(
        unsafe_code,
        reason = "deserializing compiled code is unsafe by design; see SAFETY"
    )]
    // SAFETY: `Component::deserialize` trusts its input to be a well-formed artifact produced
    // by a compatible wasmtime, since it maps it as executable code without validation. These
    // bytes are exactly the buffer whose HMAC (keyed from the node's master key, which never
    // leaves the node) was verified in `read_verified`: only this node's compile path, which
    // produced them with `Engine::precompile_component` in the compile child, could have
    // sealed them. They are held in memory, so the file cannot change between check and use.
    // wasmtime itself also checks the engine-compatibility header before use.
    unsafe {
        Component::deserialize(engine, &artifact.bytes[artifact.offset..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, key: u8) -> ArtifactStore {
        ArtifactStore::new(dir.to_path_buf(), [key; 32], "engine-a".into())
    }

    #[test]
    fn sealed_artifacts_round_trip_and_every_byte_is_covered() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 7);
        assert!(s.read_verified("d1").unwrap().is_none());
        let path = s.write("d1", b"compiled code").unwrap();
        let v = s.read_verified("d1").unwrap().unwrap();
        assert_eq!(&v.bytes[v.offset..], b"compiled code");

        let sealed = std::fs::read(&path).unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(s.read_verified("d1"), Err(ArtifactError::Tampered(_))),
                "flipping byte {i} went unnoticed"
            );
        }
        std::fs::write(&path, &sealed[..20]).unwrap();
        assert!(matches!(
            s.read_verified("d1"),
            Err(ArtifactError::Tampered(_))
        ));
    }

    #[test]
    fn another_key_digest_or_engine_does_not_verify() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), 7).write("d1", b"code").unwrap();
        assert!(store(dir.path(), 8).read_verified("d1").is_err());
        // An artifact copied under another component's name does not verify either.
        std::fs::copy(
            store(dir.path(), 7).path("d1"),
            store(dir.path(), 7).path("d2"),
        )
        .unwrap();
        assert!(store(dir.path(), 7).read_verified("d2").is_err());
    }
}
