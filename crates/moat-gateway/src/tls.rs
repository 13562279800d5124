//! TLS for both listeners (rustls): TLS 1.2 and 1.3 only, rustls's default suites (all
//! ECDHE with AEAD ciphers), ALPN for HTTP/2 and HTTP/1.1. The certificate can be replaced
//! while the node runs ([`CertStore::reload`], on SIGHUP): new handshakes use the new one.
//!
//! TLS 1.1 and older are not implemented by rustls at all, so an old client's hello is
//! refused whatever it offers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate currently served, replaceable at run time.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn load(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError(format!("cannot read certificate `{}`: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError(format!("certificate `{}`: {e}", cert.display())))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError(format!(
            "`{}` holds no certificate",
            cert.display()
        )));
    };
    let fingerprint = hex::encode(Sha256::digest(leaf.as_ref()));
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError(format!("cannot read private key `{}`: {e}", key.display())))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError(format!("private key `{}`: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError(format!(
            "`{}` and `{}` do not match: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok((Arc::new(certified), fingerprint))
}

impl CertStore {
    /// Loads a PEM certificate chain and its private key. Returns the store and the leaf's
    /// SHA-256 fingerprint (hex).
    pub fn open(cert: &Path, key: &Path) -> Result<(Arc<CertStore>, String), TlsError> {
        let (current, fingerprint) = load(cert, key)?;
        Ok((
            Arc::new(CertStore {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                current: RwLock::new(current),
            }),
            fingerprint,
        ))
    }

    /// Reads the files again; on any error the old certificate stays in use.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (next, fingerprint) = load(&self.cert, &self.key)?;
        if let Ok(mut c) = self.current.write() {
            *c = next;
        }
        Ok(fingerprint)
    }

    /// A server config that serves this store's certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses) and writes it
/// and its key (mode 0600) as PEM. Returns nothing; [`CertStore::open`] reads them.
pub fn write_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError(format!("cannot generate a certificate: {e}")))?;
    let write = |path: &Path, text: &str, mode: u32| -> Result<(), TlsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| TlsError(format!("cannot create `{}`: {e}", path.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| TlsError(format!("cannot write `{}`: {e}", path.display())))
    };
    write(key, &generated.signing_key.serialize_pem(), 0o600)?;
    write(cert, &generated.cert.pem(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_load_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        write_self_signed(&["localhost".into(), "127.0.0.1".into()], &cert, &key).unwrap();
        let (store, fp) = CertStore::open(&cert, &key).unwrap();
        assert_eq!(fp.len(), 64);
        store.server_config().unwrap();
        // A broken file on reload keeps the old certificate.
        std::fs::write(&cert, "garbage").unwrap();
        assert!(store.reload().is_err());
        assert!(store.current.read().unwrap().cert.len() == 1);
        // Refuses to overwrite.
        assert!(write_self_signed(&["localhost".into()], &cert, &key).is_err());
    }
}
