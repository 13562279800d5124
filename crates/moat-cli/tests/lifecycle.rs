//! Issue 2: deploy → invoke → redeploy → rollback → delete, failed deploys, restarts,
//! sealed artifacts, admin auth, the data dir lock and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Node, manifest, request, wasm};

#[test]
fn deploy_invoke_redeploy_rollback_delete() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let v1 = manifest(dir.path(), "hello", &wasm("hello"), "/hello", "");
    let out = node.deploy(&v1);
    assert!(out.contains("deployed hello version 1 at /hello"), "{out}");
    let r = node.get("/hello");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, world!"));
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 32));

    let v2 = manifest(dir.path(), "hello", &wasm("tp_hello_v2"), "/hello", "");
    assert!(node.deploy(&v2).contains("version 2"));
    assert_eq!(node.get("/hello").body, "Hello, v2!");

    let out = node.moat_ok(&["functions", "rollback", "hello"]);
    assert!(out.contains("now serves version 1"), "{out}");
    assert_eq!(node.get("/hello").body, "Hello, world!");
    node.moat_ok(&["functions", "rollback", "hello", "--to", "2"]);
    assert_eq!(node.get("/hello").body, "Hello, v2!");
    let bad = node.moat(&["functions", "rollback", "hello", "--to", "9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no version 9"));

    let list: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "list", "--output", "json"])).unwrap();
    let f = &list["functions"][0];
    assert_eq!(
        (f["name"].as_str(), f["active_version"].as_i64()),
        (Some("hello"), Some(2))
    );
    let shown = node.moat_ok(&["functions", "show", "hello"]);
    assert!(shown.contains("serving:  version 2"), "{shown}");

    // `moat invoke` finds the route through the admin API and calls the gateway.
    assert_eq!(node.moat_ok(&["invoke", "hello"]).trim(), "Hello, v2!");

    node.moat_ok(&["functions", "delete", "hello"]);
    node.get("/hello").assert_error(404, "not_found");
    assert_eq!(
        node.moat(&["functions", "show", "hello"]).status.code(),
        Some(1)
    );
}

#[test]
fn prefix_routes_and_the_request_seen_by_the_function() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(
        dir.path(),
        "echo",
        &wasm("echo"),
        "/echo/...",
        "",
    ));
    for path in ["/echo", "/echo/", "/echo/a/b?x=1"] {
        let r = node.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["path"], path);
    }
    node.get("/echoes").assert_error(404, "not_found");
    // Dot segments never reach routing.
    node.get("/echo/../admin").assert_error(400, "bad_request");
    let r = request(
        "POST",
        &format!("{}/echo/x", node.gateway),
        Some(b"payload"),
        &[("x-custom".into(), "1".into())],
    );
    let v = r.json();
    assert_eq!(
        (v["method"].as_str(), v["body"].as_str()),
        (Some("POST"), Some("payload"))
    );
    // The function sees the same request id as the caller.
    let rid = r.header("x-request-id").unwrap();
    assert!(
        v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "x-request-id" && h[1] == rid)
    );
}

#[test]
fn token_routes_need_a_token_and_never_see_it() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "private", &wasm("echo"), "/private", "");
    let toml = m.join("moat.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("auth = \"public\"\n", "");
    std::fs::write(&toml, text).unwrap(); // auth defaults to "token"
    node.deploy(&m);
    let url = format!("{}/private", node.gateway);
    request("GET", &url, None, &[]).assert_error(401, "unauthorized");
    let wrong = [("authorization".to_string(), "Bearer moat_wrong".to_string())];
    request("GET", &url, None, &wrong).assert_error(401, "unauthorized");
    let right = [(
        "authorization".to_string(),
        format!("Bearer {}", node.token()),
    )];
    let r = request("GET", &url, None, &right);
    assert_eq!(r.status, 200, "{}", r.body);
    let headers = r.json()["headers"].clone();
    assert!(
        !headers
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "authorization"),
        "the function saw the caller's token: {headers}"
    );
}

