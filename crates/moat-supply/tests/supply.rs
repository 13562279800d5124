//! End-to-end checks of the supply-chain library on real advisories (`tests/data/osv/`):
//! SBOM sources, scanning, reports (SARIF validated against the official 2.1.0 schema),
//! and interoperability with the `minisign` tool (scripts/test.sh installs it).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::io::Write;
use std::path::{Path, PathBuf};

use moat_supply::sbom::Package;
use moat_supply::{AdvisoryDb, Ecosystem, Report, Sbom, SbomSource, Severity};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn pkg(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
    Package {
        ecosystem,
        name: name.into(),
        version: version.into(),
    }
}

fn sbom(packages: Vec<Package>) -> Sbom {
    Sbom {
        components: packages,
        unpinned: vec![],
    }
}

/// Expected advisory ids, each with the fixed version the scan should report.
type Expected = Vec<(&'static str, Option<&'static str>)>;

/// (package at a version, what the scan must find).
fn expectations() -> Vec<(Package, Expected)> {
    use Ecosystem::*;
    vec![
        (
            pkg(CratesIo, "regex", "1.5.4"),
            vec![("GHSA-m5pq-gvj9-9vr8", Some("1.5.5"))],
        ),
        (pkg(CratesIo, "regex", "1.5.5"), vec![]),
        (
            pkg(CratesIo, "time", "0.1.45"),
            vec![("RUSTSEC-2020-0071", Some("0.2.0"))],
        ),
        (pkg(CratesIo, "time", "0.2.6"), vec![]),
        (
            pkg(CratesIo, "time", "0.2.22"),
            vec![("RUSTSEC-2020-0071", Some("0.2.23"))],
        ),
        (pkg(CratesIo, "time", "0.3.36"), vec![]),
        (pkg(CratesIo, "smallvec", "0.6.2"), vec![]),
        (
            pkg(CratesIo, "smallvec", "0.6.13"),
            vec![("RUSTSEC-2021-0003", Some("0.6.14"))],
        ),
        (
            pkg(CratesIo, "smallvec", "1.6.0"),
            vec![("RUSTSEC-2021-0003", Some("1.6.1"))],
        ),
        (pkg(CratesIo, "smallvec", "1.6.1"), vec![]),
        (
            pkg(Npm, "lodash", "4.17.11"),
            vec![("GHSA-jf85-cpcp-j695", Some("4.17.12"))],
        ),
        (pkg(Npm, "lodash", "4.17.21"), vec![]),
        (
            pkg(Npm, "lodash-es", "4.17.13"),
            vec![("GHSA-jf85-cpcp-j695", Some("4.17.14"))],
        ),
        (
            pkg(Npm, "minimist", "1.2.0"),
            vec![
                ("GHSA-xvch-5gv4-984h", Some("1.2.6")),
                ("GHSA-vh95-rmgr-6w4m", Some("1.2.3")),
            ],
        ),
        (
            pkg(Npm, "minimist", "1.2.5"),
            vec![("GHSA-xvch-5gv4-984h", Some("1.2.6"))],
        ),
        (
            pkg(Npm, "minimist", "0.2.2"),
            vec![("GHSA-xvch-5gv4-984h", Some("0.2.4"))],
        ),
        (pkg(Npm, "minimist", "1.2.6"), vec![]),
        (
            pkg(PyPI, "requests", "2.30.0"),
            vec![("GHSA-j8r2-6x86-q33q", Some("2.31.0"))],
        ),
        (pkg(PyPI, "requests", "2.2.1"), vec![]),
        (
            pkg(PyPI, "requests", "2.31.0rc1"),
            vec![("GHSA-j8r2-6x86-q33q", Some("2.31.0"))],
        ),
        (
            pkg(PyPI, "Jinja2", "2.11.2"),
            vec![("GHSA-g3rq-g295-4j3m", Some("2.11.3"))],
        ),
        (pkg(PyPI, "jinja2", "2.11.3"), vec![]),
        (
            pkg(PyPI, "urllib3", "1.26.4"),
            vec![("GHSA-v845-jxx5-vc9f", Some("1.26.17"))],
        ),
        (
            pkg(PyPI, "urllib3", "2.0.5"),
            vec![("GHSA-v845-jxx5-vc9f", Some("2.0.6"))],
        ),
        (pkg(PyPI, "urllib3", "2.0.6"), vec![]),
        (pkg(PyPI, "urllib3", "1.26.17.post1"), vec![]),
    ]
}

