//! Supply chain on a node: with `require_signature`, unsigned, tampered and untrusted
//! components are refused and a trusted signature is accepted (and shown as the signer);
//! with `block_severity`, a real component built with `cargo auditable` that depends on a
//! vulnerable crate is refused, deploys under an unexpired exception and is refused again
//! once it expires; re-importing advisories that add a finding for a deployed function
//! raises an audit event and an alert. A refused deploy leaves the serving version serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::alerts::receiver;
use crate::common::{Node, wasm};

fn osv(ecosystem: &str) -> PathBuf {
    crate::common::repo_root()
        .join("crates/moat-supply/tests/data/osv")
        .join(ecosystem)
}

/// A function directory holding its own copy of `program` as `app.wasm` (so a signature
/// can be written beside it), with a manifest for `name` at `/name`.
fn function_dir(root: &Path, name: &str, program: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(wasm(program), dir.join("app.wasm")).unwrap();
    std::fs::write(
        dir.join("moat.toml"),
        format!(
            "[function]\nname = \"{name}\"\ncomponent = \"app.wasm\"\nroute = \"/{name}\"\nauth = \"public\"\n"
        ),
    )
    .unwrap();
    dir
}

fn deploy_fails(node: &Node, dir: &Path, expect: &[&str]) {
    let out = node.moat(&["deploy", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "deploy should fail: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "`{e}` not in: {stderr}");
    }
}

fn serving_version(node: &Node, name: &str) -> i64 {
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "show", name, "--output", "json"]))
            .unwrap();
    v["function"]["active_version"].as_i64().unwrap()
}

/// Changes one byte of the component where it stays a valid component: a letter of a tool
/// name in its `producers` section.
fn tamper(component: &Path) {
    let mut bytes = std::fs::read(component).unwrap();
    let at = bytes
        .windows(b"wit-component".len())
        .position(|w| w == b"wit-component")
        .expect("a producers section");
    bytes[at] = b'W';
    std::fs::write(component, bytes).unwrap();
}

#[test]
fn signatures_are_required_where_the_setting_says() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path();
    let key = |name: &str| keys.join(name).to_str().unwrap().to_string();
    node.moat_ok(&["signing-key", "generate", "--out", &key("ci")]);
    node.moat_ok(&["signing-key", "generate", "--out", &key("rogue")]);
    let dir = function_dir(tmp.path(), "signed", "tp_log");
    let component = dir.join("app.wasm");
    let component = component.to_str().unwrap();

    // Before the setting, an unsigned component deploys.
    node.deploy(&dir);
    node.moat_ok(&["settings", "set", "require_signature", "true"]);
    assert!(
        node.moat_ok(&["settings", "list"])
            .contains("require_signature = true")
    );

    // Unsigned.
    deploy_fails(
        &node,
        &dir,
        &["signature_rejected", "the component is not signed"],
    );
    // Signed by a key the node does not trust.
    node.moat_ok(&["sign", component, "--key", &format!("{}.key", key("rogue"))]);
    deploy_fails(&node, &dir, &["signature_rejected", "not a trusted key"]);
    // Signed by a trusted key: accepted, and the signer is recorded with the version.
    let added = node.moat_ok(&[
        "trust",
        "add",
        &format!("{}.pub", key("ci")),
        "--name",
        "ci",
    ]);
    assert!(added.contains("trusting key"), "{added}");
    assert!(node.moat_ok(&["trust", "list"]).contains("ci"));
    node.moat_ok(&["sign", component, "--key", &format!("{}.key", key("ci"))]);
    let out = node.deploy(&dir);
    assert!(out.contains("signed by ci"), "{out}");
    let shown = node.moat_ok(&["functions", "show", "signed"]);
    assert!(shown.contains("signer:   ci ("), "{shown}");
    assert!(
        shown.contains("exports:  wasi:http/incoming-handler"),
        "{shown}"
    );
    assert_eq!(serving_version(&node, "signed"), 2);
    // Nor can a rollback bring back the unsigned version 1.
    let out = node.moat(&["functions", "rollback", "signed", "--to", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("version 1 was deployed without a trusted signature"),
        "{stderr}"
    );
    assert_eq!(serving_version(&node, "signed"), 2);

    // One byte changed after signing.
    tamper(Path::new(component));
    deploy_fails(&node, &dir, &["signature_rejected", "bad signature"]);
    assert_eq!(serving_version(&node, "signed"), 2);
    assert_eq!(node.get("/signed").status, 200);

    // A key that is no longer trusted signs nothing.
    node.moat_ok(&["sign", component, "--key", &format!("{}.key", key("ci"))]);
    node.moat_ok(&["trust", "remove", "ci"]);
    deploy_fails(&node, &dir, &["not a trusted key"]);

    // Name patterns: only matching functions need a signature.
    node.moat_ok(&["settings", "set", "require_signature", "prod-*"]);
    let dev = function_dir(tmp.path(), "dev-api", "tp_log");
    node.deploy(&dev);
    let prod = function_dir(tmp.path(), "prod-api", "tp_log");
    deploy_fails(&node, &prod, &["signature required for `prod-api`"]);

    // Settings are checked and audited.
    let out = node.moat(&["settings", "set", "require_signature", "Prod Only"]);
    assert_eq!(out.status.code(), Some(1));
    let out = node.moat(&["settings", "set", "retention", "7d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `retention`"));
    let changes = node.audit_records(None, "setting.changed", 3);
    let values: Vec<&str> = changes
        .iter()
        .filter(|r| r["event"]["target"] == "require_signature")
        .filter_map(|r| r["event"]["details"]["value"].as_str())
        .collect();
    assert_eq!(values, ["true", "prod-*"], "{changes:?}");
}

