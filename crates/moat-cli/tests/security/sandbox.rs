//! A hostile function against the sandbox: it must get nothing it was not granted, leak
//! nothing to callers, keep no state, and be stopped when it overruns.

use std::time::{Duration, Instant};

use crate::common::Node;

fn deploy(node: &Node, name: &str, program: &str, extra: &str) -> tempfile::TempDir {
    node.deploy_program(name, program, extra)
}

#[test]
fn a_guest_panic_is_a_500_with_nothing_internal_and_the_text_in_its_log() {
    let node = Node::start();
    let _d = deploy(&node, "trap", "tp_trap", "");
    let r = node.get("/trap");
    r.assert_error(500, "function_failed");
    for leak in [
        "secret-internal-detail",
        "panicked",
        "wasm",
        "unreachable",
        "backtrace",
        ".rs",
    ] {
        assert!(
            !r.body.to_lowercase().contains(leak),
            "`{leak}` leaked: {}",
            r.body
        );
    }
    // The detail is in the function's log, under the request id.
    let rid = r.header("x-request-id").unwrap();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = node.moat_ok(&["logs", "trap", "--request", rid]);
        if logs.contains("trap:") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        logs.contains("deliberate panic: secret-internal-detail"),
        "{logs}"
    );
    assert!(logs.contains("trap: "), "{logs}");
}

#[test]
fn no_state_survives_between_invocations() {
    let node = Node::start();
    let _d = deploy(&node, "counter", "tp_counter", "");
    for _ in 0..5 {
        assert_eq!(node.get("/counter").body, "1");
    }
}

#[test]
fn files_env_args_stdin_and_sockets_give_nothing() {
    let node = Node::start();
    let _d = deploy(&node, "escape", "tp_escape", "");
    // Aim the socket at the node's own admin port.
    let admin_addr = node.admin.trim_start_matches("http://").to_string();
    let r = node.get(&format!("/escape?connect={admin_addr}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    for field in [
        "read_etc_passwd",
        "read_dir_root",
        "stdin",
        "tcp_connect",
        "write_file",
    ] {
        let got = v[field].as_str().unwrap();
        assert!(got.starts_with("denied"), "{field}: {got}");
    }
    assert_eq!(v["env_vars"], 0);
    assert_eq!(v["args"], 0);
}

#[test]
fn a_guest_that_computes_forever_is_stopped_at_its_timeout() {
    let node = Node::start();
    let _d = deploy(&node, "spin", "tp_spin", "[limits]\ntimeout_ms = 300\n");
    let _h = deploy(&node, "hello", "hello", "");
    let t = Instant::now();
    let spinner = {
        let url = format!("{}/spin", node.gateway);
        std::thread::spawn(move || crate::common::request("GET", &url, None, &[]))
    };
    // A well-behaved function keeps answering meanwhile.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(node.get("/hello").body, "Hello, world!");
    let r = spinner.join().unwrap();
    r.assert_error(504, "timeout");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(node.metric_labeled("moat_invocations_total", "outcome=\"timed_out\"") >= 1);
}

#[test]
fn a_guest_that_waits_forever_in_a_host_call_is_stopped_at_its_timeout() {
    let node = Node::start();
    let _d = deploy(&node, "sleep", "tp_sleep", "[limits]\ntimeout_ms = 300\n");
    let t = Instant::now();
    node.get("/sleep?ms=60000").assert_error(504, "timeout");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}
