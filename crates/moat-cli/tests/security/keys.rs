//! Master-key rotation: every sealed value (secrets, key-value entries) is re-wrapped under
//! a new master key; killing the node with SIGKILL at any point of a rotation and running it
//! again loses nothing, and afterwards the old key opens nothing.

use std::time::Duration;

use crate::common::{Node, manifest, wasm};

const N: usize = 400;
const VALUE: &str = "value-sealed-at-rest";

fn check_everything(node: &Node) {
    assert_eq!(
        node.get(&format!("/kv?bucket=data&op=verify&n={N}&value={VALUE}"))
            .body,
        format!("verified {N}")
    );
    assert_eq!(
        node.get("/cfg?key=api-key").body,
        "api-key=sk_test_rotation_canary"
    );
}

#[test]
fn rotation_killed_at_any_point_and_rerun_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    let dir = tempfile::tempdir().unwrap();
    node.moat_ok(&["kv", "create", "data"]);
    node.set_secret("api-key", "sk_test_rotation_canary");
    node.deploy(&manifest(
        dir.path(),
        "kv",
        &wasm("tp_kv"),
        "/kv",
        "[permissions]\nkv = [\"data\"]\n",
    ));
    node.deploy(&manifest(
        dir.path(),
        "cfg",
        &wasm("tp_config"),
        "/cfg",
        "[permissions]\nsecrets = [\"api-key\"]\n[dlp]\nmode = \"alert\"\n",
    ));
    assert_eq!(
        node.get(&format!("/kv?bucket=data&op=fill&n={N}&value={VALUE}"))
            .body,
        format!("filled {N}")
    );
    check_everything(&node);
    let original_key = std::fs::read(data.join("master.key")).unwrap();

    // Kill the node at several points of a rotation; every restart serves every value.
    let mut node = node;
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        let mut rotate = std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
            .args(["--admin", &node.admin, "--data-dir"])
            .arg(&data)
            .args(["master-key", "rotate"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        node.kill();
        let _ = rotate.wait();
        node = Node::start_on(&data, &[]);
        check_everything(&node);
    }

    // Run to the end: the key file is replaced, the old key opens nothing.
    let out = node.moat_ok(&["master-key", "rotate"]);
    assert!(out.contains("master key rotated"), "{out}");
    check_everything(&node);
    assert!(!data.join("master.key.next").exists());
    let new_key = std::fs::read(data.join("master.key")).unwrap();
    assert_ne!(new_key, original_key);
    node.stop();
    let node = Node::start_on(&data, &[]);
    check_everything(&node);
    node.stop();

    let old = String::from_utf8(original_key).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["up", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("MOAT_MASTER_KEY", old.trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{out:?}"
    );
}
