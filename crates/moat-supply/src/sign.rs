//! Artifact signatures in minisign's format (Ed25519), so that `minisign -V` can check a
//! Moat signature and Moat can check one made by `minisign -S`.
//!
//! **What is signed:** the component's bytes themselves, in minisign's default pre-hashed
//! mode (Ed25519 over the BLAKE2b-512 of the file; algorithm `ED`). The trusted comment,
//! which minisign also signs, records `moat component sha256:<hex> size:<bytes>` so a
//! reader sees which artifact a signature is for. Hence
//! `minisign -Vm orders.wasm -x orders.wasm.minisig -p key.pub` verifies a Moat signature.
//!
//! **Secret keys** are written unencrypted (minisign's key box, no password): Moat signs
//! from CI and scripts where no one types a password. Keep the file private (mode 0600)
//! or in a secret store; the minisign tool itself may ask for a password for such a file.

use std::io::Cursor;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A minisign secret key file (`untrusted comment: …` line, then the key, base64).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKeyText(pub String);

impl std::fmt::Debug for SecretKeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKeyText(<redacted>)")
    }
}

/// A minisign public key file, or just its base64 line (`RW…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyText(pub String);

/// Why a signature was not accepted, or a key was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature was given.
    #[error("the component is not signed")]
    Unsigned,
    /// The signature text is not a minisign signature.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// The signature is well formed but made by a key that is not trusted.
    #[error("signed by key `{key_id}`, which is not a trusted key")]
    UntrustedKey {
        /// The signing key's id (hex, as minisign prints it).
        key_id: String,
    },
    /// The signature does not match the component (it was changed after signing) or the
    /// signed comment was altered.
    #[error(
        "bad signature: the component or its signed comment does not match the signature of trusted key `{signer}`"
    )]
    BadSignature {
        /// The trusted key's name.
        signer: String,
    },
    /// A key could not be read.
    #[error("invalid {which} key: {message}")]
    InvalidKey {
        /// `secret`, or the trusted key's name.
        which: String,
        /// What was wrong.
        message: String,
    },
}

fn key_id(keynum: &[u8]) -> String {
    // minisign prints the 8-byte key id as a little-endian u64 in upper-case hex.
    let mut bytes = [0u8; 8];
    for (dst, src) in bytes.iter_mut().zip(keynum) {
        *dst = *src;
    }
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// The key line of a minisign key file: the last non-empty line that is not a comment.
fn key_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

fn parse_public(name: &str, text: &PublicKeyText) -> Result<minisign::PublicKey, SignatureError> {
    let invalid = |message: String| SignatureError::InvalidKey {
        which: format!("trusted `{name}`"),
        message,
    };
    let line = key_line(&text.0).ok_or_else(|| invalid("empty key".into()))?;
    minisign::PublicKey::from_base64(line).map_err(|e| invalid(e.to_string()))
}

/// Checks a public key and returns its id (16 hex digits, as minisign prints it).
pub fn public_key_id(name: &str, key: &PublicKeyText) -> Result<String, SignatureError> {
    Ok(key_id(parse_public(name, key)?.keynum()))
}

/// Generates a new Ed25519 key pair; the secret key is unencrypted (see the module docs).
pub fn generate_keypair() -> Result<(SecretKeyText, PublicKeyText), SignatureError> {
    let err = |e: minisign::PError| SignatureError::InvalidKey {
        which: "new".into(),
        message: e.to_string(),
    };
    let kp = minisign::KeyPair::generate_unencrypted_keypair().map_err(err)?;
    let id = key_id(kp.pk.keynum());
    let sk = kp
        .sk
        .to_box(Some(&format!("moat secret key {id} (unencrypted)")))
        .map_err(err)?
        .into_string();
    let pk = kp.pk.to_box().map_err(err)?.into_string();
    Ok((SecretKeyText(sk), PublicKeyText(pk)))
}

/// The public key of a secret key.
pub fn public_key_of(secret: &SecretKeyText) -> Result<PublicKeyText, SignatureError> {
    let sk = parse_secret(secret)?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| SignatureError::InvalidKey {
        which: "secret".into(),
        message: e.to_string(),
    })?;
    let text = pk.to_box().map_err(|e| SignatureError::InvalidKey {
        which: "secret".into(),
        message: e.to_string(),
    })?;
    Ok(PublicKeyText(text.into_string()))
}

