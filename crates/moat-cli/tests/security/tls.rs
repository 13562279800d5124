//! TLS on both listeners: HTTPS with a generated or a given certificate (reloaded on
//! SIGHUP), HSTS on responses, TLS 1.1 refused — checked with a client that really offers
//! it — and the CLI verifying the node (a pinned fingerprint or a CA file).

use std::process::Command;

use crate::common::{Node, manifest, signal, wasm};

fn fingerprint(node: &Node) -> String {
    node.stdout
        .iter()
        .find_map(|l| l.split("SHA-256 fingerprint ").nth(1))
        .map(|s| s.trim_end_matches(')').to_string())
        .expect("the node prints its certificate's fingerprint")
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("https://").to_string()
}

/// `openssl s_client` with `args`; whether the handshake completed.
fn handshake(addr: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed (apt-get install -y openssl)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let ok = text.contains("BEGIN CERTIFICATE") && !text.contains("handshake failure");
    (ok, text)
}

#[test]
fn a_self_signed_node_serves_https_with_hsts_and_refuses_tls_1_1() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let node = Node::start_on(&data, &["--tls-self-signed"]);
    assert!(node.gateway.starts_with("https://") && node.admin.starts_with("https://"));
    let fp = fingerprint(&node);
    let dir = tempfile::tempdir().unwrap();

    // The CLI reaches the admin API only when it can verify the node.
    let deploy = |extra: &[&str]| {
        let m = manifest(dir.path(), "hello", &wasm("hello"), "/hello", "");
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["deploy", m.to_str().unwrap()]);
        node.moat(&args)
    };
    let unverified = deploy(&[]);
    assert!(!unverified.status.success());
    let wrong = deploy(&["--tls-pin", &"00".repeat(32)]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not match"),
        "{wrong:?}"
    );
    let pinned = deploy(&["--tls-pin", &fp]);
    assert!(pinned.status.success(), "{pinned:?}");
    let cert = data.join("tls/cert.pem");
    let with_ca = node.moat(&["--ca-cert", cert.to_str().unwrap(), "functions", "list"]);
    assert!(with_ca.status.success(), "{with_ca:?}");

    // curl with the certificate as CA: HTTPS works and says so for a year (HSTS).
    let out = Command::new("curl")
        .args(["-sS", "-i", "--cacert", cert.to_str().unwrap()])
        .arg(format!(
            "{}/hello",
            node.gateway.replace("127.0.0.1", "localhost")
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Hello, world!"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.to_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );

    // TLS 1.2 completes; TLS 1.1, really offered, does not.
    let addr = host_port(&node.gateway);
    let (ok12, text) = handshake(&addr, &["-tls1_2"]);
    assert!(ok12, "{text}");
    let (ok11, text) = handshake(&addr, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert!(!ok11, "TLS 1.1 was accepted: {text}");
    // The certificate is kept: a restart serves the same one.
    node.stop();
    let node = Node::start_on(&data, &["--tls-self-signed"]);
    assert_eq!(fingerprint(&node), fp);
}

#[test]
fn a_given_certificate_is_served_and_reloaded_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let (cert, key) = (
            tmp.path().join(format!("{name}.crt")),
            tmp.path().join(format!("{name}.key")),
        );
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args([
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (cert, key)
    };
    let (cert1, key1) = make("one");
    let (cert2, key2) = make("two");
    let (cert, key) = (tmp.path().join("live.crt"), tmp.path().join("live.key"));
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let node = Node::start_on(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    // openssl's certificates are CAs, which a verifier rightly refuses as a server's own;
    // pin them by fingerprint instead.
    let pin = |cert: &std::path::Path| {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .to_string()
    };
    let ok = |cert: &std::path::Path| {
        node.moat(&["--tls-pin", &pin(cert), "functions", "list"])
            .status
            .success()
    };
    assert!(ok(&cert1));
    assert!(!ok(&cert2));
    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    signal(node.pid(), rustix::process::Signal::HUP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !ok(&cert2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!ok(&cert1));
}

#[test]
fn plain_http_on_a_public_address_needs_insecure_http() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["up", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--listen", "0.0.0.0:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--insecure-http"),
        "{out:?}"
    );
}
