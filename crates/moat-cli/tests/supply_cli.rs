//! The supply-chain commands as a user runs them, no node needed: `moat scan` of a
//! component, a manifest and a directory against the OSV fixture of `moat-supply`;
//! `moat signing-key generate`, `moat sign` and `moat verify-signature`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MOAT: &str = env!("CARGO_BIN_EXE_moat");

/// The advisory fixture shared with `moat-supply`'s own tests (9 real OSV records).
fn osv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../moat-supply/tests/data/osv")
}

fn sarif_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../moat-supply/tests/data/sarif-schema-2.1.0.json")
}

/// Runs `moat` in `dir`, with no environment that could point it at a node or a key.
fn moat(dir: &Path, args: &[&str]) -> Output {
    Command::new(MOAT)
        .args(args)
        .current_dir(dir)
        .env_remove("MOAT_TOKEN")
        .env_remove("MOAT_ADMIN_URL")
        .env_remove("MOAT_DATA_DIR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

// --- A component with `cargo auditable` data -------------------------------------------

/// A zlib stream of one stored (uncompressed) deflate block: what `cargo auditable`
/// writes, minus the compression, which the reader does not care about.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x78, 0x01, 0x01];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend(((b << 16) | a).to_be_bytes());
    out
}

fn name(s: &str) -> Vec<u8> {
    let mut v = vec![u8::try_from(s.len()).unwrap()];
    v.extend(s.as_bytes());
    v
}

fn custom_section(section: &str, data: &[u8]) -> Vec<u8> {
    let mut payload = name(section);
    payload.extend(data);
    let mut out = vec![0u8];
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(payload);
    out
}

/// regex 1.5.4 has GHSA-m5pq-gvj9-9vr8 (high); the root, path and git crates are not
/// from crates.io and are not checked.
const AUDIT: &str = r#"{"packages":[
    {"name":"orders","version":"0.1.0","source":"local","root":true,"dependencies":[1,2]},
    {"name":"regex","version":"1.5.4","source":"crates.io"},
    {"name":"forked","version":"0.1.0","source":"git"}]}"#;

/// A component with an import, an export, a `producers` section and `cargo auditable`
/// data, as `cargo auditable build --target wasm32-wasip2` leaves one.
fn audited_component() -> Vec<u8> {
    let mut bytes = wat::parse_str(
        r#"(component
            (import "wasi:cli/environment@0.2.0" (instance $env))
            (export "wasi:http/incoming-handler@0.2.0" (instance $env)))"#,
    )
    .unwrap();
    bytes.extend(custom_section(".dep-v0", &zlib_stored(AUDIT.as_bytes())));
    let mut producers = vec![1u8]; // one field
    producers.extend(name("language"));
    producers.push(1);
    producers.extend(name("Rust"));
    producers.extend(name("1.95.0"));
    bytes.extend(custom_section("producers", &producers));
    bytes
}

fn plain_component() -> Vec<u8> {
    wat::parse_str("(component)").unwrap()
}

// --- moat scan --------------------------------------------------------------------------

