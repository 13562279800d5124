//! The audit log: admin actions and failed logins are recorded with who, what, from where
//! and the outcome; `moat audit-log verify` names the first changed, removed or inserted
//! record, and with an exported checkpoint also a truncated or recomputed chain.

use crate::common::Node;

fn verify(node: &Node, checkpoint: Option<&std::path::Path>) -> (bool, String) {
    let mut args = vec!["audit-log", "verify"];
    if let Some(c) = checkpoint {
        args.extend(["--checkpoint", c.to_str().unwrap()]);
    }
    let out = node.moat(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn admin_actions_and_failed_logins_are_recorded() {
    let node = Node::start();
    node.moat_ok(&["kv", "create", "b1"]);
    node.moat_ok(&["kv", "delete", "b1"]);
    let r = node.admin_get("/v1/functions", Some("not-a-token"));
    assert_eq!(r.status, 401);
    let created = node.audit_records(None, "admin.post", 1);
    let e = &created[0]["event"];
    assert_eq!(e["target"], "/v1/kv");
    assert_eq!(e["outcome"], "succeeded");
    assert_eq!(e["source"], "127.0.0.1");
    assert!(e["actor"].as_str().unwrap().starts_with("token:"), "{e}");
    assert_eq!(
        node.audit_records(None, "admin.delete", 1)[0]["event"]["target"],
        "/v1/kv/b1"
    );
    let failed = node.audit_records(None, "auth.failed", 1);
    assert_eq!(failed[0]["event"]["outcome"], "denied");
    assert_eq!(failed[0]["event"]["actor"], "anonymous");
}

#[test]
fn tampering_with_the_chain_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    for i in 0..6 {
        node.moat_ok(&["kv", "create", &format!("b{i}")]);
    }
    assert_eq!(node.audit_records(None, "admin.post", 6).len(), 6);
    let (ok, out) = verify(&node, None);
    assert!(ok, "{out}");
    let checkpoint = tmp.path().join("checkpoint");
    std::fs::write(&checkpoint, node.moat_ok(&["audit-log", "checkpoint"])).unwrap();
    let (ok, out) = verify(&node, Some(&checkpoint));
    assert!(ok && out.contains("matches the checkpoint"), "{out}");
    node.stop();

    let db = data.join("moat.db");
    let edit = |sql: &str| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(sql).unwrap();
    };
    let backup = std::fs::read(&db).unwrap();
    let restart = || Node::start_on(&data, &[]);

    // A changed record is named.
    edit("UPDATE audit_log SET target = '/v1/kv/innocent' WHERE seq = 3;");
    let node = restart();
    let (ok, out) = verify(&node, None);
    assert!(!ok && out.contains('3'), "{out}");
    node.stop();

    // A removed record is named.
    std::fs::write(&db, &backup).unwrap();
    edit("DELETE FROM audit_log WHERE seq = 2;");
    let node = restart();
    let (ok, out) = verify(&node, None);
    assert!(!ok && out.contains("TAMPERED"), "{out}");
    node.stop();

    // A truncated tail passes on its own and is caught by the checkpoint.
    std::fs::write(&db, &backup).unwrap();
    edit("DELETE FROM audit_log WHERE seq >= 5;");
    let node = restart();
    // The restart itself may append records; truncation is what the checkpoint sees.
    let (ok, out) = verify(&node, Some(&checkpoint));
    assert!(!ok && out.contains("TAMPERED"), "{out}");
    node.stop();
}
