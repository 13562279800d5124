//! Secret versions and pinning (issue 5): every version of a secret is kept; a function that
//! pins one (`"stripe-key@1"`) reads it while unpinned functions read the newest at once; a
//! pin on a version that does not exist fails the deploy and leaves the previous version
//! serving; a pinned version cannot be deleted under a serving function; and an old version
//! leaking out is blocked like the current one.

use crate::common::{Node, manifest, wasm};

const V1: &str = "sk_live_version_one_91xQ";
const V2: &str = "sk_live_version_two_38Zp";
const V3: &str = "sk_live_version_three_5Hw";

fn secret_json(node: &Node, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["secrets", "list", "--output", "json"])).unwrap();
    v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_pinned_function_reads_its_version_and_a_bad_pin_fails_the_deploy() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", V1);
    node.set_secret("stripe-key", V2);
    // `alert`: these functions return the values on purpose, to show which one they read.
    let deploy = |name: &str, grant: &str| {
        manifest(
            dir.path(),
            name,
            &wasm("tp_config"),
            &format!("/{name}"),
            &format!("[permissions]\nsecrets = [\"{grant}\"]\n[dlp]\nmode = \"alert\"\n"),
        )
    };
    node.deploy(&deploy("pinned", "stripe-key@1"));
    node.deploy(&deploy("latest", "stripe-key"));
    let read = |f: &str| node.get(&format!("/{f}?key=stripe-key&all=1")).body;
    // Read under the plain name, whatever the pin.
    assert_eq!(read("pinned"), format!("stripe-key={V1}\nkeys: stripe-key"));
    assert_eq!(read("latest"), format!("stripe-key={V2}\nkeys: stripe-key"));

    // A new version reaches unpinned functions at the next invocation; the pin holds.
    node.set_secret("stripe-key", V3);
    assert!(read("latest").starts_with(&format!("stripe-key={V3}\n")));
    assert!(read("pinned").starts_with(&format!("stripe-key={V1}\n")));

    // A pin on a version that does not exist fails the deploy, naming it, and the
    // function's previous version keeps serving.
    for (bad, says) in [
        ("stripe-key@9", "secret `stripe-key` has no version 9"),
        ("missing-key@1", "`missing-key@1`"),
    ] {
        let out = node.moat(&["deploy", deploy("pinned", bad).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
        assert!(read("pinned").starts_with(&format!("stripe-key={V1}\n")));
    }

    // Listing shows every kept version and who pins it; never a value.
    let s = secret_json(&node, "stripe-key");
    assert_eq!(s["version"], 3);
    let versions = s["versions"].as_array().unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(versions[0]["pinned_by"], serde_json::json!(["pinned"]));
    assert_eq!(versions[2]["current"], true);
    let mut readers: Vec<&str> = s["readers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    readers.sort();
    assert_eq!(readers, ["latest", "pinned"]);
    let table = node.moat_ok(&["secrets", "list"]);
    assert!(table.contains("1 (pinned), 2, 3"), "{table}");
    for v in [V1, V2, V3] {
        assert!(!s.to_string().contains(v) && !table.contains(v));
    }

    // A pinned version cannot be deleted while its function serves (nor the whole secret);
    // an old version nobody pins can; the current version cannot go alone.
    let out = node.moat(&["secrets", "delete", "stripe-key", "--version", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pinned by serving function `pinned`"), "{err}");
    let out = node.moat(&["secrets", "delete", "stripe-key"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`pinned`"));
    node.moat_ok(&["secrets", "delete", "stripe-key", "--version", "2"]);
    // The audit record names the version deleted.
    let deletes = node.audit_records(None, "admin.delete", 3);
    assert!(
        deletes.iter().any(
            |r| r["event"]["target"] == "/v1/secrets/stripe-key/versions/2"
                && r["event"]["outcome"] == "succeeded"
        ),
        "{deletes:?}"
    );
    let out = node.moat(&["secrets", "delete", "stripe-key", "--version", "3"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("current version"));
    let out = node.moat(&["secrets", "delete", "stripe-key", "--version", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert_eq!(
        secret_json(&node, "stripe-key")["versions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(read("pinned").starts_with(&format!("stripe-key={V1}\n")));

    // Once nothing pins it, the whole secret goes, every version with it.
    node.deploy(&deploy("pinned", "stripe-key"));
    assert!(read("pinned").starts_with(&format!("stripe-key={V3}\n")));
    // Version 1 is no longer pinned by a serving version, so it may go; rolling back to the
    // function's version that pinned it is then refused, and the current one keeps serving.
    node.moat_ok(&["secrets", "delete", "stripe-key", "--version", "1"]);
    let out = node.moat(&["functions", "rollback", "pinned"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret `stripe-key` has no version 1"),
        "{err}"
    );
    assert!(read("pinned").starts_with(&format!("stripe-key={V3}\n")));
    node.moat_ok(&["secrets", "delete", "stripe-key"]);
    assert!(secret_json(&node, "stripe-key").is_null());
    assert_eq!(read("pinned"), "stripe-key absent\nkeys: ");
    // And the old pin cannot come back to life with a new value: numbers are not reused.
    node.set_secret("stripe-key", "sk_live_reborn_value_77");
    assert_eq!(secret_json(&node, "stripe-key")["version"], 4);
}

#[test]
fn an_old_version_leaking_is_blocked_like_the_current_one() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("stripe-key", V1);
    node.set_secret("stripe-key", V2);
    // tp_log answers its `line` back: a function that kept (or guessed) an old value and
    // sends it out. It reads the current version; DLP looks for every kept one.
    for (name, grant, mode) in [
        ("unpinned", "stripe-key", "block"),
        ("pinned", "stripe-key@1", "block"),
        ("masked", "stripe-key", "redact"),
    ] {
        node.deploy(&manifest(
            dir.path(),
            name,
            &wasm("tp_log"),
            &format!("/{name}"),
            &format!("[permissions]\nsecrets = [\"{grant}\"]\n[dlp]\nmode = \"{mode}\"\n"),
        ));
    }
    for leak in [V1, V2] {
        for f in ["unpinned", "pinned"] {
            node.get(&format!("/{f}?line=data:{leak}"))
                .assert_error(502, "response_blocked");
        }
        let r = node.get(&format!("/masked?line=data:{leak}"));
        assert_eq!(r.status, 200);
        assert!(
            r.body.starts_with("data:*") && !r.body.contains("sk_live"),
            "{}",
            r.body
        );
    }
    assert_eq!(node.get("/unpinned?line=clean").body, "clean");
    // An old version deleted (once no serving function pins it) is no longer looked for:
    // it is no longer a secret Moat keeps.
    node.moat_ok(&["functions", "delete", "pinned"]);
    node.moat_ok(&["secrets", "delete", "stripe-key", "--version", "1"]);
    assert_eq!(node.get(&format!("/unpinned?line={V1}")).status, 200);
    node.get(&format!("/unpinned?line={V2}"))
        .assert_error(502, "response_blocked");
}
