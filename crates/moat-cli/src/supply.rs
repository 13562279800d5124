//! Supply-chain commands that need no node: `moat scan`, `moat signing-key generate`,
//! `moat sign` and `moat verify-signature`, thin layers over `moat-supply`.
//!
//! Failures are errors (exit 1, reason on stderr), as in the rest of the CLI; a scan whose
//! findings reach `--fail-on` prints its report first, then fails. Usage errors are clap's
//! (exit 2), which is why `--fail-on` without `--advisories` is one: a gate that cannot
//! fail is a misconfiguration, not a pass.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Subcommand, ValueEnum};
use moat_supply::sbom::Package;
use moat_supply::{
    AdvisoryDb, ComponentInfo, PublicKeyText, Report, Sbom, SbomSource, SecretKeyText, Severity,
    SignatureError,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::Output;

/// Default file prefix of `signing-key generate`, and so the default `sign --key`.
const DEFAULT_PREFIX: &str = "moat-signing";

#[derive(Subcommand)]
pub enum SupplyCommand {
    /// Scan a component, a manifest or a function directory for dependencies with known
    /// vulnerabilities (needs no node).
    Scan(ScanArgs),
    /// Keys for signing components.
    #[command(name = "signing-key")]
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// Sign a component: writes a detached minisign signature (`minisign -V` checks it too).
    Sign {
        /// The `.wasm` component.
        component: PathBuf,
        /// The secret key file (from `moat signing-key generate`).
        #[arg(long, value_name = "FILE", default_value = "moat-signing.key")]
        key: PathBuf,
        /// Where to write the signature (default: COMPONENT.minisig).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a component's signature against public keys, locally (for CI pipelines).
    #[command(name = "verify-signature")]
    VerifySignature {
        /// The `.wasm` component.
        component: PathBuf,
        /// A trusted public key file (minisign format); repeatable.
        #[arg(long = "pub", value_name = "FILE", required = true)]
        public_keys: Vec<PathBuf>,
        /// The signature (default: COMPONENT.minisig).
        #[arg(long, value_name = "FILE")]
        sig: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum SigningKeyCommand {
    /// Create a key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub (public). Existing
    /// files are never overwritten.
    Generate {
        /// File name prefix.
        #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ScanArgs {
    /// A component (`.wasm`), a manifest (`moat.toml`), or a directory holding either.
    path: PathBuf,
    /// OSV advisories: a directory of OSV JSON records, an OSV `all.zip` export, or one
    /// `.json` record. Without it, only the bill of materials is reported.
    #[arg(long, value_name = "DIR_OR_ZIP")]
    advisories: Option<PathBuf>,
    /// Report format (default: `table`, or `json` with `--output json`).
    #[arg(long, value_enum)]
    format: Option<ScanFormat>,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, value_name = "SEVERITY", requires = "advisories")]
    fail_on: Option<FailOn>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Table,
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    Low,
    Medium,
    High,
    Critical,
}

impl From<FailOn> for Severity {
    fn from(f: FailOn) -> Severity {
        match f {
            FailOn::Low => Severity::Low,
            FailOn::Medium => Severity::Medium,
            FailOn::High => Severity::High,
            FailOn::Critical => Severity::Critical,
        }
    }
}

/// Runs one supply-chain command. Synchronous: nothing here talks to a node.
pub fn run(command: SupplyCommand, out: Output) -> anyhow::Result<()> {
    match command {
        SupplyCommand::Scan(args) => scan(args, out),
        SupplyCommand::SigningKey {
            command: SigningKeyCommand::Generate { out: prefix },
        } => generate(&prefix, out),
        SupplyCommand::Sign {
            component,
            key,
            out: sig,
        } => sign(&component, &key, sig, out),
        SupplyCommand::VerifySignature {
            component,
            public_keys,
            sig,
        } => verify(&component, &public_keys, sig, out),
    }
}

fn print(out: Output, value: &Value, text: impl FnOnce() -> String) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Text => println!("{}", text()),
    }
}

// ---------------------------------------------------------------------------------------
// moat scan

/// What `moat scan PATH` looks at, once PATH is resolved.
struct Target {
    /// How the report names the scanned artifact (the component, else PATH).
    name: String,
    /// The component's bytes, when there is one.
    component: Option<Vec<u8>>,
    /// An SBOM file named by the manifest's `function.sbom`.
    sbom_file: Option<PathBuf>,
    /// Where SBOM files and lockfiles are looked for.
    dir: PathBuf,
}

/// The parts of `moat.toml` a scan needs. Deliberately loose (other keys are ignored):
/// a scan reports on dependencies, and `moat deploy` is where a manifest is validated.
#[derive(Deserialize)]
struct ManifestFiles {
    function: FunctionFiles,
}

#[derive(Deserialize)]
struct FunctionFiles {
    component: String,
    sbom: Option<String>,
}

fn resolve_target(path: &Path) -> anyhow::Result<Target> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if meta.is_dir() {
        let manifest = path.join("moat.toml");
        if manifest.is_file() {
            return manifest_target(&manifest);
        }
        let mut wasm: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list `{}`", path.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        wasm.sort();
        return match wasm.as_slice() {
            [] => Ok(Target {
                name: path.display().to_string(),
                component: None,
                sbom_file: None,
                dir: path.to_path_buf(),
            }),
            [one] => component_target(one),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| format!("`{}`", n.to_string_lossy()))
                    .collect();
                bail!(
                    "`{}` holds several components ({}); name one, or add a moat.toml",
                    path.display(),
                    names.join(", ")
                )
            }
        };
    }
    if path.extension().is_some_and(|e| e == "toml") {
        manifest_target(path)
    } else {
        component_target(path)
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn component_target(path: &Path) -> anyhow::Result<Target> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(Target {
        name: path.display().to_string(),
        component: Some(bytes),
        sbom_file: None,
        dir: parent_dir(path),
    })
}