fn check(db: &AdvisoryDb) {
    for (package, want) in expectations() {
        let findings = db.scan(&sbom(vec![package.clone()]));
        let mut got: Vec<(String, Option<String>)> = findings
            .iter()
            .map(|f| (f.id.clone(), f.fixed.clone()))
            .collect();
        let mut want: Vec<(String, Option<String>)> = want
            .into_iter()
            .map(|(id, fixed)| (id.to_string(), fixed.map(str::to_string)))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(
            got, want,
            "{} {} {}",
            package.ecosystem, package.name, package.version
        );
    }
}

#[test]
fn real_advisories_from_a_directory() {
    let db = AdvisoryDb::load(&data("osv")).unwrap();
    assert_eq!(db.len(), 9);
    check(&db);
}

#[test]
fn real_advisories_from_an_all_zip_export() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("all.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for eco in ["crates.io", "npm", "PyPI"] {
        for entry in std::fs::read_dir(data("osv").join(eco)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            zip.start_file(name, options).unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
    zip.finish().unwrap();
    let db = AdvisoryDb::load(&zip_path).unwrap();
    assert_eq!(db.len(), 9);
    check(&db);
}

#[test]
fn severities_come_from_github_labels_or_cvss() {
    let db = AdvisoryDb::load(&data("osv")).unwrap();
    let sev = |p: Package| db.scan(&sbom(vec![p]))[0].clone();
    let regex = sev(pkg(Ecosystem::CratesIo, "regex", "1.5.4"));
    assert_eq!(regex.severity, Severity::High);
    assert_eq!(regex.cvss_score, Some(7.5));
    // RUSTSEC records carry no label: the CVSS vector decides (6.2 → medium; 9.8 → critical).
    let time = sev(pkg(Ecosystem::CratesIo, "time", "0.1.45"));
    assert_eq!(
        (time.severity, time.cvss_score),
        (Severity::Medium, Some(6.2))
    );
    assert_eq!(
        sev(pkg(Ecosystem::CratesIo, "smallvec", "1.6.0")).severity,
        Severity::Critical
    );
    assert_eq!(
        sev(pkg(Ecosystem::Npm, "lodash", "4.17.11")).severity,
        Severity::Critical
    );
    assert_eq!(
        sev(pkg(Ecosystem::PyPI, "requests", "2.30.0")).severity,
        Severity::Medium
    );
}

/// A component with imports, exports, a `producers` section and `cargo auditable` data.
fn component_with_audit_data(audit_json: &str) -> Vec<u8> {
    let mut bytes = wat::parse_str(
        r#"(component
            (import "wasi:cli/environment@0.2.0" (instance $env))
            (export "wasi:http/incoming-handler@0.2.0" (instance $env)))"#,
    )
    .unwrap();
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(audit_json.as_bytes(), 6);
    bytes.extend(custom_section(".dep-v0", &compressed));
    let mut producers = vec![1u8]; // one field
    producers.extend(name("language"));
    producers.push(1);
    producers.extend(name("Rust"));
    producers.extend(name("1.95.0"));
    bytes.extend(custom_section("producers", &producers));
    bytes
}

fn name(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
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

const AUDIT: &str = r#"{"packages":[
    {"name":"app","version":"0.1.0","source":"local","root":true,"dependencies":[1,2]},
    {"name":"regex","version":"1.5.4","source":"crates.io"},
    {"name":"smallvec","version":"1.6.0","source":"crates.io","kind":"build"},
    {"name":"forked","version":"0.1.0","source":"git"}]}"#;

#[test]
fn inspect_and_cargo_auditable() {
    let wasm = component_with_audit_data(AUDIT);
    let info = moat_supply::inspect_component(&wasm).unwrap();
    assert_eq!(info.kind, "component");
    assert_eq!(info.size, wasm.len());
    assert_eq!(info.imports, vec!["wasi:cli/environment@0.2.0"]);
    assert_eq!(info.exports, vec!["wasi:http/incoming-handler@0.2.0"]);
    assert_eq!(info.producers[0].name, "Rust");
    assert_eq!(info.producers[0].version, "1.95.0");
    assert!(info.custom_sections.contains(&".dep-v0".to_string()));

    let sbom = Sbom::from_cargo_auditable(&wasm).unwrap().unwrap();
    let names: Vec<_> = sbom.components.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["regex", "smallvec"]);
    assert!(moat_supply::inspect_component(b"not wasm").is_err());
}

