//! npm versions and ranges, with the semantics of node-semver 7 (`semver.satisfies`,
//! `semver.compare`) in its default, strict mode.
//!
//! node-semver turns a range into comparators by a pipeline of regular-expression
//! rewrites (hyphen ranges, then `^`, `~`, x-ranges, `*`), and its quirks are part of what
//! the npm ecosystem means by a range. So this module ports that pipeline rewrite for
//! rewrite, with the same patterns (including the length caps of node-semver's "safe"
//! patterns) instead of inventing a grammar; `tests/differential.rs` checks it against
//! node-semver itself.

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// What was wrong with an npm version or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NpmError {
    /// The version is not a strict semver version.
    #[error("invalid npm version `{0}`")]
    InvalidVersion(String),
    /// The range does not parse.
    #[error("invalid npm range `{0}`")]
    InvalidRange(String),
}

const MAX_LENGTH: usize = 256;
const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;
const MAX_SAFE_BUILD_LENGTH: usize = MAX_LENGTH - 6;

/// The characters JavaScript's `\s` and `String.prototype.trim` treat as white space.
const JS_WS: &str = "\\t\\n\\x0B\\x0C\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}";

fn is_js_ws(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\x0B' | '\x0C' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_ws)
}

/// node-semver's source patterns, built as in `internal/re.js`.
struct Src {
    build: String,
    fullplain: String,
    xrangeplain: String,
    loose_plain: String,
    gtlt: String,
}

/// Rewrites a JavaScript pattern into the Rust dialect, applying node-semver's
/// `makeSafeRegex` caps (`\s*` → `\s{0,1}`, `\d+` → `\d{1,256}`, ...) so that lengths are
/// bounded exactly as there.
fn js(pattern: &str, safe: bool) -> String {
    let mut p = pattern.to_string();
    if safe {
        for (token, max) in [
            ("\\s", 1usize),
            ("\\d", MAX_LENGTH),
            ("[a-zA-Z0-9-]", MAX_SAFE_BUILD_LENGTH),
        ] {
            p = p
                .replace(&format!("{token}*"), &format!("{token}{{0,{max}}}"))
                .replace(&format!("{token}+"), &format!("{token}{{1,{max}}}"));
        }
    }
    p.replace("\\s", &format!("[{JS_WS}]"))
        .replace("\\d", "[0-9]")
}

fn src() -> Src {
    let numeric = "0|[1-9]\\d*";
    let numeric_loose = "\\d+";
    let nonnumeric = "\\d*[a-zA-Z-][a-zA-Z0-9-]*";
    let mainversion = format!("({numeric})\\.({numeric})\\.({numeric})");
    let mainversion_loose = format!("({numeric_loose})\\.({numeric_loose})\\.({numeric_loose})");
    let pre_id = format!("(?:{nonnumeric}|{numeric})");
    let pre_id_loose = format!("(?:{nonnumeric}|{numeric_loose})");
    let prerelease = format!("(?:-({pre_id}(?:\\.{pre_id})*))");
    let prerelease_loose = format!("(?:-?({pre_id_loose}(?:\\.{pre_id_loose})*))");
    let build_id = "[a-zA-Z0-9-]+";
    let build = format!("(?:\\+({build_id}(?:\\.{build_id})*))");
    let fullplain = format!("v?{mainversion}{prerelease}?{build}?");
    let loose_plain = format!("[v=\\s]*{mainversion_loose}{prerelease_loose}?{build}?");
    let xid = format!("{numeric}|x|X|\\*");
    let xrangeplain =
        format!("[v=\\s]*({xid})(?:\\.({xid})(?:\\.({xid})(?:{prerelease})?{build}?)?)?");
    Src {
        build,
        fullplain,
        xrangeplain,
        loose_plain,
        gtlt: "((?:<|>)?=?)".to_string(),
    }
}

struct Res {
    full: Regex,
    build: Regex,
    build_strip: Regex,
    hyphen: Regex,
    comparator_trim: Regex,
    tilde_trim: Regex,
    caret_trim: Regex,
    tilde: Regex,
    caret: Regex,
    xrange: Regex,
    star: Regex,
    gte0: Regex,
    comparator: Regex,
    ws: Regex,
}