#[test]
fn failed_deploys_keep_the_old_version_serving_and_say_why() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(dir.path(), "hello", &wasm("hello"), "/hello", ""));

    let hello = std::fs::read(wasm("hello")).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut corrupt = hello.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid..mid + 64].fill(0xff);
    let unknown_import = wat::parse_str(
        r#"(component
            (import "fermyon:spin/key-value@2.0.0" (instance))
            (instance $h)
            (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#,
    )
    .unwrap();
    let no_handler = wat::parse_str("(component)").unwrap();
    let cases: Vec<(std::path::PathBuf, &str, &str)> = vec![
        (
            write("text.wasm", b"this is not wasm"),
            "",
            "not a WebAssembly component",
        ),
        (
            write("module.wasm", &wat::parse_str("(module)").unwrap()),
            "",
            "core module",
        ),
        (
            write("truncated.wasm", &hello[..hello.len() / 3]),
            "",
            "not a WebAssembly component",
        ),
        (write("corrupt.wasm", &corrupt), "", "invalid"),
        (
            write("import.wasm", &unknown_import),
            "",
            "`fermyon:spin/key-value@2.0.0`",
        ),
        (
            write("nohandler.wasm", &no_handler),
            "",
            "does not export `wasi:http/incoming-handler`",
        ),
        (
            wasm("hello"),
            "[limits]\nmemory_mib = 1\n",
            "unknown field `memory_mib`",
        ),
        (
            wasm("hello"),
            "[limits]\nmemory_mb = \"lots\"\n",
            "`limits.memory_mb`",
        ),
        (dir.path().join("absent.wasm"), "", "`function.component`"),
    ];
    for (component, extra, expected) in cases {
        let m = manifest(dir.path(), "hello", &component, "/hello", extra);
        let out = node.moat(&["deploy", m.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {stderr}",
            component.display()
        );
        assert!(
            stderr.contains(expected),
            "{}: expected `{expected}` in: {stderr}",
            component.display()
        );
        let r = node.get("/hello");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "Hello, world!"),
            "after {}",
            component.display()
        );
    }
    // A route already served by another function is refused too.
    let m = manifest(dir.path(), "other", &wasm("tp_counter"), "/hello", "");
    let out = node.moat(&["deploy", m.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already served by function `hello`"));
    // Still version 1, still serving.
    let v: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "show", "hello", "--output", "json"]))
            .unwrap();
    assert_eq!(v["function"]["active_version"], 1);
    assert_eq!(v["versions"].as_array().unwrap().len(), 1);
    assert_eq!(node.get("/hello").body, "Hello, world!");
}

/// A small component (~2.6 MB) whose one function keeps 2,000 values alive across 200,000
/// operations: register allocation makes compiling it take seconds of CPU and far more
/// memory than ordinary components of its size.
fn compile_bomb() -> Vec<u8> {
    let (locals, ops) = (2000usize, 200_000usize);
    let mut wat = String::from(
        "(component (core module $m (memory 1)\n(func $f (param i32) (result i32) (local",
    );
    wat.push_str(&" i32".repeat(locals));
    wat.push_str(")\n");
    for l in 1..=locals {
        wat.push_str(&format!(
            "(local.set {l} (i32.add (i32.load (i32.const {})) (local.get 0)))\n",
            (l % 1000) * 4
        ));
    }
    let mut x: u64 = 12345;
    for _ in 0..ops {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (a, b, c) = (
            (x >> 33) as usize % locals + 1,
            (x >> 17) as usize % locals + 1,
            (x >> 5) as usize % locals + 1,
        );
        wat.push_str(&format!(
            "(local.set {c} (i32.add (local.get {a}) (i32.mul (local.get {b}) (local.get 0))))\n"
        ));
    }
    for l in 1..=locals {
        wat.push_str(&format!(
            "(i32.store (i32.const {}) (local.get {l}))\n",
            (l % 1000) * 4
        ));
    }
    wat.push_str(
        r#"local.get 1)
        (func (export "f") (drop (call $f (i32.const 1)))))
        (core instance $i (instantiate $m))
        (func $lifted (canon lift (core func $i "f")))
        (instance $h (export "handle" (func $lifted)))
        (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#,
    );
    wat::parse_str(&wat).unwrap()
}

