//! One attack per protection of the whole-buffer scanner: each test leaks something the way a
//! function might, and fails if the protection it names is removed.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use moat_dlp::{Channel, Detector, DetectorSet, DlpError, Encoding, Finding, MASK, Mode, Scanner};
use zeroize::Zeroizing;

const SECRET: &[u8] = b"sk_live_51HvQ2eZvKYlo2C0aB3xyz";
/// Bytes whose base64 uses `+` and `/`, so standard and URL-safe forms differ.
const BINARY_SECRET: &[u8] = b"\xfb\xef\xbe\xfb\xff\xbf\x00\x01\xfe\xfdtoken";

fn scanner_with(detectors: DetectorSet) -> Scanner {
    let secrets = vec![
        ("stripe-key", Zeroizing::new(SECRET.to_vec())),
        ("binary-key", Zeroizing::new(BINARY_SECRET.to_vec())),
    ];
    Scanner::new(&secrets, detectors).unwrap_or_else(|e| panic!("{e}"))
}

fn scanner() -> Scanner {
    scanner_with(DetectorSet::default())
}

fn secret_findings<'a>(findings: &'a [Finding], name: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.detector == Detector::Secrets && f.secret.as_deref() == Some(name))
        .collect()
}

fn detected(findings: &[Finding], detector: Detector) -> usize {
    findings.iter().filter(|f| f.detector == detector).count()
}

#[test]
fn raw_secret_in_a_json_body_is_found() {
    let mut body = br#"{"ok":true,"debug":""#.to_vec();
    body.extend_from_slice(SECRET);
    body.extend_from_slice(br#""}"#);
    let findings = scanner().scan(&body);
    let hits = secret_findings(&findings, "stripe-key");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].encoding, Some(Encoding::Raw));
    assert_eq!(&body[hits[0].range.clone()], SECRET);
}

