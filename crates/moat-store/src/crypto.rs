//! Envelope encryption at rest: each record gets a fresh AES-256-GCM data key, which is
//! wrapped by the master key; the record's identity is bound as associated data, so a
//! ciphertext copied to another row (or another bucket, key or secret) fails to open.
//!
//! Sealed layout (all fixed-size except the tail):
//! `b"MS1"` ‖ master key id (8) ‖ wrap nonce (12) ‖ wrapped data key (32 + 16 tag)
//! ‖ data nonce (12) ‖ ciphertext + tag.
//! The key id names the master key that wrapped the data key, so a rotation that was
//! interrupted can tell which rows it already re-wrapped.
//!
//! Architecture invariant: plaintext of sealed values exists only in the store's open path
//! and in the capability that serves it; buffers here are zeroized.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

const MAGIC: &[u8; 3] = b"MS1";
const KEY_ID: usize = 8;
const NONCE: usize = 12;
const WRAPPED: usize = 32 + 16;
const HEADER: usize = MAGIC.len() + KEY_ID + NONCE + WRAPPED + NONCE;

/// Why a sealed value cannot be opened. Never says more than that.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was wrapped by another master key")]
    OtherKey,
    #[error("sealed value failed authentication (changed, or moved from another record)")]
    Forged,
}

/// Seals and opens values under one master key.
pub struct Sealer {
    master: Zeroizing<[u8; 32]>,
    key_id: [u8; KEY_ID],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(key id {})", hex::encode(self.key_id))
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails if the OS has no randomness source, where nothing is safe.
    if getrandom::fill(&mut b).is_err() {
        std::process::abort();
    }
    b
}

impl Sealer {
    pub fn new(master: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"moat master key id\0");
        h.update(master);
        let digest = h.finalize();
        let mut key_id = [0u8; KEY_ID];
        key_id.copy_from_slice(&digest[..KEY_ID]);
        Sealer {
            master: Zeroizing::new(master),
            key_id,
        }
    }

    /// The id recorded in every value this sealer wraps.
    pub fn key_id(&self) -> [u8; KEY_ID] {
        self.key_id
    }

    fn master_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.master[..]))
    }

    /// Seals `plaintext` for the record named by `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let dek = Zeroizing::new(random::<32>());
        let (wrap_nonce, data_nonce) = (random::<NONCE>(), random::<NONCE>());
        let wrapped = self.wrap(&dek, &wrap_nonce, aad);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek[..]));
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&data_nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&data_nonce);
        out.extend_from_slice(&ct);
        out
    }

    fn wrap(&self, dek: &[u8; 32], nonce: &[u8; NONCE], aad: &[u8]) -> Vec<u8> {
        let wrap_aad = [b"dek\0".as_slice(), aad].concat();
        self.master_cipher()
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: dek,
                    aad: &wrap_aad,
                },
            )
            .unwrap_or_default()
    }

    fn unwrap_dek(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>, SealError> {
        if sealed.len() < HEADER + 16 || &sealed[..3] != MAGIC {
            return Err(SealError::Malformed);
        }
        if sealed[3..3 + KEY_ID] != self.key_id {
            return Err(SealError::OtherKey);
        }
        let at = 3 + KEY_ID;
        let wrap_nonce = &sealed[at..at + NONCE];
        let wrapped = &sealed[at + NONCE..at + NONCE + WRAPPED];
        let wrap_aad = [b"dek\0".as_slice(), aad].concat();
        let mut dek = self
            .master_cipher()
            .decrypt(
                Nonce::from_slice(wrap_nonce),
                Payload {
                    msg: wrapped,
                    aad: &wrap_aad,
                },
            )
            .map_err(|_| SealError::Forged)?;
        let mut out = Zeroizing::new([0u8; 32]);
        if dek.len() != 32 {
            dek.zeroize();
            return Err(SealError::Malformed);
        }
        out.copy_from_slice(&dek);
        dek.zeroize();
        Ok(out)
    }

    /// Opens a value sealed for the record named by `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let dek = self.unwrap_dek(sealed, aad)?;
        let at = HEADER - NONCE;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&dek[..]));
        cipher
            .decrypt(
                Nonce::from_slice(&sealed[at..HEADER]),
                Payload {
                    msg: &sealed[HEADER..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Forged)
    }

    /// Whether `sealed` was wrapped by this sealer's master key.
    pub fn wrapped_by_me(&self, sealed: &[u8]) -> bool {
        sealed.len() >= 3 + KEY_ID && sealed[3..3 + KEY_ID] == self.key_id
    }

    /// Re-wraps the data key of a value sealed by `old` under this master key; the data
    /// and its ciphertext are untouched (master-key rotation).
    pub fn rewrap_from(
        &self,
        old: &Sealer,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let dek = old.unwrap_dek(sealed, aad)?;
        let wrap_nonce = random::<NONCE>();
        let wrapped = self.wrap(&dek, &wrap_nonce, aad);
        let mut out = sealed.to_vec();
        out[3..3 + KEY_ID].copy_from_slice(&self.key_id);
        out[3 + KEY_ID..3 + KEY_ID + NONCE].copy_from_slice(&wrap_nonce);
        out[3 + KEY_ID + NONCE..3 + KEY_ID + NONCE + WRAPPED].copy_from_slice(&wrapped);
        Ok(out)
    }
}

