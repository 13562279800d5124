//! Nothing at rest holds a secret: after a node has stored secrets and key-value values,
//! served functions that read, return, log and try to send them, and been stopped, no file
//! of its data dir (database, WAL, logs, checkpoints, compiled code, keys) holds the canary
//! values — every kept version of a secret, not only the current one — raw, in base64 at
//! any alignment, hex or URL-encoded. The search is the DLP scanner's own, which looks for
//! every one of those encodings.

use crate::common::{Node, manifest, wasm};

const SECRET_CANARY: &str = "canary-secret-7f3a9c21e4";
/// An older version of the same secret, kept and read by a function pinned to it.
const OLD_CANARY: &str = "canary-oldver-5d1e8b03c7";
const KV_CANARY: &str = "canary-kvalue-0b8d55e6a2";

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_or_value_is_stored_in_any_form() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    let dir = tempfile::tempdir().unwrap();
    node.set_secret("canary", OLD_CANARY);
    node.set_secret("canary", SECRET_CANARY);
    node.moat_ok(&["kv", "create", "vault"]);
    node.deploy(&manifest(
        dir.path(),
        "reader",
        &wasm("tp_config"),
        "/reader",
        "[permissions]\nsecrets = [\"canary\"]\n",
    ));
    node.deploy(&manifest(
        dir.path(),
        "old-reader",
        &wasm("tp_config"),
        "/old-reader",
        "[permissions]\nsecrets = [\"canary@1\"]\n",
    ));
    node.deploy(&manifest(
        dir.path(),
        "logger",
        &wasm("tp_log"),
        "/logger",
        "[permissions]\nsecrets = [\"canary\"]\n[dlp]\nmode = \"redact\"\n",
    ));
    node.deploy(&manifest(
        dir.path(),
        "store",
        &wasm("tp_kv"),
        "/store",
        "[permissions]\nkv = [\"vault\"]\n",
    ));
    // Read and returned (blocked), logged (redacted), stored in key-value (sealed).
    node.get("/reader?key=canary")
        .assert_error(502, "response_blocked");
    node.get("/old-reader?key=canary")
        .assert_error(502, "response_blocked");
    assert_eq!(node.get(&format!("/logger?line={OLD_CANARY}")).status, 200);
    assert_eq!(
        node.get(&format!("/logger?line={SECRET_CANARY}")).status,
        200
    );
    assert_eq!(
        node.get(&format!(
            "/store?bucket=vault&op=set&key=k&value={KV_CANARY}"
        ))
        .body,
        "set"
    );
    assert_eq!(
        node.get("/store?bucket=vault&op=get&key=k").body,
        format!("value {KV_CANARY}")
    );
    // Let the log and audit writers flush, then stop cleanly (WAL checkpointed or not).
    std::thread::sleep(std::time::Duration::from_millis(600));
    node.stop();

    let scanner = moat_dlp::Scanner::builder()
        .secret("secret", SECRET_CANARY.as_bytes())
        .secret("old-version", OLD_CANARY.as_bytes())
        .secret("kv", KV_CANARY.as_bytes())
        .detectors(moat_dlp::DetectorSet::secrets_only())
        .build()
        .unwrap();
    let mut all = Vec::new();
    files(&data, &mut all);
    assert!(all.iter().any(|p| p.ends_with("moat.db")), "{all:?}");
    let mut scanned = 0;
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        scanned += bytes.len();
        let found = scanner.scan(&bytes);
        assert!(
            found.is_empty(),
            "{} holds a canary: {found:?}",
            path.display()
        );
    }
    assert!(scanned > 0);
}