#[test]
fn scan_of_an_audited_component_finds_the_known_advisory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.wasm"), audited_component()).unwrap();
    let osv = osv();
    let osv = osv.to_str().unwrap();

    let o = moat(dir.path(), &["scan", "orders.wasm", "--advisories", osv]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    for want in [
        "GHSA-m5pq-gvj9-9vr8",
        "high",
        "1.5.5",
        "`cargo auditable`",
        "wasi:cli/environment@0.2.0",
        "wasi:http/incoming-handler@0.2.0",
        "language: Rust 1.95.0",
        "1 package(s) checked, 1 finding(s)",
        "9 loaded from",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("forked"), "{text}");

    // The gate: the worst finding is high.
    let o = moat(
        dir.path(),
        &[
            "scan",
            "orders.wasm",
            "--advisories",
            osv,
            "--fail-on",
            "high",
        ],
    );
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("GHSA-m5pq-gvj9-9vr8"),
        "the report is still printed"
    );
    assert!(stderr(&o).contains("at or above `high`"), "{}", stderr(&o));
    for (threshold, code) in [("low", 1), ("medium", 1), ("critical", 0)] {
        let o = moat(
            dir.path(),
            &[
                "scan",
                "orders.wasm",
                "--advisories",
                osv,
                "--fail-on",
                threshold,
            ],
        );
        assert_exit(&o, code);
    }

    // JSON, by `--format` or by the global `--output json`.
    for args in [
        &[
            "scan",
            "orders.wasm",
            "--advisories",
            osv,
            "--format",
            "json",
        ][..],
        &[
            "scan",
            "orders.wasm",
            "--advisories",
            osv,
            "--output",
            "json",
        ][..],
    ] {
        let o = moat(dir.path(), args);
        assert_exit(&o, 0);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["findings"][0]["id"], "GHSA-m5pq-gvj9-9vr8");
        assert_eq!(v["findings"][0]["fixed"], "1.5.5");
        assert_eq!(v["max_severity"], "high");
        assert_eq!(v["sbom"]["source"], "cargo-auditable");
        assert_eq!(v["sbom"]["packages"][0]["purl"], "pkg:cargo/regex@1.5.4");
        assert_eq!(v["component"]["kind"], "component");
        assert_eq!(
            v["component"]["exports"][0],
            "wasi:http/incoming-handler@0.2.0"
        );
        assert_eq!(v["advisories"]["count"], 9);
        assert_eq!(v["failed"], false);
    }
}

#[test]
fn sarif_output_validates_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.wasm"), audited_component()).unwrap();
    let osv = osv();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(sarif_schema()).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();

    let o = moat(
        dir.path(),
        &[
            "scan",
            "orders.wasm",
            "--advisories",
            osv.to_str().unwrap(),
            "--format",
            "sarif",
        ],
    );
    assert_exit(&o, 0);
    let sarif: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "GHSA-m5pq-gvj9-9vr8");
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "orders.wasm"
    );

    // Without advisories: still valid SARIF (no results), and a note on stderr.
    let o = moat(dir.path(), &["scan", "orders.wasm", "--format", "sarif"]);
    assert_exit(&o, 0);
    let sarif: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(validator.is_valid(&sarif));
    assert!(
        stderr(&o).contains("no advisory database"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn scan_without_advisories_reports_the_bill_of_materials_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.wasm"), audited_component()).unwrap();
    let o = moat(dir.path(), &["scan", "orders.wasm"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains("1 (crates.io 1) from the component's `cargo auditable` data"),
        "{text}"
    );
    assert!(text.contains("none given"), "{text}");
    assert!(!text.contains("GHSA"), "{text}");

    let o = moat(dir.path(), &["scan", "orders.wasm", "--output", "json"]);
    assert_exit(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["advisories"], Value::Null);
    assert_eq!(v["sbom"]["packages"].as_array().unwrap().len(), 1);

    // A gate without a database could never fail: bad usage, not a pass.
    let o = moat(dir.path(), &["scan", "orders.wasm", "--fail-on", "high"]);
    assert_exit(&o, 2);
}

#[test]
fn scan_of_a_function_directory_reads_the_lockfile_beside_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("fn");
    std::fs::create_dir_all(f.join("dist")).unwrap();
    std::fs::write(f.join("dist/app.wasm"), plain_component()).unwrap();
    std::fs::write(
        f.join("moat.toml"),
        "[function]\nname = \"app\"\ncomponent = \"dist/app.wasm\"\nroute = \"/app\"\n",
    )
    .unwrap();
    std::fs::write(
        f.join("package-lock.json"),
        r#"{"name":"app","lockfileVersion":3,"packages":{
            "":{"name":"app","version":"1.0.0"},
            "node_modules/lodash":{"version":"4.17.11"},
            "node_modules/left-pad":{"version":"1.3.0"}}}"#,
    )
    .unwrap();
    let osv = osv();
    let osv = osv.to_str().unwrap();

    // The directory, and the manifest itself, scan the same component and lockfile.
    for target in ["fn", "fn/moat.toml"] {
        let o = moat(
            dir.path(),
            &["scan", target, "--advisories", osv, "--output", "json"],
        );
        assert_exit(&o, 0);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["target"], "fn/dist/app.wasm", "{v}");
        assert_eq!(v["findings"][0]["id"], "GHSA-jf85-cpcp-j695");
        assert_eq!(v["findings"][0]["package"], "lodash");
        assert_eq!(v["max_severity"], "critical");
        assert_eq!(v["packages"], 2);
        assert_eq!(v["sbom"]["source"]["lockfiles"][0], "fn/package-lock.json");
    }
    let o = moat(
        dir.path(),
        &["scan", "fn", "--advisories", osv, "--fail-on", "critical"],
    );
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("lockfile(s) `fn/package-lock.json`"),
        "{}",
        stdout(&o)
    );

    // `function.sbom` names an SBOM file, which wins over the lockfile.
    std::fs::write(
        f.join("app.cdx.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"type":"library","name":"minimist","purl":"pkg:npm/minimist@1.2.6"}]}"#,
    )
    .unwrap();
    std::fs::write(
        f.join("moat.toml"),
        "[function]\nname = \"app\"\ncomponent = \"dist/app.wasm\"\nroute = \"/app\"\nsbom = \"app.cdx.json\"\n",
    )
    .unwrap();
    let o = moat(
        dir.path(),
        &["scan", "fn", "--advisories", osv, "--output", "json"],
    );
    assert_exit(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["sbom"]["source"]["sbom-file"], "fn/app.cdx.json");
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);
}