fn parse_secret(secret: &SecretKeyText) -> Result<minisign::SecretKey, SignatureError> {
    let invalid = |message: String| SignatureError::InvalidKey {
        which: "secret".into(),
        message,
    };
    let line = key_line(&secret.0).ok_or_else(|| invalid("empty key".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|e| invalid(format!("not base64: {e}")))?;
    minisign::SecretKey::from_bytes(&bytes).map_err(|e| invalid(e.to_string()))
}

/// The trusted comment Moat puts in a signature of `component`.
pub fn trusted_comment(component: &[u8]) -> String {
    format!(
        "moat component sha256:{} size:{}",
        hex::encode(Sha256::digest(component)),
        component.len()
    )
}

/// Signs a component; returns the `.minisig` text.
pub fn sign(component: &[u8], secret: &SecretKeyText) -> Result<String, SignatureError> {
    let sk = parse_secret(secret)?;
    let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| SignatureError::InvalidKey {
        which: "secret".into(),
        message: e.to_string(),
    })?;
    let comment = trusted_comment(component);
    let sig = minisign::sign(
        Some(&pk),
        &sk,
        Cursor::new(component),
        Some(&comment),
        Some(&format!("signature from moat key {}", key_id(pk.keynum()))),
    )
    .map_err(|e| SignatureError::InvalidKey {
        which: "secret".into(),
        message: e.to_string(),
    })?;
    Ok(sig.into_string())
}

/// Verifies `signature` over `component` against the trusted keys (name, key); returns
/// the name of the key that signed it. Legacy (non-prehashed) signatures are accepted
/// only as minisign does by default: not at all.
pub fn verify(
    component: &[u8],
    signature: Option<&str>,
    trusted: &[(String, PublicKeyText)],
) -> Result<String, SignatureError> {
    let text = match signature {
        Some(s) if !s.trim().is_empty() => s,
        _ => return Err(SignatureError::Unsigned),
    };
    let sig = minisign::SignatureBox::from_string(text)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let keynum = sig.keynum().to_vec();
    for (name, key) in trusted {
        let pk = parse_public(name, key)?;
        if pk.keynum() != keynum.as_slice() {
            continue;
        }
        return minisign::verify(&pk, &sig, Cursor::new(component), true, false, false)
            .map(|()| name.clone())
            .map_err(|_| SignatureError::BadSignature {
                signer: name.clone(),
            });
    }
    Err(SignatureError::UntrustedKey {
        key_id: key_id(&keynum),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0 pretend component bytes";

    fn trusted(name: &str, pk: &PublicKeyText) -> Vec<(String, PublicKeyText)> {
        vec![(name.to_string(), pk.clone())]
    }

    #[test]
    fn sign_then_verify() {
        let (sk, pk) = generate_keypair().unwrap();
        assert_eq!(public_key_of(&sk).unwrap(), pk);
        let sig = sign(COMPONENT, &sk).unwrap();
        assert!(sig.contains(&trusted_comment(COMPONENT)));
        assert_eq!(
            verify(COMPONENT, Some(&sig), &trusted("ci", &pk)).unwrap(),
            "ci"
        );
        // The bare base64 line of a public key is accepted too.
        let bare = PublicKeyText(key_line(&pk.0).unwrap().to_string());
        assert_eq!(
            verify(COMPONENT, Some(&sig), &trusted("ci", &bare)).unwrap(),
            "ci"
        );
    }

    #[test]
    fn one_byte_change_is_a_bad_signature() {
        let (sk, pk) = generate_keypair().unwrap();
        let sig = sign(COMPONENT, &sk).unwrap();
        let mut tampered = COMPONENT.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify(&tampered, Some(&sig), &trusted("ci", &pk)),
            Err(SignatureError::BadSignature {
                signer: "ci".into()
            })
        );
    }

    #[test]
    fn altered_trusted_comment_is_a_bad_signature() {
        let (sk, pk) = generate_keypair().unwrap();
        let sig = sign(COMPONENT, &sk).unwrap();
        let forged = sig.replace("moat component", "moat c0mponent");
        assert!(matches!(
            verify(COMPONENT, Some(&forged), &trusted("ci", &pk)),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn unsigned_malformed_and_untrusted() {
        let (sk, _) = generate_keypair().unwrap();
        let (_, other) = generate_keypair().unwrap();
        assert_eq!(verify(COMPONENT, None, &[]), Err(SignatureError::Unsigned));
        assert_eq!(
            verify(COMPONENT, Some("  "), &[]),
            Err(SignatureError::Unsigned)
        );
        assert!(matches!(
            verify(COMPONENT, Some("not a signature"), &trusted("x", &other)),
            Err(SignatureError::Malformed(_))
        ));
        let sig = sign(COMPONENT, &sk).unwrap();
        let err = verify(COMPONENT, Some(&sig), &trusted("other", &other)).unwrap_err();
        assert!(matches!(err, SignatureError::UntrustedKey { .. }), "{err}");
        assert!(matches!(
            verify(COMPONENT, Some(&sig), &[]),
            Err(SignatureError::UntrustedKey { .. })
        ));
    }

    #[test]
    fn public_key_ids_are_minisigns() {
        let (sk, pk) = generate_keypair().unwrap();
        let id = public_key_id("ci", &pk).unwrap();
        assert_eq!(id.len(), 16);
        assert!(sk.0.contains(&id), "the key box names its id");
        assert!(public_key_id("ci", &PublicKeyText("RWnot a key".into())).is_err());
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let (sk, _) = generate_keypair().unwrap();
        assert_eq!(format!("{sk:?}"), "SecretKeyText(<redacted>)");
    }
}
