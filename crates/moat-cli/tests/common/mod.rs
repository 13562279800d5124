//! Test harness: real nodes on ephemeral loopback ports, driven as a user would — the
//! `moat` binary for commands, plain HTTP for calls.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "shared by several test binaries; a failed step must panic"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MOAT: &str = env!("CARGO_BIN_EXE_moat");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds the guest programs once per test binary and returns the directory of `.wasm` files.
pub fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/build-guests.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/build-guests.sh");
        assert!(status.success(), "building the guest programs failed");
        root.join("target/wasm/wasm32-wasip2/release")
    })
}

/// The path of a guest program's component, e.g. `wasm("tp_counter")`.
pub fn wasm(name: &str) -> PathBuf {
    let p = guests().join(format!("{name}.wasm"));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// Writes a manifest into a new directory and returns the directory.
pub fn manifest(dir: &Path, name: &str, component: &Path, route: &str, extra: &str) -> PathBuf {
    let d = dir.join(format!("m-{name}-{}", unique()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("moat.toml"),
        format!(
            "[function]\nname = \"{name}\"\ncomponent = \"{}\"\nroute = \"{route}\"\nauth = \"public\"\n{extra}\n",
            component.display()
        ),
    )
    .unwrap();
    d
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running `moat up`.
pub struct Node {
    pub data_dir: PathBuf,
    pub gateway: String,
    pub admin: String,
    child: Option<Child>,
    pub stdout: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

pub struct NodeOptions {
    pub extra_args: Vec<String>,
}

impl Node {
    /// A node on a new data dir.
    pub fn start() -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut node = Node::start_on(&dir, &[]);
        node._tmp = Some(tmp);
        node
    }

    /// A node on `data_dir` (created if absent), with extra `moat up` flags.
    pub fn start_on(data_dir: &Path, extra: &[&str]) -> Node {
        let (node, _) = Node::try_start_on(data_dir, extra);
        node.expect("the node did not start")
    }

    /// Starts a node; on failure returns the process output instead.
    pub fn try_start_on(data_dir: &Path, extra: &[&str]) -> (Option<Node>, String) {
        let mut child = Command::new(MOAT)
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("MOAT_MASTER_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (etx, erx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[node] {line}");
                all.push_str(&line);
                all.push('\n');
            }
            let _ = etx.send(all);
        });
        let mut lines = Vec::new();
        let (mut gateway, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while gateway.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("moat: gateway listening on ") {
                        gateway = Some(url.to_string());
                    }
                    if let Some(url) = line.strip_prefix("moat: admin API listening on ") {
                        admin = Some(url.to_string());
                    }
                    lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = erx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                    return (None, format!("{}\n{err}", lines.join("\n")));
                }
            }
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let node = Node {
            data_dir: data_dir.to_path_buf(),
            gateway: gateway.unwrap(),
            admin: admin.unwrap(),
            child: Some(child),
            stdout: lines,
            _tmp: None,
        };
        (Some(node), String::new())
    }

    /// Runs a `moat` command against this node.
    pub fn moat(&self, args: &[&str]) -> Output {
        Command::new(MOAT)
            .args(["--admin", &self.admin, "--data-dir"])
            .arg(&self.data_dir)
            .env_remove("MOAT_TOKEN")
            .env("MOAT_GATEWAY_URL", &self.gateway)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a `moat` command that must succeed; returns its stdout.
    pub fn moat_ok(&self, args: &[&str]) -> String {
        let out = self.moat(args);
        assert!(
            out.status.success(),
            "`moat {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Audit records matching `function` and `action` (exact, or a `prefix*`), waiting up
    /// to five seconds for at least `min` of them (the chain is written in batches).
    /// Audit records of `action` (of `function`, if given) once the occurrences they stand
    /// for reach `expected`, or after ten seconds: a folded record (refusals and limit hits
    /// within a second) stands for its `details.count` and is written when its second
    /// ends. Returns the records and what they stand for.
    pub fn audit_folded(
        &self,
        function: Option<&str>,
        action: &str,
        expected: u64,
    ) -> (Vec<serde_json::Value>, u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.audit_records(function, action, 0);
            let counted = records
                .iter()
                .map(|r| r["event"]["details"]["count"].as_u64().unwrap_or(1))
                .sum();
            if counted >= expected || std::time::Instant::now() > deadline {
                return (records, counted);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn audit_records(
        &self,
        function: Option<&str>,
        action: &str,
        min: usize,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut args = vec!["audit-log", "show", "--action", action, "--output", "json"];
            if let Some(f) = function {
                args.extend(["--function", f]);
            }
            let v: serde_json::Value = serde_json::from_str(&self.moat_ok(&args)).unwrap();
            let records = v["records"].as_array().cloned().unwrap_or_default();
            if records.len() >= min || std::time::Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn deploy(&self, manifest_dir: &Path) -> String {
        self.moat_ok(&["deploy", manifest_dir.to_str().unwrap()])
    }

    /// Deploys guest `program` as public function `name` at `/name`; keep the returned
    /// directory alive while the function is used.
    pub fn deploy_program(&self, name: &str, program: &str, extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        self.deploy(&manifest(
            dir.path(),
            name,
            &wasm(program),
            &format!("/{name}"),
            extra,
        ));
        dir
    }

    /// `moat secrets set NAME` with the value on stdin, as an operator would.
    pub fn set_secret(&self, name: &str, value: &str) {
        use std::io::Write;
        let mut child = Command::new(MOAT)
            .args(["--admin", &self.admin, "--data-dir"])
            .arg(&self.data_dir)
            .args(["secrets", "set", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &format!("{}{path}", self.gateway), None, &[])
    }

    pub fn admin_get(&self, path: &str, token: Option<&str>) -> Reply {
        let auth = token.map(|t| ("authorization".to_string(), format!("Bearer {t}")));
        request(
            "GET",
            &format!("{}{path}", self.admin),
            None,
            auth.as_slice(),
        )
    }

    /// A counter from `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let body = self.admin_get("/metrics", None).body;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("metric {name} missing"))
            .trim()
            .parse()
            .unwrap()
    }

    /// The sum of a labelled counter's series whose labels contain `label`.
    pub fn metric_labeled(&self, name: &str, label: &str) -> u64 {
        let body = self.admin_get("/metrics", None).body;
        body.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        signal(child.id() as i32, rustix::process::Signal::TERM);
        wait_timeout(&mut child, Duration::from_secs(60))
    }

    /// SIGKILL: the node gets no chance to clean up.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: i32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

fn wait_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts a platform error: status, SPEC §4 code, and a request id matching the header.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.body);
        let rid = self.header("x-request-id").expect("x-request-id");
        assert_eq!(v["error"]["request_id"], rid);
    }
}

pub fn request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    headers: &[(String, String)],
) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let req = builder.body(body.unwrap_or_default().to_vec()).unwrap();
    let mut resp = agent
        .run(req)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends raw bytes to `base` (`http://host:port`) and reads until the server closes the
/// connection, the response is complete, or `limit` passes. For requests a normal client
/// refuses to send.
pub fn raw_request(base: &str, bytes: &[u8], limit: Duration) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