#[test]
fn a_component_whose_compilation_exceeds_its_limits_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::start_on(&tmp.path().join("data"), &["--compile-cpu-secs", "1"]);
    node.deploy(&manifest(tmp.path(), "hello", &wasm("hello"), "/hello", ""));
    let bomb = tmp.path().join("bomb.wasm");
    std::fs::write(&bomb, compile_bomb()).unwrap();
    let m = manifest(tmp.path(), "hello", &bomb, "/hello", "");
    let out = node.moat(&["deploy", m.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exceeded its CPU-time limit of 1 s"),
        "{stderr}"
    );
    assert_eq!(node.get("/hello").body, "Hello, world!");

    // The address-space limit holds too: enough for an ordinary component, not for this one.
    let node2 = Node::start_on(&tmp.path().join("data2"), &["--compile-memory-mb", "256"]);
    node2.deploy(&manifest(tmp.path(), "hello", &wasm("hello"), "/hello", ""));
    let out = node2.moat(&["deploy", m.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exceeded its memory limit of 256 MiB"),
        "{stderr}"
    );
    assert_eq!(node2.get("/hello").body, "Hello, world!");
}

#[test]
fn state_survives_a_restart_without_recompiling() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    node.deploy(&manifest(tmp.path(), "hello", &wasm("hello"), "/hello", ""));
    node.deploy(&manifest(
        tmp.path(),
        "echo",
        &wasm("echo"),
        "/echo/...",
        "",
    ));
    assert_eq!(node.metric("moat_component_compilations_total"), 2);
    let token = node.token();
    assert!(node.stop().success());

    let node = Node::start_on(&data, &[]);
    assert_eq!(node.get("/hello").body, "Hello, world!");
    assert_eq!(node.get("/echo/x").json()["path"], "/echo/x");
    assert_eq!(
        node.metric("moat_component_compilations_total"),
        0,
        "a restart recompiled"
    );
    assert_eq!(node.metric("moat_compiled_artifacts_loaded_total"), 2);
    assert_eq!(node.token(), token, "the admin token changed");
}

#[test]
fn a_tampered_compiled_artifact_is_refused_not_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    node.deploy(&manifest(tmp.path(), "hello", &wasm("hello"), "/hello", ""));
    assert!(node.stop().success());

    let artifacts: Vec<_> = std::fs::read_dir(data.join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1);
    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&artifacts[0], &bytes).unwrap();

    let node = Node::start_on(&data, &[]);
    assert_eq!(node.metric("moat_compiled_artifact_rejections_total"), 1);
    // It was recompiled from the stored component (checked against its digest) instead.
    assert_eq!(node.metric("moat_component_compilations_total"), 1);
    assert_eq!(node.get("/hello").body, "Hello, world!");
    assert_ne!(std::fs::read(&artifacts[0]).unwrap(), bytes);
}