/// The keys a store seals and opens with: values are sealed under the primary; values
/// wrapped by any of the others (the previous master key, during a rotation) still open,
/// and [`Keyring::rewrap`] moves them to the primary.
#[derive(Debug)]
pub struct Keyring {
    primary: Sealer,
    others: Vec<Sealer>,
}

impl Keyring {
    pub fn new(primary: Sealer, others: Vec<Sealer>) -> Self {
        Keyring { primary, others }
    }

    pub fn primary_id(&self) -> [u8; KEY_ID] {
        self.primary.key_id
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.primary.seal(aad, plaintext)
    }

    fn wrapper(&self, sealed: &[u8]) -> Result<&Sealer, SealError> {
        std::iter::once(&self.primary)
            .chain(&self.others)
            .find(|s| s.wrapped_by_me(sealed))
            .ok_or(if sealed.len() < 3 + KEY_ID {
                SealError::Malformed
            } else {
                SealError::OtherKey
            })
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.wrapper(sealed)?.open(aad, sealed)
    }

    /// The value re-wrapped under the primary key, or `None` if it already is.
    pub fn rewrap(&self, aad: &[u8], sealed: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        if self.primary.wrapped_by_me(sealed) {
            return Ok(None);
        }
        let old = self.wrapper(sealed)?;
        self.primary.rewrap_from(old, aad, sealed).map(Some)
    }
}

/// The associated data naming a key-value entry.
pub fn kv_aad(bucket: &str, key: &str) -> Vec<u8> {
    let mut aad = b"kv\0".to_vec();
    aad.extend_from_slice(&(bucket.len() as u64).to_be_bytes());
    aad.extend_from_slice(bucket.as_bytes());
    aad.extend_from_slice(key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_for_their_own_record_and_key() {
        let s = Sealer::new([7; 32]);
        let sealed = s.seal(b"kv:a/x", b"hello");
        assert_eq!(&s.open(b"kv:a/x", &sealed).unwrap()[..], b"hello");
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        // Moved to another record.
        assert_eq!(s.open(b"kv:a/y", &sealed), Err(SealError::Forged));
        // Another master key.
        assert_eq!(
            Sealer::new([8; 32]).open(b"kv:a/x", &sealed),
            Err(SealError::OtherKey)
        );
        // Any changed byte.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(s.open(b"kv:a/x", &bad).is_err(), "byte {i}");
        }
        assert_eq!(s.open(b"kv:a/x", b"MS1"), Err(SealError::Malformed));
        // Fresh data key and nonces per seal.
        assert_ne!(s.seal(b"kv:a/x", b"hello"), sealed);
    }

    #[test]
    fn rewrapping_moves_a_value_to_the_new_master_key() {
        let (old, new) = (Sealer::new([1; 32]), Sealer::new([2; 32]));
        let sealed = old.seal(b"r", b"data");
        let moved = new.rewrap_from(&old, b"r", &sealed).unwrap();
        assert!(new.wrapped_by_me(&moved) && !old.wrapped_by_me(&moved));
        assert_eq!(&new.open(b"r", &moved).unwrap()[..], b"data");
        assert!(old.open(b"r", &moved).is_err());
        assert!(new.rewrap_from(&old, b"other", &sealed).is_err());
    }

    #[test]
    fn a_keyring_opens_old_values_and_moves_them_to_the_primary() {
        let old = Sealer::new([1; 32]);
        let sealed = old.seal(b"r", b"data");
        let ring = Keyring::new(Sealer::new([2; 32]), vec![Sealer::new([1; 32])]);
        assert_eq!(&ring.open(b"r", &sealed).unwrap()[..], b"data");
        let moved = ring.rewrap(b"r", &sealed).unwrap().unwrap();
        assert!(ring.rewrap(b"r", &moved).unwrap().is_none());
        let new_only = Keyring::new(Sealer::new([2; 32]), vec![]);
        assert_eq!(&new_only.open(b"r", &moved).unwrap()[..], b"data");
        assert_eq!(new_only.open(b"r", &sealed), Err(SealError::OtherKey));
    }

    #[test]
    fn kv_identities_do_not_collide() {
        assert_ne!(kv_aad("a", "bc"), kv_aad("ab", "c"));
    }
}
