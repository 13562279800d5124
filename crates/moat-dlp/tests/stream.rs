//! Attacks on the streaming scanner: every match split across two and three chunks at every
//! split point must be found once and masked exactly as a whole-body redaction masks it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use moat_dlp::{Detector, DetectorSet, Finding, Scanner};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"ghp_R2d2C3poBB8xWing0Falcon9";

fn scanner() -> Arc<Scanner> {
    let secrets = vec![("gh-token", Zeroizing::new(SECRET.to_vec()))];
    Arc::new(Scanner::new(&secrets, DetectorSet::all()).unwrap_or_else(|e| panic!("{e}")))
}

/// Streams `body` cut at `cuts` and returns the released bytes and findings.
fn stream(s: &Arc<Scanner>, body: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Finding>) {
    let mut st = s.stream();
    let mut out = Vec::new();
    let mut findings = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let r = st.feed_release(&body[at..cut]);
        assert_eq!(st.judged(), out.len() + r.bytes.len());
        out.extend(r.bytes);
        findings.extend(r.findings);
        at = cut;
    }
    let r = st.finish_release();
    out.extend(r.bytes);
    findings.extend(r.findings);
    assert_eq!(st.held(), 0);
    (out, findings)
}

fn sorted(mut f: Vec<Finding>) -> Vec<Finding> {
    f.sort_by_key(|f| (f.range.start, f.range.end, f.detector));
    f
}

/// Bodies in which something sits where a chunk boundary or a release point can split it:
/// padded on both sides past the horizon, so that bytes are judged before the end.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut raw = b"{\"a\":\"".to_vec();
    raw.extend_from_slice(SECRET);
    raw.extend_from_slice(b"\"}");
    let b64 = format!(
        "x={}=y",
        STANDARD.encode([b"ab".as_slice(), SECRET].concat())
    );
    let pad = b"lorem ipsum; ".repeat(25);
    [
        ("raw", raw),
        ("base64", b64.into_bytes()),
        ("card", b"pay 4111-1111-1111-1111 now".to_vec()),
        ("aws", b"id=AKIAIOSFODNN7EXAMPLE;".to_vec()),
        (
            "jwt",
            b"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c ok"
                .to_vec(),
        ),
        (
            "pem",
            b"k=-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yT\n-----END EC PRIVATE KEY-----\nbye."
                .to_vec(),
        ),
    ]
    .into_iter()
    .map(|(what, body)| (what, [pad.as_slice(), &body, &pad].concat()))
    .collect()
}

/// The cut points that matter for `body`: inside the findings, and where a cut puts the
/// release point (`horizon - 1` bytes before it) inside the findings.
fn interesting_cuts(s: &Scanner, body: &[u8], findings: &[Finding]) -> Vec<usize> {
    let lo = findings.iter().map(|f| f.range.start).min().unwrap_or(0);
    let hi = findings.iter().map(|f| f.range.end).max().unwrap_or(0);
    let lag = s.max_pattern_len() - 1;
    let mut cuts: Vec<usize> = (lo.saturating_sub(1)..=hi + 1)
        .chain(lo + lag - 1..=hi + lag + 1)
        .filter(|&c| c <= body.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn a_match_split_across_two_chunks_is_found_at_every_split_point() {
    let s = scanner();
    for (what, body) in bodies() {
        let (whole, whole_findings) = s.redact(&body);
        assert!(!whole_findings.is_empty(), "{what}");
        assert!(body.len() > 2 * s.max_pattern_len());
        for cut in 0..=body.len() {
            let (out, findings) = stream(&s, &body, &[cut]);
            assert_eq!(out, whole.as_ref(), "{what} cut={cut}");
            assert_eq!(
                sorted(findings),
                sorted(whole_findings.clone()),
                "{what} cut={cut}"
            );
        }
    }
}

#[test]
fn a_match_split_across_three_chunks_is_found_at_every_pair_of_split_points() {
    let s = scanner();
    for (what, body) in bodies() {
        let (whole, whole_findings) = s.redact(&body);
        let cuts = interesting_cuts(&s, &body, &whole_findings);
        for (i, &a) in cuts.iter().enumerate() {
            for &b in &cuts[i..] {
                let (out, findings) = stream(&s, &body, &[a, b]);
                assert_eq!(out, whole.as_ref(), "{what} cuts={a},{b}");
                assert_eq!(
                    sorted(findings),
                    sorted(whole_findings.clone()),
                    "{what} {a},{b}"
                );
            }
        }
    }
}

#[test]
fn one_byte_chunks_over_a_long_body_find_everything_once() {
    let s = scanner();
    let mut body = Vec::new();
    for (_, b) in bodies() {
        body.extend(std::iter::repeat_n(b'.', 300));
        body.extend(b);
    }
    let (whole, whole_findings) = s.redact(&body);
    let cuts: Vec<usize> = (1..body.len()).collect();
    let (out, findings) = stream(&s, &body, &cuts);
    assert_eq!(out, whole.as_ref());
    assert_eq!(sorted(findings), sorted(whole_findings));
}

#[test]
fn a_private_key_longer_than_the_horizon_is_masked_to_its_end_line() {
    let s = scanner();
    let mut body = b"key: -----BEGIN RSA PRIVATE KEY-----\n".to_vec();
    for _ in 0..40 {
        body.extend_from_slice(
            b"MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF\n",
        );
    }
    body.extend_from_slice(b"-----END RSA PRIVATE KEY-----\nThanks, Bob.");
    let key_end = body.len() - "\nThanks, Bob.".len();
    for chunk in [1usize, 7, 100, 1000] {
        let cuts: Vec<usize> = (chunk..body.len()).step_by(chunk).collect();
        let (out, findings) = stream(&s, &body, &cuts);
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.detector == Detector::PrivateKey)
                .count(),
            1
        );
        assert!(out[5..key_end].iter().all(|&b| b == b'*'), "chunk={chunk}");
        assert_eq!(&out[key_end..], b"\nThanks, Bob.", "chunk={chunk}");
        assert_eq!(&out[..5], b"key: ");
    }
}

#[test]
fn feed_without_release_reports_the_same_findings() {
    let s = scanner();
    for (what, body) in bodies() {
        let whole = s.scan(&body);
        for cut in 0..=body.len() {
            let mut st = s.stream();
            let mut findings = st.feed(&body[..cut]);
            findings.extend(st.feed(&body[cut..]));
            findings.extend(st.finish());
            assert_eq!(sorted(findings), sorted(whole.clone()), "{what} cut={cut}");
        }
    }
}

#[test]
fn nothing_is_released_before_it_is_judged() {
    let s = scanner();
    let mut st = s.stream();
    // Fewer bytes than the horizon: all held, since the secret may still be completing.
    let r = st.feed_release(&SECRET[..10]);
    assert!(r.bytes.is_empty());
    assert_eq!(st.judged(), 0);
    assert_eq!(st.held(), 10);
    let r = st.feed_release(&SECRET[10..]);
    assert!(r.bytes.is_empty() && r.findings.is_empty());
    let r = st.finish_release();
    assert_eq!(r.bytes, vec![b'*'; SECRET.len()]);
    let secrets: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.detector == Detector::Secrets)
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].range, 0..SECRET.len());
    assert!(s.max_pattern_len() >= SECRET.len() * 3);
}