#[test]
fn sources_in_precedence_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bom.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"lodash","purl":"pkg:npm/lodash@4.17.11"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("requirements.txt"),
        "requests==2.30.0\nflask>=2\n",
    )
    .unwrap();

    // (a) auditable data wins over everything.
    let wasm = component_with_audit_data(AUDIT);
    let (s, source) = Sbom::discover(Some(&wasm), dir.path()).unwrap();
    assert_eq!(source, SbomSource::CargoAuditable);
    assert_eq!(s.components.len(), 2);

    // (b) without it, the SBOM file.
    let plain = wat::parse_str("(component)").unwrap();
    let (s, source) = Sbom::discover(Some(&plain), dir.path()).unwrap();
    assert!(matches!(source, SbomSource::SbomFile(_)));
    assert_eq!(s.components[0].name, "lodash");

    // (c) without either, the lockfiles; unpinned lines are reported, not guessed.
    std::fs::remove_file(dir.path().join("bom.json")).unwrap();
    let (s, source) = Sbom::discover(Some(&plain), dir.path()).unwrap();
    assert!(matches!(source, SbomSource::Lockfiles(_)));
    assert_eq!(
        s.components,
        vec![pkg(Ecosystem::PyPI, "requests", "2.30.0")]
    );
    assert_eq!(s.unpinned[0].requirement, "flask>=2");

    let cdx = s.to_cyclonedx_json();
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert_eq!(cdx["components"][0]["purl"], "pkg:pypi/requests@2.30.0");
}

fn sample_report() -> Report {
    let db = AdvisoryDb::load(&data("osv")).unwrap();
    let s = sbom(vec![
        pkg(Ecosystem::CratesIo, "regex", "1.5.4"),
        pkg(Ecosystem::CratesIo, "time", "0.1.45"),
        pkg(Ecosystem::Npm, "minimist", "1.2.0"),
        pkg(Ecosystem::PyPI, "requests", "2.30.0"),
        pkg(Ecosystem::PyPI, "jinja2", "3.1.4"),
    ]);
    let findings = db.scan(&s);
    Report::new(
        "functions/orders/orders.wasm",
        SbomSource::CargoAuditable,
        &s,
        findings,
    )
}

#[test]
fn report_text_and_json() {
    let report = sample_report();
    assert_eq!(report.findings.len(), 5);
    assert_eq!(report.max_severity(), Some(Severity::Critical));
    assert!(report.blocks(Severity::High));
    let text = report.to_text();
    assert!(text.contains("GHSA-m5pq-gvj9-9vr8"), "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with("SEVERITY"));
    // Most severe first.
    assert!(text.lines().nth(2).unwrap().starts_with("critical"));
    let json = report.to_json();
    assert_eq!(json["findings"][0]["severity"], "critical");
    assert_eq!(json["packages"], 5);
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let schema_text = std::fs::read_to_string(data("sarif-schema-2.1.0.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();

    let sarif = sample_report().to_sarif();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(
        sarif["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "moat");
    assert_eq!(run["tool"]["driver"]["rules"].as_array().unwrap().len(), 5);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "functions/orders/orders.wasm"
    );
    // The validator is not vacuous: a result without a message is rejected.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert!(!validator.is_valid(&broken));

    // An empty report is valid SARIF too.
    let empty = Report::new("x.wasm", SbomSource::None, &sbom(vec![]), vec![]).to_sarif();
    assert!(validator.is_valid(&empty));
}

#[test]
fn minisign_tool_verifies_moat_signatures() {
    assert!(
        std::process::Command::new("minisign")
            .arg("-v")
            .output()
            .is_ok(),
        "minisign is not installed: `apt-get install -y minisign` (scripts/test.sh does this)"
    );
    let dir = tempfile::tempdir().unwrap();
    let component = component_with_audit_data(AUDIT);
    let (secret, public) = moat_supply::generate_keypair().unwrap();
    let sig = moat_supply::sign(&component, &secret).unwrap();
    let file = dir.path().join("c.wasm");
    std::fs::write(&file, &component).unwrap();
    std::fs::write(dir.path().join("c.wasm.minisig"), &sig).unwrap();
    std::fs::write(dir.path().join("key.pub"), &public.0).unwrap();
    let out = std::process::Command::new("minisign")
        .arg("-Vm")
        .arg(&file)
        .arg("-p")
        .arg(dir.path().join("key.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("moat component sha256:"));

    // And a tampered file fails there too.
    let mut tampered = component.clone();
    tampered[8] ^= 1;
    std::fs::write(&file, &tampered).unwrap();
    let out = std::process::Command::new("minisign")
        .arg("-Vm")
        .arg(&file)
        .arg("-p")
        .arg(dir.path().join("key.pub"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}