fn manifest_target(manifest: &Path) -> anyhow::Result<Target> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read `{}`", manifest.display()))?;
    let files: ManifestFiles = toml::from_str(&text)
        .with_context(|| format!("`{}` is not a valid manifest", manifest.display()))?;
    let dir = parent_dir(manifest);
    let component_path = dir.join(&files.function.component);
    let component = std::fs::read(&component_path).with_context(|| {
        format!(
            "cannot read the component `{}` named by `function.component` in `{}` (build it first)",
            component_path.display(),
            manifest.display()
        )
    })?;
    let sbom_file = files.function.sbom.map(|s| dir.join(s));
    if let Some(f) = &sbom_file
        && !f.is_file()
    {
        bail!(
            "the SBOM `{}` named by `function.sbom` in `{}` does not exist",
            f.display(),
            manifest.display()
        );
    }
    Ok(Target {
        name: component_path.display().to_string(),
        component: Some(component),
        sbom_file,
        dir,
    })
}

fn scan(args: ScanArgs, out: Output) -> anyhow::Result<()> {
    let format = args.format.unwrap_or(match out {
        Output::Json => ScanFormat::Json,
        Output::Text => ScanFormat::Table,
    });
    let target = resolve_target(&args.path)?;
    let info = match &target.component {
        Some(bytes) => Some(moat_supply::inspect_component(bytes).with_context(|| {
            format!("`{}` is not a WebAssembly component or module", target.name)
        })?),
        None => None,
    };
    let component = target.component.as_deref();
    let (sbom, source) = match &target.sbom_file {
        Some(file) => Sbom::resolve(component, Some(file), &[]),
        None => Sbom::discover(component, &target.dir),
    }
    .with_context(|| format!("cannot build the bill of materials of `{}`", target.name))?;
    let db = match &args.advisories {
        Some(path) => Some(AdvisoryDb::load(path).context("cannot load the advisories")?),
        None => None,
    };
    let findings = db.as_ref().map(|db| db.scan(&sbom)).unwrap_or_default();
    let report = Report::new(&target.name, source.clone(), &sbom, findings);
    let fail_on = args.fail_on.map(Severity::from);
    let failed = fail_on.is_some_and(|t| report.blocks(t));

    match format {
        ScanFormat::Sarif => {
            if db.is_none() {
                eprintln!(
                    "note: no advisory database given (`--advisories`); no package was checked"
                );
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&report.to_sarif()).unwrap_or_default()
            );
        }
        ScanFormat::Json => {
            let mut value = report.to_json();
            value["component"] = json!(info);
            value["sbom"] = json!({
                "source": source,
                "packages": sbom.components.iter().map(package_json).collect::<Vec<_>>(),
            });
            value["advisories"] = match (&db, &args.advisories) {
                (Some(db), Some(path)) => json!({
                    "path": path.display().to_string(),
                    "count": db.len(),
                }),
                _ => Value::Null,
            };
            value["max_severity"] = json!(report.max_severity());
            value["fail_on"] = json!(fail_on);
            value["failed"] = json!(failed);
            print(Output::Json, &value, String::new);
        }
        ScanFormat::Table => {
            let advisories = db.as_ref().zip(args.advisories.as_deref());
            println!("{}", scan_table(&report, info.as_ref(), &sbom, advisories));
        }
    }
    if failed && let Some(threshold) = fail_on {
        let n = report
            .findings
            .iter()
            .filter(|f| f.severity >= threshold)
            .count();
        bail!(
            "{n} finding(s) at or above `{threshold}` severity in `{}` (--fail-on {threshold})",
            report.target
        );
    }
    Ok(())
}

