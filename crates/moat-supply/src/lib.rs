//! Supply chain: artifact signatures, SBOMs, OSV advisories with per-ecosystem version
//! matching, and scan reports.
//!
//! Pure library: nothing here touches the network. The CLI (`moat sign`, `moat scan`,
//! `moat advisories import`) and the node call into it.

pub mod ecosystem;
pub mod npm;
pub mod pep440;

pub use ecosystem::{EcoVersion, Ecosystem};
pub mod inspect;
pub mod lockfile;
pub mod osv;
pub mod report;
pub mod sbom;
pub mod severity;
pub mod sign;

pub use inspect::{ComponentInfo, inspect_component};
pub use osv::{AdvisoryDb, AdvisoryError, Finding, RawAdvisory, read_records};
pub use report::Report;
pub use sbom::{Package, Sbom, SbomError, SbomSource};
pub use severity::Severity;
pub use sign::{
    PublicKeyText, SecretKeyText, SignatureError, generate_keypair, public_key_id, sign, verify,
};