#[expect(
    clippy::expect_used,
    reason = "the patterns are constants; every test that touches npm ranges compiles them"
)]
fn compile(pattern: &str) -> Regex {
    regex::RegexBuilder::new(pattern)
        .size_limit(64 << 20)
        .build()
        .expect("node-semver pattern compiles")
}

static RE: LazyLock<Res> = LazyLock::new(|| {
    let s = src();
    let safe = |p: &str| compile(&js(p, true));
    Res {
        full: safe(&format!("^{}$", s.fullplain)),
        build: safe(&s.build),
        build_strip: compile(&js(&s.build, false)),
        hyphen: safe(&format!(
            "^\\s*({})\\s+-\\s+({})\\s*$",
            s.xrangeplain, s.xrangeplain
        )),
        comparator_trim: safe(&format!(
            "(\\s*){}\\s*({}|{})",
            s.gtlt, s.loose_plain, s.xrangeplain
        )),
        tilde_trim: safe("(\\s*)(?:~>?)\\s+"),
        caret_trim: safe("(\\s*)(?:\\^)\\s+"),
        tilde: safe(&format!("^(?:~>?){}$", s.xrangeplain)),
        caret: safe(&format!("^(?:\\^){}$", s.xrangeplain)),
        xrange: safe(&format!("^{}\\s*{}$", s.gtlt, s.xrangeplain)),
        star: safe("(<|>)?=?\\s*\\*"),
        gte0: safe("^\\s*>=\\s*0\\.0\\.0\\s*$"),
        comparator: safe(&format!("^{}\\s*({})$|^$", s.gtlt, s.fullplain)),
        ws: compile(&js("\\s+", false)),
    }
});

/// One pre-release identifier: a number below 2^53 - 1, or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// Numeric identifier.
    Numeric(u64),
    /// Alphanumeric identifier (or a numeric one too large for JavaScript numbers).
    Text(String),
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Numeric(n) => write!(f, "{n}"),
            Identifier::Text(s) => f.write_str(s),
        }
    }
}

/// `+value` of a JavaScript string of digits, as a double.
fn js_number(s: &str) -> f64 {
    s.parse::<f64>().unwrap_or(f64::NAN)
}

/// node-semver's `compareIdentifiers`.
fn compare_identifiers(a: &Identifier, b: &Identifier) -> Ordering {
    let text = |i: &Identifier| match i {
        Identifier::Numeric(n) => n.to_string(),
        Identifier::Text(s) => s.clone(),
    };
    if let (Identifier::Numeric(x), Identifier::Numeric(y)) = (a, b) {
        return x.cmp(y);
    }
    let (sa, sb) = (text(a), text(b));
    let anum = !sa.is_empty() && sa.bytes().all(|c| c.is_ascii_digit());
    let bnum = !sb.is_empty() && sb.bytes().all(|c| c.is_ascii_digit());
    if anum && bnum {
        // JavaScript compares these as doubles, and so do we, rounding included.
        let (x, y) = (js_number(&sa), js_number(&sb));
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    if sa == sb {
        Ordering::Equal
    } else if anum {
        Ordering::Less
    } else if bnum {
        Ordering::Greater
    } else {
        // JavaScript compares UTF-16 code units; for the ASCII these identifiers are
        // made of, that is byte order.
        let ua: Vec<u16> = sa.encode_utf16().collect();
        let ub: Vec<u16> = sb.encode_utf16().collect();
        ua.cmp(&ub)
    }
}

/// A strict npm (node-semver) version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Pre-release identifiers.
    pub prerelease: Vec<Identifier>,
    /// Build metadata (ignored when comparing).
    pub build: Vec<String>,
}