fn package_json(p: &Package) -> Value {
    json!({
        "ecosystem": p.ecosystem.osv_name(),
        "name": p.name,
        "version": p.version,
        "purl": p.purl(),
    })
}

fn describe_source(source: &SbomSource) -> String {
    let quoted = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match source {
        SbomSource::CargoAuditable => "the component's `cargo auditable` data".into(),
        SbomSource::SbomFile(f) => format!("SBOM file `{f}`"),
        SbomSource::Lockfiles(files) => format!("lockfile(s) {}", quoted(files)),
        SbomSource::None => {
            "nothing: no `cargo auditable` data, SBOM file or lockfile was found".into()
        }
    }
}

fn scan_table(
    report: &Report,
    info: Option<&ComponentInfo>,
    sbom: &Sbom,
    advisories: Option<(&AdvisoryDb, &Path)>,
) -> String {
    let mut rows: Vec<(&str, String)> = vec![("target", report.target.clone())];
    if let Some(info) = info {
        rows.push(("kind", format!("{}, {} bytes", info.kind, info.size)));
        let list = |items: &[String]| match items {
            [] => "-".to_string(),
            _ => items.join("\n"),
        };
        rows.push(("imports", list(&info.imports)));
        rows.push(("exports", list(&info.exports)));
        let producers: Vec<String> = info
            .producers
            .iter()
            .map(|p| format!("{}: {} {}", p.field, p.name, p.version))
            .collect();
        rows.push(("producers", list(&producers)));
    }
    let mut by_ecosystem: Vec<(String, usize)> = Vec::new();
    for p in &sbom.components {
        let name = p.ecosystem.to_string();
        match by_ecosystem.iter_mut().find(|(e, _)| *e == name) {
            Some((_, n)) => *n += 1,
            None => by_ecosystem.push((name, 1)),
        }
    }
    let counts: Vec<String> = by_ecosystem
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!(" ({})", counts.join(", "))
    };
    rows.push((
        "packages",
        format!(
            "{}{counts} from {}",
            sbom.components.len(),
            describe_source(&report.source)
        ),
    ));
    rows.push((
        "advisories",
        match advisories {
            Some((db, path)) => format!("{} loaded from `{}`", db.len(), path.display()),
            None => "none given (`--advisories DIR_OR_ZIP`); no package was checked".into(),
        },
    ));
    let mut text = String::new();
    for (key, value) in rows {
        for (i, line) in value.lines().enumerate() {
            let key = if i == 0 { key } else { "" };
            text.push_str(&format!("{key:<11} {line}\n"));
        }
    }
    text.push('\n');
    if advisories.is_some() {
        text.push_str(&report.to_text());
    } else {
        for u in &report.unpinned {
            text.push_str(&format!(
                "unpinned: {}:{}: `{}` names no exact version\n",
                u.file, u.line, u.requirement
            ));
        }
    }
    text.trim_end().to_string()
}

// ---------------------------------------------------------------------------------------
// Signing

/// `PREFIX` + `suffix`, keeping any dots already in the prefix.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The key id of a minisign public key (`RW…` line), as minisign prints it: the 8-byte
/// key number after the `Ed` algorithm tag, little-endian, upper-case hex.
fn key_id(public: &PublicKeyText) -> Option<String> {
    let line = public
        .0
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    if bytes.len() != 42 || bytes.get(..2) != Some(b"Ed".as_slice()) {
        return None;
    }
    let keynum: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(keynum)))
}

/// Creates `path`, refusing to replace anything already there (`O_EXCL`: not even a
/// dangling symlink), with `mode` (before the umask).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

fn generate(prefix: &Path, out: Output) -> anyhow::Result<()> {
    let secret_path = with_suffix(prefix, ".key");
    let public_path = with_suffix(prefix, ".pub");
    for p in [&secret_path, &public_path] {
        if p.symlink_metadata().is_ok() {
            bail!(
                "`{}` already exists; not overwriting it (choose another `--out` prefix)",
                p.display()
            );
        }
    }
    let (secret, public) = moat_supply::generate_keypair().context("cannot generate a key pair")?;
    write_new(&secret_path, secret.0.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public_path, public.0.as_bytes(), 0o644) {
        // Leave no secret behind whose public half the user never saw.
        let _ = std::fs::remove_file(&secret_path);
        return Err(e);
    }
    let id = key_id(&public).unwrap_or_default();
    let value = json!({
        "key_id": id,
        "public_key": public.0.trim_end(),
        "secret_key_file": secret_path.display().to_string(),
        "public_key_file": public_path.display().to_string(),
    });
    print(out, &value, || {
        format!(
            "{}\n\nkey id:     {id}\nsecret key: {} (mode 0600; keep it private, e.g. as a CI secret)\npublic key: {} (give it to whoever verifies)",
            public.0.trim_end(),
            secret_path.display(),
            public_path.display()
        )
    });
    Ok(())
}

fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the component `{}`", path.display()))
}

fn sign(component: &Path, key: &Path, sig: Option<PathBuf>, out: Output) -> anyhow::Result<()> {
    let bytes = read_component(component)?;
    // Signing vouches for an artifact: refuse to sign something that is not one (a
    // manifest, a source file) by mistake.
    moat_supply::inspect_component(&bytes).with_context(|| {
        format!(
            "`{}` is not a WebAssembly component or module",
            component.display()
        )
    })?;
    let text = std::fs::read_to_string(key).with_context(|| {
        format!(
            "cannot read the signing key `{}` (create one with `moat signing-key generate`)",
            key.display()
        )
    })?;
    if let Ok(meta) = std::fs::metadata(key) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: the signing key `{}` is readable by other users (mode {mode:o}); run `chmod 600` on it",
                key.display()
            );
        }
    }
    let secret = SecretKeyText(text);
    let signature = moat_supply::sign(&bytes, &secret)
        .with_context(|| format!("cannot sign with `{}`", key.display()))?;
    let public = moat_supply::sign::public_key_of(&secret)
        .with_context(|| format!("cannot sign with `{}`", key.display()))?;
    let id = key_id(&public).unwrap_or_default();
    let sig_path = sig.unwrap_or_else(|| with_suffix(component, ".minisig"));
    std::fs::write(&sig_path, &signature)
        .with_context(|| format!("cannot write the signature `{}`", sig_path.display()))?;
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let value = json!({
        "component": component.display().to_string(),
        "sha256": digest,
        "key_id": id,
        "signature": sig_path.display().to_string(),
    });
    print(out, &value, || {
        format!(
            "signed `{}` (sha256:{}) with key {id}; signature written to `{}`",
            component.display(),
            &digest[..12],
            sig_path.display()
        )
    });
    Ok(())
}

fn verify(
    component: &Path,
    public_keys: &[PathBuf],
    sig: Option<PathBuf>,
    out: Output,
) -> anyhow::Result<()> {
    let bytes = read_component(component)?;
    let mut trusted = Vec::new();
    for path in public_keys {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key `{}`", path.display()))?;
        trusted.push((path.display().to_string(), PublicKeyText(text)));
    }
    let sig_path = sig.unwrap_or_else(|| with_suffix(component, ".minisig"));
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the signature `{}`", sig_path.display()));
        }
    };
    let signer = match moat_supply::verify(&bytes, signature.as_deref(), &trusted) {
        Ok(signer) => signer,
        Err(SignatureError::Unsigned) => bail!(
            "`{}` is not signed: `{}` is missing or empty",
            component.display(),
            sig_path.display()
        ),
        Err(e @ SignatureError::UntrustedKey { .. }) => {
            let ids: Vec<String> = trusted
                .iter()
                .map(|(name, key)| {
                    format!("{} (`{name}`)", key_id(key).unwrap_or_else(|| "?".into()))
                })
                .collect();
            bail!(
                "signature check of `{}` failed: {e}; trusted: {}",
                component.display(),
                ids.join(", ")
            )
        }
        Err(e) => bail!("signature check of `{}` failed: {e}", component.display()),
    };
    let key = trusted
        .iter()
        .find(|(name, _)| *name == signer)
        .and_then(|(_, key)| key_id(key))
        .unwrap_or_default();
    let comment = signature
        .as_deref()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("trusted comment: "))
        .unwrap_or_default()
        .to_string();
    let value = json!({
        "component": component.display().to_string(),
        "signature": sig_path.display().to_string(),
        "valid": true,
        "key_id": key,
        "public_key_file": signer,
        "trusted_comment": comment,
    });
    print(out, &value, || {
        format!(
            "good signature of `{}` by key {key} (`{signer}`)\ntrusted comment: {comment}",
            component.display()
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_matches_the_minisign_comment() {
        let (_, public) = moat_supply::generate_keypair().unwrap();
        let id = key_id(&public).unwrap();
        // minisign writes the same id into the public key's untrusted comment.
        assert!(
            public.0.lines().next().unwrap().ends_with(&id),
            "{public:?}"
        );
        assert_eq!(key_id(&PublicKeyText("RWQ".into())), None);
    }

    #[test]
    fn suffix_keeps_dots() {
        assert_eq!(
            with_suffix(Path::new("ci/release.v2"), ".key"),
            PathBuf::from("ci/release.v2.key")
        );
    }
}