#[test]
fn a_vulnerable_component_is_blocked_unless_excepted_until_the_exception_expires() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let out = node.moat_ok(&["advisories", "import", osv("").to_str().unwrap()]);
    assert!(out.contains("9 new"), "{out}");
    node.moat_ok(&["settings", "set", "block_severity", "high"]);
    let dir = function_dir(tmp.path(), "regexy", "tp_audited");

    // GHSA-m5pq-gvj9-9vr8 (regex < 1.5.5, high) is in the component's `cargo auditable` data.
    deploy_fails(
        &node,
        &dir,
        &[
            "vulnerable_dependencies",
            "GHSA-m5pq-gvj9-9vr8 (high, regex 1.5.4, fixed in 1.5.5)",
        ],
    );
    // An exception lets it deploy, reported as ignored.
    node.moat_ok(&[
        "advisories",
        "ignore",
        "GHSA-m5pq-gvj9-9vr8",
        "--reason",
        "patterns are fixed strings",
        "--until",
        "4s",
    ]);
    let listed = node.moat_ok(&["advisories", "list"]);
    assert!(listed.contains("ignored GHSA-m5pq-gvj9-9vr8"), "{listed}");
    let set_at = Instant::now();
    let out = node.deploy(&dir);
    assert!(out.contains("ignored: GHSA-m5pq-gvj9-9vr8 (high)"), "{out}");
    assert_eq!(node.get("/regexy?text=abc").body, "match");

    // What `functions show` reports: the SBOM from the component, as CycloneDX on request.
    let shown = node.moat_ok(&["functions", "show", "regexy"]);
    assert!(shown.contains("from \"cargo-auditable\""), "{shown}");
    let cdx: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "show", "regexy", "--sbom"])).unwrap();
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    let purls: Vec<&str> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(purls.contains(&"pkg:cargo/regex@1.5.4"), "{purls:?}");

    // Once the exception expires the same component is refused again.
    let left = Duration::from_millis(4500).saturating_sub(set_at.elapsed());
    std::thread::sleep(left);
    deploy_fails(&node, &dir, &["GHSA-m5pq-gvj9-9vr8"]);
    assert_eq!(serving_version(&node, "regexy"), 1);

    // An exception must be for the future and give a reason.
    let out = node.moat(&[
        "advisories",
        "ignore",
        "GHSA-m5pq-gvj9-9vr8",
        "--reason",
        "x",
        "--until",
        "2001-01-01",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in the future"));
}

#[test]
fn reimporting_advisories_that_affect_a_deployed_function_raises_an_event_and_an_alert() {
    let (port, got) = receiver();
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    node.moat_ok(&["advisories", "import", osv("npm").to_str().unwrap()]);
    let dir = function_dir(tmp.path(), "late", "tp_audited");
    let out = node.deploy(&dir);
    assert!(!out.contains("finding"), "{out}");

    node.set_secret("hook-key", "whsec_supply_0123456789");
    let rules = tmp.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"[[alert]]
name = "new-advisory"
when = {{ kind = "any", action = "advisory.found.*" }}
window = "1m"
sinks = [{{ kind = "webhook", url = "http://127.0.0.1:{port}/hook", secret_name = "hook-key" }}]
"#
        ),
    )
    .unwrap();
    node.moat_ok(&["alerts", "add", rules.to_str().unwrap()]);

    let out = node.moat_ok(&["advisories", "import", osv("crates.io").to_str().unwrap()]);
    assert!(
        out.contains("NEW  late version 1: GHSA-m5pq-gvj9-9vr8 (high)"),
        "{out}"
    );
    let records = node.audit_records(Some("late"), "advisory.found.high", 1);
    assert_eq!(records.len(), 1, "{records:?}");
    let details = &records[0]["event"]["details"];
    assert_eq!(details["advisory"], "GHSA-m5pq-gvj9-9vr8", "{details}");
    assert_eq!(details["package"], "regex", "{details}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no alert arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sig, body) = got.lock().unwrap()[0].clone();
    assert!(moat_telemetry::alerts::verify_webhook(
        &body,
        b"whsec_supply_0123456789",
        &sig
    ));
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["alert"], "new-advisory", "{payload}");

    // The finding is now known: importing the same records again raises nothing new.
    let out = node.moat_ok(&["advisories", "import", osv("crates.io").to_str().unwrap()]);
    assert!(out.contains("no new findings"), "{out}");
    assert!(out.contains("3 unchanged"), "{out}");
    let shown = node.moat_ok(&["functions", "show", "late"]);
    assert!(shown.contains("GHSA-m5pq-gvj9-9vr8"), "{shown}");
}