#[test]
fn secret_inside_longer_base64_is_found_at_every_alignment() {
    let s = scanner();
    for (name, secret) in [("stripe-key", SECRET), ("binary-key", BINARY_SECRET)] {
        for before in 0..6usize {
            for after in 0..4usize {
                let mut plain = b"user=alice;"[..before].to_vec();
                plain.extend_from_slice(secret);
                plain.extend(std::iter::repeat_n(b'!', after));
                for (engine, want) in [
                    (&STANDARD, Encoding::Base64),
                    (&STANDARD_NO_PAD, Encoding::Base64),
                    (&URL_SAFE, Encoding::Base64Url),
                    (&URL_SAFE_NO_PAD, Encoding::Base64Url),
                ] {
                    let body = format!("{{\"blob\":\"{}\"}}", engine.encode(&plain));
                    let findings = s.scan(body.as_bytes());
                    let hits = secret_findings(&findings, name);
                    assert!(
                        !hits.is_empty(),
                        "{name} before={before} after={after} {body}"
                    );
                    // Where the two alphabets agree either form may be reported.
                    if name == "binary-key" {
                        assert!(
                            hits.iter().any(|f| f.encoding == Some(want)),
                            "{name} before={before} {want:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn hex_upper_and_lower_are_found() {
    let s = scanner();
    for (digits, want) in [
        (b"0123456789abcdef", Encoding::HexLower),
        (b"0123456789ABCDEF", Encoding::HexUpper),
    ] {
        let hex: String = SECRET
            .iter()
            .flat_map(|b| [digits[usize::from(b >> 4)], digits[usize::from(b & 15)]])
            .map(char::from)
            .collect();
        let body = format!("digest=00{hex}ff");
        let findings = s.scan(body.as_bytes());
        let hits = secret_findings(&findings, "stripe-key");
        assert_eq!(hits.len(), 1, "{body}");
        assert_eq!(hits[0].encoding, Some(want));
    }
}

#[test]
fn percent_encoded_secret_in_an_egress_url_is_found() {
    let secrets = vec![("db-password", Zeroizing::new(b"p@ss w/rd+42!".to_vec()))];
    let s = Scanner::new(&secrets, DetectorSet::secrets_only()).unwrap_or_else(|e| panic!("{e}"));
    for url in [
        "https://evil.example/?q=p%40ss%20w%2Frd%2B42%21",
        "https://evil.example/?q=p%40ss%20w%2frd%2b42%21",
        "https://evil.example/?q=p%40ss+w%2Frd%2B42%21",
        "https://evil.example/?q=p%40ss%20w%2Frd%2B42!",
        "https://evil.example/?q=%70%40%73%73%20%77%2F%72%64%2B%34%32%21",
    ] {
        let findings = s.scan(url.as_bytes());
        assert_eq!(secret_findings(&findings, "db-password").len(), 1, "{url}");
        let (out, _) = s.redact(url.as_bytes());
        let out = std::str::from_utf8(&out).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.starts_with("https://evil.example/?q=") && out.ends_with('*'),
            "{out}"
        );
    }
}

#[test]
fn card_numbers_passing_luhn_are_found_with_spaces_and_dashes() {
    let s = scanner();
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "3782 822463 10005",
        "5500-0000-0000-0004",
    ] {
        let body = format!("{{\"card\":\"{card}\",\"qty\":3}}");
        let findings = s.scan(body.as_bytes());
        assert_eq!(detected(&findings, Detector::CreditCard), 1, "{card}");
        let f = &findings[0];
        assert_eq!(&body.as_bytes()[f.range.clone()], card.as_bytes());
    }
}

#[test]
fn a_card_after_a_short_number_is_found_without_it() {
    let body = b"call 12 4111 1111 1111 1111, ext 3";
    let findings = scanner().scan(body);
    assert_eq!(detected(&findings, Detector::CreditCard), 1);
    assert_eq!(&body[findings[0].range.clone()], b"4111 1111 1111 1111");
}

#[test]
fn digit_runs_that_are_not_cards_are_not_found() {
    let s = scanner();
    for text in [
        "card 4111 1111 1111 1112",   // fails Luhn
        "id=99941111111111111111999", // a card inside a longer digit run
        "order4111111111111111",      // glued to letters
        "4111  1111  1111  1111",     // double separators
        "ts 1700000000123 n 42 7 19", // 13 digits failing Luhn
        // Passing Luhn, but no network issues them:
        "ts 1718000000006",                         // a millisecond timestamp
        "req 65993648-0176-4451-b311-6bee0cab6abd", // a UUID grouped 8-4-4
        "order 626-5523167-3524368",                // an order number grouped 3-7-7
    ] {
        let findings = s.scan(text.as_bytes());
        assert_eq!(detected(&findings, Detector::CreditCard), 0, "{text}");
    }
}

#[test]
fn pem_private_keys_of_every_kind_are_found_and_masked_to_their_end_line() {
    let s = scanner();
    for kind in ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "] {
        let key = format!(
            "-----BEGIN {kind}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END {kind}PRIVATE KEY-----"
        );
        let body = format!("key:\n{key}\nThanks, Bob.");
        let (out, findings) = s.redact(body.as_bytes());
        assert_eq!(detected(&findings, Detector::PrivateKey), 1, "{kind}");
        let masked = format!("key:\n{}\nThanks, Bob.", "*".repeat(key.len()));
        assert_eq!(out.as_ref(), masked.as_bytes(), "{kind}");
    }
    // A key inside a JSON string, lines escaped, encrypted-key headers included.
    let json = r#"{"k":"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n","n":1}"#;
    let (out, findings) = s.redact(json.as_bytes());
    assert_eq!(detected(&findings, Detector::PrivateKey), 1);
    let out = String::from_utf8(out.into_owned()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.starts_with(r#"{"k":"****"#) && out.ends_with(r#"*\n","n":1}"#),
        "{out}"
    );
    // A public key is not a leak.
    let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----";
    assert_eq!(
        detected(&s.scan(public.as_bytes()), Detector::PrivateKey),
        0
    );
}

#[test]
fn aws_access_key_ids_are_found() {
    let s = scanner();
    for id in [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "ABIA1234567890ABCDEF",
        "ACCAZZZZZZZZZZZZZZZZ",
    ] {
        let body = format!("aws_access_key_id = {id}\n");
        let findings = s.scan(body.as_bytes());
        assert_eq!(detected(&findings, Detector::AwsKey), 1, "{id}");
    }
    for text in [
        "AKIAIOSFODNN7EXAMPLEX",
        "xAKIAIOSFODNN7EXAMPLE",
        "akiaiosfodnn7example",
        "AKIAIOSFODNN7EXAMPL",
    ] {
        assert_eq!(
            detected(&s.scan(text.as_bytes()), Detector::AwsKey),
            0,
            "{text}"
        );
    }
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn jwts_are_found_whole() {
    let s = scanner();
    let header = format!("Bearer {JWT}");
    let (out, findings) = s.redact(header.as_bytes());
    assert_eq!(detected(&findings, Detector::Jwt), 1);
    assert_eq!(
        out.as_ref(),
        format!("Bearer {}", "*".repeat(JWT.len())).as_bytes()
    );
    // Looks like a JWT but its header names no algorithm: `{"foo":"bar"}`.
    let fake = "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc";
    assert_eq!(detected(&s.scan(fake.as_bytes()), Detector::Jwt), 0);
}

#[test]
fn high_entropy_is_off_by_default_and_on_when_asked() {
    let token = "token: Zx9Qm2LkP4vT7wR1sY8uJ3nB6cH0dF5g\n";
    assert_eq!(
        detected(&scanner().scan(token.as_bytes()), Detector::HighEntropy),
        0
    );
    let on = scanner_with(DetectorSet::default().with(Detector::HighEntropy));
    assert_eq!(
        detected(&on.scan(token.as_bytes()), Detector::HighEntropy),
        1
    );
    let prose = "the quick brown fox jumps over the lazy dog ThisIsAVeryLongIdentifierName";
    assert_eq!(
        detected(&on.scan(prose.as_bytes()), Detector::HighEntropy),
        0
    );
}

#[test]
fn detectors_not_enabled_do_not_run() {
    let s = scanner_with(DetectorSet::secrets_only());
    let body = format!("4111 1111 1111 1111 AKIAIOSFODNN7EXAMPLE {JWT}");
    assert!(s.scan(body.as_bytes()).is_empty());
}

#[test]
fn redaction_masks_every_occurrence_and_leaves_other_bytes_intact() {
    let s = scanner();
    let secret = std::str::from_utf8(SECRET).unwrap_or_else(|e| panic!("{e}"));
    let b64 = STANDARD.encode(SECRET);
    let body = format!("a={secret}&b=é{secret}&c={b64}&d=4111-1111-1111-1111&e=ok");
    let (out, findings) = s.redact(body.as_bytes());
    assert!(secret_findings(&findings, "stripe-key").len() >= 3);
    assert_eq!(out.len(), body.len());
    let out = std::str::from_utf8(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.contains(secret));
    assert!(!out.contains("4111"));
    let mut masked = vec![false; body.len()];
    for f in &findings {
        masked[f.range.clone()].fill(true);
    }
    for (i, (a, b)) in body.bytes().zip(out.bytes()).enumerate() {
        if masked[i] {
            assert_eq!(b, MASK);
        } else {
            assert_eq!(a, b, "byte {i} changed");
        }
    }
    assert!(out.starts_with("a=*") && out.ends_with("&e=ok") && out.contains("&b=é*"));
}

#[test]
fn a_secret_in_a_header_value_is_masked_into_a_valid_header() {
    let s = scanner();
    let value = format!(
        "Basic {}",
        STANDARD.encode(b"admin:sk_live_51HvQ2eZvKYlo2C0aB3xyz")
    );
    let (out, findings) = s.redact(value.as_bytes());
    assert!(!findings.is_empty());
    let out = std::str::from_utf8(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    );
}

#[test]
fn debug_and_display_never_show_a_secret() {
    let s = scanner_with(DetectorSet::all());
    let secret = std::str::from_utf8(SECRET).unwrap_or_else(|e| panic!("{e}"));
    let body = format!("{secret} {} {}", STANDARD.encode(SECRET), hex_lower(SECRET));
    let findings = s.scan(body.as_bytes());
    assert!(findings.len() >= 3);
    let builder = Scanner::builder().secret("stripe-key", SECRET);
    let arc = Arc::new(scanner());
    let mut stream = arc.stream();
    stream.feed(body.as_bytes());
    let printed = format!(
        "{s:?} {findings:?} {builder:?} {stream:?} {arc:?} {}",
        findings
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for needle in [
        secret.to_owned(),
        secret[..12].to_owned(),
        STANDARD.encode(SECRET),
        hex_lower(SECRET),
        format!("{:?}", SECRET),
    ] {
        assert!(!printed.contains(&needle), "printed {needle}");
    }
    assert!(printed.contains("stripe-key"));
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn modes_and_detectors_parse_from_manifest_names() {
    assert_eq!("block".parse(), Ok(Mode::Block));
    assert_eq!("redact".parse(), Ok(Mode::Redact));
    assert_eq!("alert".parse(), Ok(Mode::Alert));
    assert_eq!(Mode::default(), Mode::Block);
    let err = "drop".parse::<Mode>().err();
    assert_eq!(err, Some(DlpError::UnknownMode("drop".into())));
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("unknown dlp mode `drop`, expected one of: block, redact, alert")
    );
    for d in Detector::ALL {
        assert_eq!(d.as_str().parse(), Ok(d));
    }
    let err = DetectorSet::from_names(["jwt", "ssn"]).err();
    assert!(err.is_some_and(|e| e.to_string().contains("`ssn`")));
    let set = DetectorSet::from_names(["jwt"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.contains(Detector::Secrets) && set.contains(Detector::Jwt));
    assert!(!set.contains(Detector::CreditCard));
    assert!(!DetectorSet::default().contains(Detector::HighEntropy));
    assert!(DetectorSet::default().contains(Detector::AwsKey));

    // Through serde, as the manifest crate would read `[dlp]`.
    let mode: Mode = serde_json::from_str(r#""redact""#).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, Mode::Redact);
    let set: DetectorSet =
        serde_json::from_str(r#"["credit-card","high-entropy"]"#).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.contains(Detector::Secrets) && set.contains(Detector::HighEntropy));
    let bad = serde_json::from_str::<DetectorSet>(r#"["credit-cards"]"#).err();
    assert!(bad.is_some_and(|e| e.to_string().contains("credit-cards")));
}

#[test]
fn channels_have_stable_names_and_logs_are_always_redacted() {
    let names: Vec<&str> = [
        Channel::ResponseBody,
        Channel::ResponseHeader,
        Channel::EgressUrl,
        Channel::EgressHeader,
        Channel::EgressBody,
        Channel::Log,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "response-body",
            "response-header",
            "egress-url",
            "egress-header",
            "egress-body",
            "log"
        ]
    );
    for mode in [Mode::Block, Mode::Redact, Mode::Alert] {
        assert_eq!(Channel::Log.effective_mode(mode), Mode::Redact);
        assert_eq!(Channel::EgressUrl.effective_mode(mode), mode);
    }
}

#[test]
fn a_secret_that_contains_another_names_both() {
    let secrets = vec![
        (
            "outer",
            Zeroizing::new(b"prefix-inner-secret-suffix".to_vec()),
        ),
        ("inner", Zeroizing::new(b"inner-secret".to_vec())),
    ];
    let s = Scanner::new(&secrets, DetectorSet::secrets_only()).unwrap_or_else(|e| panic!("{e}"));
    let findings = s.scan(b"..prefix-inner-secret-suffix..");
    assert_eq!(secret_findings(&findings, "outer").len(), 1);
    assert_eq!(secret_findings(&findings, "inner").len(), 1);
}