impl Version {
    /// Parses a version as `new SemVer(text)` does: surrounding white space and one
    /// leading `v` are allowed.
    pub fn parse(text: &str) -> Result<Version, NpmError> {
        let bad = || NpmError::InvalidVersion(text.to_string());
        if text.chars().map(char::len_utf16).sum::<usize>() > MAX_LENGTH {
            return Err(bad());
        }
        let caps = RE.full.captures(js_trim(text)).ok_or_else(bad)?;
        let num = |i: usize| -> Result<u64, NpmError> {
            let s = caps.get(i).map(|m| m.as_str()).unwrap_or("");
            match s.parse::<u64>() {
                Ok(n) if n <= MAX_SAFE_INTEGER => Ok(n),
                _ => Err(bad()),
            }
        };
        let (major, minor, patch) = (num(1)?, num(2)?, num(3)?);
        let prerelease = match caps.get(4) {
            Some(m) if !m.as_str().is_empty() => m
                .as_str()
                .split('.')
                .map(|id| match id.parse::<u64>() {
                    Ok(n) if id.bytes().all(|c| c.is_ascii_digit()) && n < MAX_SAFE_INTEGER => {
                        Identifier::Numeric(n)
                    }
                    _ => Identifier::Text(id.to_string()),
                })
                .collect(),
            _ => Vec::new(),
        };
        let build = match caps.get(5) {
            Some(m) if !m.as_str().is_empty() => {
                m.as_str().split('.').map(str::to_string).collect()
            }
            _ => Vec::new(),
        };
        Ok(Version {
            major,
            minor,
            patch,
            prerelease,
            build,
        })
    }