#[test]
fn admin_api_needs_the_admin_token() {
    let node = Node::start();
    node.admin_get("/v1/functions", None)
        .assert_error_status(401);
    node.admin_get("/v1/functions", Some("moat_not_a_token"))
        .assert_error_status(401);
    assert_eq!(
        node.admin_get("/v1/functions", Some(&node.token())).status,
        200
    );
    // Health, readiness, metrics and the API description need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        assert_eq!(node.admin_get(path, None).status, 200, "{path}");
    }
    let doc = node.admin_get("/v1/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    // Without a token the CLI says how to give one.
    let out = std::process::Command::new(common::MOAT)
        .args([
            "--admin",
            &node.admin,
            "--data-dir",
            "/nonexistent",
            "functions",
            "list",
        ])
        .env_remove("MOAT_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

trait AssertStatus {
    fn assert_error_status(&self, status: u16);
}

impl AssertStatus for common::Reply {
    fn assert_error_status(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.json()["error"]["code"], "unauthorized");
    }
}

#[test]
fn first_start_creates_private_key_and_token_and_stores_only_the_hash() {
    let node = Node::start();
    for file in ["master.key", "admin.token"] {
        let mode = std::fs::metadata(node.data_dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(
        node.stdout.iter().any(|l| l.contains("admin.token")),
        "{:?}",
        node.stdout
    );
    let token = node.token();
    let db = std::fs::read(node.data_dir.join("moat.db")).unwrap();
    let wal = std::fs::read(node.data_dir.join("moat.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "the plaintext token is in the store"
        );
    }
}

#[test]
fn a_second_node_on_the_same_data_dir_refuses() {
    let node = Node::start();
    let (second, output) = Node::try_start_on(&node.data_dir, &[]);
    assert!(second.is_none());
    assert!(output.contains("in use by another moat node"), "{output}");
    assert_eq!(
        node.get("/nothing").status,
        404,
        "the first node is unaffected"
    );
}

#[test]
fn a_wrong_master_key_or_a_loose_key_file_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = Node::start_on(&dir, &[]);
    assert!(node.stop().success());
    let key = dir.join("master.key");
    let original = std::fs::read(&key).unwrap();

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (n, out) = Node::try_start_on(&dir, &[]);
    assert!(n.is_none() && out.contains("must be 0600"), "{out}");

    std::fs::write(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (n, out) = Node::try_start_on(&dir, &[]);
    assert!(
        n.is_none() && out.contains("does not match this store"),
        "{out}"
    );

    std::fs::write(&key, original).unwrap();
    Node::start_on(&dir, &[]);
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let node = Node::start();
    let dir = tempfile::tempdir().unwrap();
    node.deploy(&manifest(
        dir.path(),
        "sleep",
        &wasm("tp_sleep"),
        "/sleep",
        "",
    ));
    let url = format!("{}/sleep?ms=1500", node.gateway);
    let call = std::thread::spawn(move || request("GET", &url, None, &[]));
    std::thread::sleep(Duration::from_millis(400));
    let status = node.stop();
    let r = call.join().unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "slept 1500"));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_crash_mid_deploy_leaves_the_store_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &[]);
    let (admin, gateway) = (node.admin.clone(), node.gateway.clone());
    let manifests: Vec<_> = (0..6)
        .map(|i| {
            manifest(
                tmp.path(),
                &format!("f{i}"),
                &wasm(if i % 2 == 0 { "hello" } else { "tp_hello_v2" }),
                &format!("/f{i}"),
                "",
            )
        })
        .collect();
    let data2 = data.clone();
    let deployer = std::thread::spawn(move || {
        for m in manifests.iter().cycle().take(30) {
            let _ = std::process::Command::new(common::MOAT)
                .args(["--admin", &admin, "--data-dir"])
                .arg(&data2)
                .arg("deploy")
                .arg(m)
                .output();
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    node.kill();
    deployer.join().unwrap();
    let _ = gateway;

    let node = Node::start_on(&data, &[]);
    let list: serde_json::Value =
        serde_json::from_str(&node.moat_ok(&["functions", "list", "--output", "json"])).unwrap();
    let functions = list["functions"].as_array().unwrap();
    assert!(!functions.is_empty(), "no deploy finished before the kill");
    for f in functions {
        let name = f["name"].as_str().unwrap();
        let r = node.get(&format!("/{name}"));
        assert_eq!(r.status, 200, "{name} listed but not serving: {}", r.body);
        assert!(r.body.starts_with("Hello"), "{name}: {}", r.body);
    }
}
