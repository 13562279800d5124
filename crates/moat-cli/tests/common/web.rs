//! Raw HTTP for the dashboard's tests: exchanges read whole with every `set-cookie` kept and
//! no redirect followed, logging in through the form as a browser would, and reading
//! server-sent events as they arrive.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers; a failed step must panic"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A response read whole from a raw HTTP/1.1 exchange (no redirects followed, every
/// `set-cookie` kept).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `set-cookie` header that sets `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

pub fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

pub fn send(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let host = host_of(base);
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    // The whole answer within 30 s: a stream answered where a refusal was due never ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{method} {path}: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{method} {path}: the answer did not end within 30 s: {}",
            String::from_utf8_lossy(&raw)
        );
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of hidden field `name` in a page (the first one).
pub fn field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    Some(page[start..].split('"').next()?.to_string())
}

/// A signed-in dashboard session: its cookie header and CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub fn origin(base: &str) -> (&'static str, String) {
    ("origin", base.to_string())
}

/// Logs in through the form, as a browser would.
pub fn login(admin: &str, token: &str) -> Session {
    let form = send(admin, "GET", "/ui/login", &[], "");
    assert_eq!(form.status, 200);
    let pre = form.cookie("moat_login_csrf").unwrap();
    let pre = pre.split(';').next().unwrap().to_string();
    let csrf = field(&form.body, "csrf").unwrap();
    let o = origin(admin);
    let done = send(
        admin,
        "POST",
        "/ui/login",
        &[("cookie", &pre), (o.0, &o.1)],
        &format!("csrf={}&token={}", enc(&csrf), enc(token)),
    );
    assert_eq!(done.status, 303, "{}", done.body);
    let cookie = done
        .cookie("moat_session")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = send(admin, "GET", "/ui/", &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    Session {
        csrf: field(&page.body, "csrf").unwrap(),
        cookie,
    }
}

/// An open event stream; lines arrive on a channel, read by a thread.
pub struct Stream {
    lines: mpsc::Receiver<String>,
    /// Every line so far.
    pub seen: Vec<String>,
    /// Every event so far: kind and data.
    pub events: Vec<(String, serde_json::Value)>,
    kind: String,
    pub head: String,
}

impl Stream {
    pub fn open(admin: &str, query: &str, headers: &[(&str, &str)]) -> Stream {
        let host = host_of(admin).to_string();
        let mut s = TcpStream::connect(&host).unwrap();
        // `connection: close`: when the server ends the stream, the connection ends too.
        let mut req =
            format!("GET /v1/events{query} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stream {
            lines: rx,
            seen: Vec::new(),
            events: Vec::new(),
            kind: String::new(),
            head,
        }
    }

    fn take(&mut self, line: String) {
        if let Some(k) = line.strip_prefix("event: ") {
            self.kind = k.to_string();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let v = serde_json::from_str(data).unwrap();
            self.events.push((self.kind.clone(), v));
        }
        self.seen.push(line);
    }

    /// Waits (up to 10 s) for an event of `kind` whose data satisfies `ok`, among those
    /// already received or still to come; returns its data.
    pub fn wait(
        &mut self,
        kind: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((_, v)) = self.events.iter().find(|(k, v)| k == kind && ok(v)) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no such `{kind}` event came; the stream said:\n{}",
                    self.seen.join("\n")
                )
            });
            self.take(line);
        }
    }

    /// Whether the server ends the stream within `limit`.
    pub fn ends_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.take(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Everything the stream said so far, waiting `quiet` for more.
    pub fn drain(&mut self, quiet: Duration) -> String {
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.take(line);
        }
        self.seen.join("\n")
    }
}