    /// Whether this is a pre-release.
    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// node-semver's `compare`: precedence, build metadata ignored.
    pub fn compare(&self, other: &Version) -> Ordering {
        if self.to_string() == other.to_string() {
            return Ordering::Equal;
        }
        let main =
            (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if main != Ordering::Equal {
            return main;
        }
        match (self.prerelease.is_empty(), other.prerelease.is_empty()) {
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => return Ordering::Equal,
            (false, false) => {}
        }
        let mut i = 0;
        loop {
            match (self.prerelease.get(i), other.prerelease.get(i)) {
                (None, None) => return Ordering::Equal,
                (Some(_), None) => return Ordering::Greater,
                (None, Some(_)) => return Ordering::Less,
                (Some(a), Some(b)) if a == b => {}
                // As in node-semver, the first differing identifier decides, even when
                // the comparison calls the two equal.
                (Some(a), Some(b)) => return compare_identifiers(a, b),
            }
            i += 1;
        }
    }
}

impl fmt::Display for Version {
    /// The normalized form without build metadata, node-semver's `version`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.prerelease.is_empty() {
            let ids: Vec<String> = self.prerelease.iter().map(ToString::to_string).collect();
            write!(f, "-{}", ids.join("."))?;
        }
        Ok(())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.compare(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.compare(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One comparator; `None` version is node-semver's ANY (the empty comparator).
#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Option<Version>,
}

impl Comparator {
    fn parse(comp: &str) -> Result<Comparator, ()> {
        let comp = RE.ws.split(js_trim(comp)).collect::<Vec<_>>().join(" ");
        let caps = RE.comparator.captures(&comp).ok_or(())?;
        let op = match caps.get(1).map(|m| m.as_str()).unwrap_or("") {
            "" | "=" => Op::Eq,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return Err(()),
        };
        match caps.get(2) {
            Some(m) if !m.as_str().is_empty() => Ok(Comparator {
                op,
                version: Some(Version::parse(m.as_str()).map_err(|_| ())?),
            }),
            _ => Ok(Comparator { op, version: None }),
        }
    }

    /// node-semver's `comparator.value`.
    fn value(&self) -> String {
        match &self.version {
            None => String::new(),
            Some(v) => {
                let op = match self.op {
                    Op::Eq => "",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                };
                format!("{op}{v}")
            }
        }
    }

    fn is_null_set(&self) -> bool {
        self.value() == "<0.0.0-0"
    }

    fn test(&self, v: &Version) -> bool {
        let Some(c) = &self.version else {
            return true;
        };
        let ord = v.compare(c);
        match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        }
    }
}

/// A parsed npm range: a union (`||`) of comparator sets.
#[derive(Debug, Clone)]
pub struct Range {
    raw: String,
    set: Vec<Vec<Comparator>>,
}

fn group<'a>(caps: &'a Captures<'_>, i: usize) -> Option<&'a str> {
    caps.get(i).map(|m| m.as_str())
}

/// JavaScript truthiness of a capture: absent and empty are both false.
fn truthy(s: Option<&str>) -> bool {
    s.is_some_and(|s| !s.is_empty())
}

fn is_x(id: Option<&str>) -> bool {
    match id {
        None | Some("") => true,
        Some(s) => s.eq_ignore_ascii_case("x") || s == "*",
    }
}

/// `+s + 1` for a captured number. The capture matched the strict numeric pattern;
/// a value too large for the result to be a valid version is returned as a string that
/// the comparator parser then rejects, as node-semver's would be.
fn plus1(s: Option<&str>) -> String {
    match s.unwrap_or("").parse::<u64>() {
        Ok(n) if n < MAX_SAFE_INTEGER => (n + 1).to_string(),
        _ => "99999999999999999999999".to_string(),
    }
}

/// JavaScript's `String.prototype.replace` with a non-global pattern: the first match only.
fn replace_first(re: &Regex, s: &str, f: impl Fn(&Captures<'_>) -> String) -> String {
    match re.captures(s) {
        None => s.to_string(),
        Some(caps) => {
            let Some(m) = caps.get(0) else {
                return s.to_string();
            };
            let mut out = String::with_capacity(s.len());
            out.push_str(&s[..m.start()]);
            out.push_str(&f(&caps));
            out.push_str(&s[m.end()..]);
            out
        }
    }
}

fn hyphen_replace(c: &Captures<'_>) -> String {
    let from = group(c, 1).unwrap_or("");
    let (fmj, fmn, fp) = (group(c, 2), group(c, 3), group(c, 4));
    let to = group(c, 7).unwrap_or("");
    let (tmj, tmn, tp, tpr) = (group(c, 8), group(c, 9), group(c, 10), group(c, 11));
    let fmj_s = fmj.unwrap_or("");
    let fmn_s = fmn.unwrap_or("");
    let from = if is_x(fmj) {
        String::new()
    } else if is_x(fmn) {
        format!(">={fmj_s}.0.0")
    } else if is_x(fp) {
        format!(">={fmj_s}.{fmn_s}.0")
    } else {
        // With or without a pre-release, the full lower version is kept as written
        // (node-semver only adds `-0` under `includePrerelease`).
        format!(">={from}")
    };
    let tmj_s = tmj.unwrap_or("");
    let tmn_s = tmn.unwrap_or("");
    let tp_s = tp.unwrap_or("");
    let to = if is_x(tmj) {
        String::new()
    } else if is_x(tmn) {
        format!("<{}.0.0-0", plus1(tmj))
    } else if is_x(tp) {
        format!("<{tmj_s}.{}.0-0", plus1(tmn))
    } else if truthy(tpr) {
        format!("<={tmj_s}.{tmn_s}.{tp_s}-{}", tpr.unwrap_or(""))
    } else {
        format!("<={to}")
    };
    js_trim(&format!("{from} {to}")).to_string()
}

fn replace_tilde(comp: &str) -> String {
    replace_first(&RE.tilde, comp, |c| {
        let (mj, mn, p, pr) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
        let (mjs, mns, ps) = (mj.unwrap_or(""), mn.unwrap_or(""), p.unwrap_or(""));
        if is_x(mj) {
            String::new()
        } else if is_x(mn) {
            format!(">={mjs}.0.0 <{}.0.0-0", plus1(mj))
        } else if is_x(p) {
            format!(">={mjs}.{mns}.0 <{mjs}.{}.0-0", plus1(mn))
        } else if truthy(pr) {
            format!(
                ">={mjs}.{mns}.{ps}-{} <{mjs}.{}.0-0",
                pr.unwrap_or(""),
                plus1(mn)
            )
        } else {
            format!(">={mjs}.{mns}.{ps} <{mjs}.{}.0-0", plus1(mn))
        }
    })
}

fn replace_caret(comp: &str) -> String {
    replace_first(&RE.caret, comp, |c| {
        let (mj, mn, p, pr) = (group(c, 1), group(c, 2), group(c, 3), group(c, 4));
        let (mjs, mns, ps) = (mj.unwrap_or(""), mn.unwrap_or(""), p.unwrap_or(""));
        let prs = pr.unwrap_or("");
        if is_x(mj) {
            String::new()
        } else if is_x(mn) {
            format!(">={mjs}.0.0 <{}.0.0-0", plus1(mj))
        } else if is_x(p) {
            if mjs == "0" {
                format!(">={mjs}.{mns}.0 <{mjs}.{}.0-0", plus1(mn))
            } else {
                format!(">={mjs}.{mns}.0 <{}.0.0-0", plus1(mj))
            }
        } else if truthy(pr) {
            if mjs == "0" {
                if mns == "0" {
                    format!(">={mjs}.{mns}.{ps}-{prs} <{mjs}.{mns}.{}-0", plus1(p))
                } else {
                    format!(">={mjs}.{mns}.{ps}-{prs} <{mjs}.{}.0-0", plus1(mn))
                }
            } else {
                format!(">={mjs}.{mns}.{ps}-{prs} <{}.0.0-0", plus1(mj))
            }
        } else if mjs == "0" {
            if mns == "0" {
                format!(">={mjs}.{mns}.{ps} <{mjs}.{mns}.{}-0", plus1(p))
            } else {
                format!(">={mjs}.{mns}.{ps} <{mjs}.{}.0-0", plus1(mn))
            }
        } else {
            format!(">={mjs}.{mns}.{ps} <{}.0.0-0", plus1(mj))
        }
    })
}

fn replace_xrange(comp: &str) -> String {
    let comp = js_trim(comp);
    replace_first(&RE.xrange, comp, |c| {
        let whole = group(c, 0).unwrap_or("").to_string();
        let mut gtlt = group(c, 1).unwrap_or("").to_string();
        let (mj, mn, p) = (group(c, 2), group(c, 3), group(c, 4));
        if (is_x(mj) && !is_x(mn)) || (is_x(mn) && truthy(p) && !is_x(p)) {
            return comp.to_string();
        }
        let xmj = is_x(mj);
        let xmn = xmj || is_x(mn);
        let xp = xmn || is_x(p);
        let any_x = xp;
        if gtlt == "=" && any_x {
            gtlt.clear();
        }
        let mut pr = "";
        if xmj {
            if gtlt == ">" || gtlt == "<" {
                "<0.0.0-0".to_string()
            } else {
                "*".to_string()
            }
        } else if !gtlt.is_empty() && any_x {
            let mut mjs = mj.unwrap_or("").to_string();
            let mut mns = if xmn {
                "0".to_string()
            } else {
                mn.unwrap_or("").to_string()
            };
            let mut ps = "0".to_string();
            if gtlt == ">" {
                gtlt = ">=".to_string();
                if xmn {
                    mjs = plus1(Some(&mjs));
                    mns = "0".to_string();
                    ps = "0".to_string();
                } else {
                    mns = plus1(Some(&mns));
                    ps = "0".to_string();
                }
            } else if gtlt == "<=" {
                gtlt = "<".to_string();
                if xmn {
                    mjs = plus1(Some(&mjs));
                } else {
                    mns = plus1(Some(&mns));
                }
            }
            if gtlt == "<" {
                pr = "-0";
            }
            format!("{gtlt}{mjs}.{mns}.{ps}{pr}")
        } else if xmn {
            let mjs = mj.unwrap_or("");
            format!(">={mjs}.0.0{pr} <{}.0.0-0", plus1(mj))
        } else if xp {
            let (mjs, mns) = (mj.unwrap_or(""), mn.unwrap_or(""));
            format!(">={mjs}.{mns}.0{pr} <{mjs}.{}.0-0", plus1(mn))
        } else {
            whole
        }
    })
}

fn split_ws(s: &str) -> Vec<&str> {
    RE.ws.split(s).collect()
}

fn parse_comparator(comp: &str) -> String {
    let comp = replace_first(&RE.build, comp, |_| String::new());
    let comp = split_ws(js_trim(&comp))
        .into_iter()
        .map(replace_caret)
        .collect::<Vec<_>>()
        .join(" ");
    let comp = split_ws(js_trim(&comp))
        .into_iter()
        .map(replace_tilde)
        .collect::<Vec<_>>()
        .join(" ");
    let comp = split_ws(&comp)
        .into_iter()
        .map(replace_xrange)
        .collect::<Vec<_>>()
        .join(" ");
    replace_first(&RE.star, js_trim(&comp), |_| String::new())
}

fn parse_set(range: &str) -> Result<Vec<Comparator>, ()> {
    let range = RE.build_strip.replace_all(range, "");
    let range = replace_first(&RE.hyphen, &range, hyphen_replace);
    let range = RE.comparator_trim.replace_all(&range, "$1$2$3");
    let range = RE.tilde_trim.replace_all(&range, "${1}~");
    let range = RE.caret_trim.replace_all(&range, "${1}^");
    let joined = range
        .split(' ')
        .map(parse_comparator)
        .collect::<Vec<_>>()
        .join(" ");
    let list: Vec<String> = split_ws(&joined)
        .into_iter()
        .map(|c| replace_first(&RE.gte0, js_trim(c), |_| String::new()))
        .collect();
    let comparators = list
        .iter()
        .map(|c| Comparator::parse(c))
        .collect::<Result<Vec<_>, ()>>()?;
    let mut out: Vec<Comparator> = Vec::new();
    for comp in comparators {
        if comp.is_null_set() {
            return Ok(vec![comp]);
        }
        let value = comp.value();
        if let Some(slot) = out.iter_mut().find(|c| c.value() == value) {
            *slot = comp;
        } else {
            out.push(comp);
        }
    }
    if out.len() > 1 && out.iter().any(|c| c.version.is_none()) {
        out.retain(|c| c.version.is_some());
    }
    Ok(out)
}

impl Range {
    /// Parses a range as `new semver.Range(text)` does.
    pub fn parse(text: &str) -> Result<Range, NpmError> {
        let bad = || NpmError::InvalidRange(text.to_string());
        let raw = split_ws(js_trim(text)).join(" ");
        let mut set = Vec::new();
        for part in raw.split("||") {
            let comps = parse_set(js_trim(part)).map_err(|_| bad())?;
            if !comps.is_empty() {
                set.push(comps);
            }
        }
        if set.is_empty() {
            return Err(bad());
        }
        if set.len() > 1 {
            let first = set[0].clone();
            set.retain(|c| !c.first().is_some_and(Comparator::is_null_set));
            if set.is_empty() {
                set = vec![first];
            } else if set.len() > 1
                && let Some(any) = set
                    .iter()
                    .find(|c| c.len() == 1 && c[0].version.is_none())
                    .cloned()
            {
                set = vec![any];
            }
        }
        Ok(Range { raw, set })
    }

    /// The range as given, white space collapsed.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// node-semver's `range.test(version)`, default options.
    pub fn test(&self, v: &Version) -> bool {
        self.set.iter().any(|set| test_set(set, v))
    }
}

fn test_set(set: &[Comparator], v: &Version) -> bool {
    if !set.iter().all(|c| c.test(v)) {
        return false;
    }
    if v.is_prerelease() {
        // A pre-release satisfies a set only if some comparator names a pre-release of
        // the same [major, minor, patch]: `>1.2.3-alpha.3` admits `1.2.3-alpha.7`, never
        // `3.4.5-alpha.9`.
        return set.iter().any(|c| {
            c.version.as_ref().is_some_and(|a| {
                a.is_prerelease() && (a.major, a.minor, a.patch) == (v.major, v.minor, v.patch)
            })
        });
    }
    true
}

/// Whether `version` satisfies `range`, as `semver.satisfies` decides, except that an
/// invalid version or range is an error rather than `false`.
pub fn satisfies(version: &str, range: &str) -> Result<bool, NpmError> {
    let range = Range::parse(range)?;
    if version.is_empty() {
        return Err(NpmError::InvalidVersion(String::new()));
    }
    let v = Version::parse(version)?;
    Ok(range.test(&v))
}

/// node-semver's `compare(a, b)`.
pub fn compare(a: &str, b: &str) -> Result<Ordering, NpmError> {
    Ok(Version::parse(a)?.compare(&Version::parse(b)?))
}

#[cfg(test)]
#[path = "npm_tests.rs"]
mod tests;