#[test]
fn scan_errors_name_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let o = moat(dir.path(), &["scan", "missing.wasm"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("`missing.wasm`"), "{}", stderr(&o));

    std::fs::write(dir.path().join("notes.wasm"), "not wasm").unwrap();
    let o = moat(dir.path(), &["scan", "notes.wasm"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("not a WebAssembly component"),
        "{}",
        stderr(&o)
    );

    std::fs::write(
        dir.path().join("moat.toml"),
        "[function]\nname = \"x\"\ncomponent = \"x.wasm\"\n",
    )
    .unwrap();
    let o = moat(dir.path(), &["scan", "."]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("`function.component`"),
        "{}",
        stderr(&o)
    );

    let o = moat(dir.path(), &["scan", "notes.wasm", "--fail-on", "severe"]);
    assert_exit(&o, 2);
    let o = moat(dir.path(), &["scan", "notes.wasm", "--format", "xml"]);
    assert_exit(&o, 2);
}

// --- Signatures -------------------------------------------------------------------------

#[test]
fn generate_sign_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("orders.wasm"), audited_component()).unwrap();

    // Default prefix: moat-signing.{key,pub}.
    let o = moat(d, &["signing-key", "generate"]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let public = std::fs::read_to_string(d.join("moat-signing.pub")).unwrap();
    assert!(
        public.starts_with("untrusted comment: minisign public key"),
        "{public}"
    );
    assert!(
        text.contains(public.lines().nth(1).unwrap()),
        "prints the public key:\n{text}"
    );
    assert!(
        text.contains("moat-signing.key") && text.contains("moat-signing.pub"),
        "{text}"
    );
    let mode = std::fs::metadata(d.join("moat-signing.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Signing with the default key writes orders.wasm.minisig and names the key.
    let o = moat(d, &["sign", "orders.wasm", "--output", "json"]);
    assert_exit(&o, 0);
    let signed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key_id = signed["key_id"].as_str().unwrap().to_string();
    assert_eq!(key_id.len(), 16);
    assert!(public.lines().next().unwrap().ends_with(&key_id));
    let sig = std::fs::read_to_string(d.join("orders.wasm.minisig")).unwrap();
    assert!(
        sig.contains("trusted comment: moat component sha256:"),
        "{sig}"
    );

    let o = moat(
        d,
        &[
            "verify-signature",
            "orders.wasm",
            "--pub",
            "moat-signing.pub",
        ],
    );
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(&format!("good signature of `orders.wasm` by key {key_id}")));

    // One byte changed after signing.
    let mut tampered = audited_component();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(d.join("tampered.wasm"), &tampered).unwrap();
    let o = moat(
        d,
        &[
            "verify-signature",
            "tampered.wasm",
            "--pub",
            "moat-signing.pub",
            "--sig",
            "orders.wasm.minisig",
        ],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("bad signature"), "{}", stderr(&o));

    // Signed, but not by a trusted key.
    assert_exit(&moat(d, &["signing-key", "generate", "--out", "other"]), 0);
    let o = moat(
        d,
        &["verify-signature", "orders.wasm", "--pub", "other.pub"],
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "signed by key `{key_id}`, which is not a trusted key"
        )),
        "{err}"
    );
    // Several keys: any one of them will do.
    let o = moat(
        d,
        &[
            "verify-signature",
            "orders.wasm",
            "--pub",
            "other.pub",
            "--pub",
            "moat-signing.pub",
        ],
    );
    assert_exit(&o, 0);

    // A different signature file, by the other key, with `--key`/`--out`.
    let o = moat(
        d,
        &[
            "sign",
            "orders.wasm",
            "--key",
            "other.key",
            "--out",
            "by-other.sig",
        ],
    );
    assert_exit(&o, 0);
    let o = moat(
        d,
        &[
            "verify-signature",
            "orders.wasm",
            "--pub",
            "other.pub",
            "--sig",
            "by-other.sig",
        ],
    );
    assert_exit(&o, 0);

    // Unsigned and malformed.
    std::fs::write(d.join("unsigned.wasm"), plain_component()).unwrap();
    let o = moat(
        d,
        &[
            "verify-signature",
            "unsigned.wasm",
            "--pub",
            "moat-signing.pub",
        ],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("is not signed"), "{}", stderr(&o));
    std::fs::write(d.join("unsigned.wasm.minisig"), "not a signature\n").unwrap();
    let o = moat(
        d,
        &[
            "verify-signature",
            "unsigned.wasm",
            "--pub",
            "moat-signing.pub",
        ],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("malformed signature"), "{}", stderr(&o));

    // `--pub` is required: bad usage.
    assert_exit(&moat(d, &["verify-signature", "orders.wasm"]), 2);
}

#[test]
fn generate_refuses_to_overwrite_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_exit(&moat(d, &["signing-key", "generate", "--out", "ci"]), 0);
    let secret = std::fs::read(d.join("ci.key")).unwrap();
    let public = std::fs::read(d.join("ci.pub")).unwrap();

    let o = moat(d, &["signing-key", "generate", "--out", "ci"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("`ci.key` already exists"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("ci.key")).unwrap(), secret);
    assert_eq!(std::fs::read(d.join("ci.pub")).unwrap(), public);

    // Only the public half left behind is no better: neither file is replaced.
    std::fs::write(d.join("half.pub"), "keep me").unwrap();
    let o = moat(d, &["signing-key", "generate", "--out", "half"]);
    assert_exit(&o, 1);
    assert!(!d.join("half.key").exists());
    assert_eq!(
        std::fs::read_to_string(d.join("half.pub")).unwrap(),
        "keep me"
    );
}

#[test]
fn sign_refuses_what_is_not_a_component_and_warns_about_open_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_exit(&moat(d, &["signing-key", "generate"]), 0);
    std::fs::write(d.join("moat.toml"), "[function]\n").unwrap();
    let o = moat(d, &["sign", "moat.toml"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("not a WebAssembly component"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("moat.toml.minisig").exists());

    std::fs::write(d.join("c.wasm"), plain_component()).unwrap();
    let o = moat(d, &["sign", "c.wasm", "--key", "absent.key"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("moat signing-key generate"),
        "{}",
        stderr(&o)
    );

    std::fs::set_permissions(
        d.join("moat-signing.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let o = moat(d, &["sign", "c.wasm"]);
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("readable by other users"),
        "{}",
        stderr(&o)
    );
}
