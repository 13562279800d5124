//! PyPI versions and specifiers: PEP 440 parsing, normalization and ordering, and
//! specifier matching with the semantics of `packaging` 26 (`Version`, `SpecifierSet`).
//!
//! Ordering uses `packaging`'s comparison key; specifiers are the intervals `packaging`
//! builds for each operator (including the boundary points "after every local version of
//! V" and "after every post-release of V"), so `<`, `>`, `==`/`!=` with and without
//! locals, `~=` and wildcards behave exactly as there. `tests/differential.rs` checks it
//! against `packaging` itself.

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// What was wrong with a version or specifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pep440Error {
    /// Not a PEP 440 version.
    #[error("invalid PEP 440 version `{0}`")]
    InvalidVersion(String),
    /// Not a PEP 440 specifier.
    #[error("invalid PEP 440 specifier `{0}`")]
    InvalidSpecifier(String),
}

#[expect(
    clippy::expect_used,
    reason = "the patterns are constants; every test that touches PEP 440 compiles them"
)]
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("PEP 440 pattern compiles")
}

static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"^(?i-u:v?",
        r"(?:(?P<epoch>[0-9]+)!)?",
        r"(?P<release>[0-9]+(?:\.[0-9]+)*)",
        r"(?P<pre>[._-]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[._-]?(?P<pre_n>[0-9]+)?)?",
        r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[._-]?(?P<post_l>post|rev|r)[._-]?(?P<post_n2>[0-9]+)?))?",
        r"(?P<dev>[._-]?(?P<dev_l>dev)[._-]?(?P<dev_n>[0-9]+)?)?",
        r"(?:\+(?P<local>[a-z0-9]+(?:[._-][a-z0-9]+)*))?",
        r")$"
    ))
});

const SPEC_PRE: &str = r"(?i-u:[-_\.]?(?:alpha|beta|preview|pre|a|b|c|rc)[-_\.]?[0-9]*)?";
const SPEC_POST: &str = r"(?i-u:(?:-[0-9]+)|(?:[-_\.]?(?:post|rev|r)[-_\.]?[0-9]*))?";
const SPEC_DEV: &str = r"(?i-u:[-_\.]?dev[-_\.]?[0-9]*)?";

static SPECIFIER_RE: LazyLock<Regex> = LazyLock::new(|| {
    let eq = format!(
        r"(?:==|!=)\s*(?i-u:v?)(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*(?:\.\*|{SPEC_PRE}{SPEC_POST}{SPEC_DEV}(?i-u:\+[a-z0-9]+(?:[-_\.][a-z0-9]+)*)?)?"
    );
    let compatible =
        format!(r"~=\s*(?i-u:v?)(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)+{SPEC_PRE}{SPEC_POST}{SPEC_DEV}");
    let other = format!(
        r"(?:<=|>=|<|>)\s*(?i-u:v?)(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*{SPEC_PRE}{SPEC_POST}{SPEC_DEV}"
    );
    compile(&format!(
        r"^(?:(?:===\s*[^\s;)]+)|(?:{eq})|(?:{compatible})|(?:{other}))$"
    ))
});

/// Python's `str.isspace` (close enough: Unicode white space plus the ASCII separators).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// A pre-release tag, normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreTag {
    /// `a`, `alpha`.
    Alpha,
    /// `b`, `beta`.
    Beta,
    /// `rc`, `c`, `pre`, `preview`.
    Rc,
}

impl PreTag {
    fn as_str(self) -> &'static str {
        match self {
            PreTag::Alpha => "a",
            PreTag::Beta => "b",
            PreTag::Rc => "rc",
        }
    }
}

/// A segment of a local version label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalSegment {
    /// All digits.
    Number(u64),
    /// Anything else, lowercased.
    Text(String),
}

/// A parsed PEP 440 version.
#[derive(Debug, Clone)]
pub struct Version {
    /// Epoch (`N!`).
    pub epoch: u64,
    /// Release segment, as written (trailing zeros kept).
    pub release: Vec<u64>,
    /// Pre-release.
    pub pre: Option<(PreTag, u64)>,
    /// Post-release number.
    pub post: Option<u64>,
    /// Development release number.
    pub dev: Option<u64>,
    /// Local version label.
    pub local: Option<Vec<LocalSegment>>,
}

/// A number in the comparison key, which boundary points extend with infinities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KNum {
    Int(i64),
    Inf,
}

/// The first item of a local-segment pair: strings rank -1, below every number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum LNum {
    Str,
    Int(u64),
    Inf,
}

/// `packaging`'s comparison key: `(epoch, trimmed release, suffix, *rest)`, with Python's
/// tuple ordering (a shorter tuple that is a prefix sorts first).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    epoch: u64,
    release: Vec<u64>,
    suffix: [KNum; 6],
    rest: Vec<Vec<(LNum, String)>>,
}

/// A key with the two infinite ends, as `packaging`'s `(-inf,)` and `(inf,)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum FKey {
    NegInf,
    Key(Key),
    PosInf,
}

fn to_u64(s: &str, whole: &str) -> Result<u64, Pep440Error> {
    s.parse::<u64>()
        .map_err(|_| Pep440Error::InvalidVersion(whole.to_string()))
}

impl Version {
    /// Parses a version as `packaging.version.Version(text)` does.
    pub fn parse(text: &str) -> Result<Version, Pep440Error> {
        let bad = || Pep440Error::InvalidVersion(text.to_string());
        let core = text.trim_matches(py_space);
        let caps = VERSION_RE.captures(core).ok_or_else(bad)?;
        let get = |n: &str| caps.name(n).map(|m| m.as_str());
        let epoch = match get("epoch") {
            Some(e) => to_u64(e, text)?,
            None => 0,
        };
        let release = get("release")
            .ok_or_else(bad)?
            .split('.')
            .map(|p| to_u64(p, text))
            .collect::<Result<Vec<_>, _>>()?;
        let num = |n: Option<&str>| -> Result<u64, Pep440Error> {
            match n {
                Some(s) if !s.is_empty() => to_u64(s, text),
                _ => Ok(0),
            }
        };
        let pre = match get("pre_l") {
            Some(l) => {
                let tag = match l.to_ascii_lowercase().as_str() {
                    "a" | "alpha" => PreTag::Alpha,
                    "b" | "beta" => PreTag::Beta,
                    _ => PreTag::Rc,
                };
                Some((tag, num(get("pre_n"))?))
            }
            None => None,
        };
        let post = if get("post_l").is_some() {
            Some(num(get("post_n2"))?)
        } else if let Some(n) = get("post_n1") {
            Some(to_u64(n, text)?)
        } else {
            None
        };
        let dev = match get("dev_l") {
            Some(_) => Some(num(get("dev_n"))?),
            None => None,
        };
        let local = get("local").map(|l| {
            l.split(['.', '_', '-'])
                .map(|part| match part.parse::<u64>() {
                    Ok(n) if part.bytes().all(|b| b.is_ascii_digit()) => LocalSegment::Number(n),
                    _ => LocalSegment::Text(part.to_ascii_lowercase()),
                })
                .collect()
        });
        Ok(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    fn from_parts(epoch: u64, release: Vec<u64>, dev: Option<u64>) -> Version {
        Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev,
            local: None,
        }
    }

    /// A pre-release or development release (`packaging`'s `is_prerelease`).
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// The version without its local label.
    pub fn public(&self) -> Version {
        Version {
            local: None,
            ..self.clone()
        }
    }

    fn suffix(&self) -> [KNum; 6] {
        let (pre_rank, pre_n) = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0),
            (None, _, _) => (3, 0),
            (Some((tag, n)), _, _) => (tag as i64, n as i64),
        };
        let (post_rank, post_n) = match self.post {
            None => (0, 0),
            Some(n) => (1, n as i64),
        };
        let (dev_rank, dev_n) = match self.dev {
            None => (1, 0),
            Some(n) => (0, n as i64),
        };
        [
            KNum::Int(pre_rank),
            KNum::Int(pre_n),
            KNum::Int(post_rank),
            KNum::Int(post_n),
            KNum::Int(dev_rank),
            KNum::Int(dev_n),
        ]
    }

    fn trimmed_release(&self) -> Vec<u64> {
        let mut r = self.release.clone();
        while r.last() == Some(&0) {
            r.pop();
        }
        r
    }

    fn key(&self) -> Key {
        let rest = match &self.local {
            None => Vec::new(),
            Some(local) => vec![
                local
                    .iter()
                    .map(|s| match s {
                        LocalSegment::Number(n) => (LNum::Int(*n), String::new()),
                        LocalSegment::Text(t) => (LNum::Str, t.clone()),
                    })
                    .collect(),
            ],
        };
        Key {
            epoch: self.epoch,
            release: self.trimmed_release(),
            suffix: self.suffix(),
            rest,
        }
    }

    /// The point after `self` and every `self+local` (before `self.post0`).
    fn after_locals(&self) -> Key {
        Key {
            epoch: self.epoch,
            release: self.trimmed_release(),
            suffix: self.suffix(),
            rest: vec![vec![(LNum::Inf, String::new())]],
        }
    }

    /// The point after every post-release of `self` (before the next release).
    fn after_posts(&self) -> Key {
        let s = self.suffix();
        Key {
            epoch: self.epoch,
            release: self.trimmed_release(),
            suffix: [
                s[0],
                s[1],
                KNum::Int(1),
                KNum::Inf,
                KNum::Int(1),
                KNum::Int(0),
            ],
            rest: vec![vec![(LNum::Inf, String::new())]],
        }
    }
}

impl fmt::Display for Version {
    /// The normalized form, as `str(Version(...))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        let rel: Vec<String> = self.release.iter().map(u64::to_string).collect();
        f.write_str(&rel.join("."))?;
        if let Some((tag, n)) = self.pre {
            write!(f, "{}{n}", tag.as_str())?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if let Some(local) = &self.local {
            let parts: Vec<String> = local
                .iter()
                .map(|s| match s {
                    LocalSegment::Number(n) => n.to_string(),
                    LocalSegment::Text(t) => t.clone(),
                })
                .collect();
            write!(f, "+{}", parts.join("."))?;
        }
        Ok(())
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
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
        self.key().cmp(&other.key())
    }
}

/// A specifier operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `~=`
    Compatible,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<=`
    LessEqual,
    /// `>=`
    GreaterEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
    /// `===`
    Arbitrary,
}

/// One interval of matching versions: `lower <= key < upper` on filter keys.
#[derive(Debug, Clone)]
struct Interval {
    lower: FKey,
    upper: FKey,
}

/// One specifier, such as `>=1.0` or `==2.*`.
#[derive(Debug, Clone)]
pub struct Specifier {
    op: Operator,
    version_text: String,
    /// The parsed version (without `.*`); `None` only for an unparsable `===` operand.
    version: Option<Version>,
    intervals: Vec<Interval>,
}

fn key_with_empty(mut k: Key) -> Key {
    k.rest.push(Vec::new());
    k
}

fn lower_incl(v: &Version) -> FKey {
    FKey::Key(v.key())
}

fn upper_excl(v: &Version) -> FKey {
    FKey::Key(v.key())
}

fn next_prefix_dev0(v: &Version) -> Version {
    let mut release = v.release.clone();
    if let Some(last) = release.last_mut() {
        *last += 1;
    }
    Version::from_parts(v.epoch, release, Some(0))
}

fn intervals_for(op: Operator, text: &str, v: &Version) -> Vec<Interval> {
    let iv = |lower: FKey, upper: FKey| Interval { lower, upper };
    if text.ends_with(".*") {
        let lower = Version::from_parts(v.epoch, v.release.clone(), Some(0));
        let upper = next_prefix_dev0(v);
        return if op == Operator::Equal {
            vec![iv(lower_incl(&lower), upper_excl(&upper))]
        } else {
            vec![
                iv(FKey::NegInf, upper_excl(&lower)),
                iv(lower_incl(&upper), FKey::PosInf),
            ]
        };
    }
    match op {
        Operator::GreaterEqual => vec![iv(lower_incl(v), FKey::PosInf)],
        Operator::LessEqual => vec![iv(FKey::NegInf, FKey::Key(v.after_locals()))],
        Operator::Greater => {
            let lower = if let Some(dev) = v.dev {
                lower_incl(&Version {
                    dev: Some(dev + 1),
                    local: None,
                    ..v.clone()
                })
            } else if let Some(post) = v.post {
                lower_incl(&Version {
                    post: Some(post + 1),
                    dev: Some(0),
                    local: None,
                    ..v.clone()
                })
            } else {
                FKey::Key(v.after_posts())
            };
            vec![iv(lower, FKey::PosInf)]
        }
        Operator::Less => {
            let bound = if v.is_prerelease() {
                v.clone()
            } else {
                Version {
                    dev: Some(0),
                    local: None,
                    ..v.clone()
                }
            };
            let min = Version::from_parts(0, vec![0], Some(0));
            if bound <= min {
                Vec::new()
            } else {
                vec![iv(FKey::NegInf, upper_excl(&bound))]
            }
        }
        Operator::Compatible => {
            let mut prefix = v.clone();
            prefix.release.pop();
            vec![iv(lower_incl(v), upper_excl(&next_prefix_dev0(&prefix)))]
        }
        Operator::Equal | Operator::NotEqual => {
            let has_local = text.contains('+');
            let upper_point = if has_local {
                key_with_empty(v.key())
            } else {
                v.after_locals()
            };
            if op == Operator::Equal {
                vec![iv(lower_incl(v), FKey::Key(upper_point))]
            } else {
                vec![
                    iv(FKey::NegInf, upper_excl(v)),
                    iv(FKey::Key(upper_point), FKey::PosInf),
                ]
            }
        }
        Operator::Arbitrary => vec![iv(FKey::NegInf, FKey::PosInf)],
    }
}

impl Specifier {
    /// Parses one specifier as `packaging.specifiers.Specifier(text)` does.
    pub fn parse(text: &str) -> Result<Specifier, Pep440Error> {
        let bad = || Pep440Error::InvalidSpecifier(text.to_string());
        let spec = text.trim_matches(py_space);
        if !SPECIFIER_RE.is_match(spec) {
            return Err(bad());
        }
        let (op, rest) = if let Some(r) = spec.strip_prefix("===") {
            (Operator::Arbitrary, r)
        } else if let Some(r) = spec.strip_prefix("~=") {
            (Operator::Compatible, r)
        } else if let Some(r) = spec.strip_prefix("==") {
            (Operator::Equal, r)
        } else if let Some(r) = spec.strip_prefix("!=") {
            (Operator::NotEqual, r)
        } else if let Some(r) = spec.strip_prefix("<=") {
            (Operator::LessEqual, r)
        } else if let Some(r) = spec.strip_prefix(">=") {
            (Operator::GreaterEqual, r)
        } else if let Some(r) = spec.strip_prefix('<') {
            (Operator::Less, r)
        } else if let Some(r) = spec.strip_prefix('>') {
            (Operator::Greater, r)
        } else {
            return Err(bad());
        };
        let version_text = rest.trim_matches(py_space).to_string();
        let operand = if op == Operator::Arbitrary {
            version_text.as_str()
        } else {
            version_text.strip_suffix(".*").unwrap_or(&version_text)
        };
        let version = Version::parse(operand).ok();
        let intervals = match (&version, op) {
            (_, Operator::Arbitrary) => Vec::new(),
            (Some(v), _) => intervals_for(op, &version_text, v),
            (None, _) => return Err(bad()),
        };
        Ok(Specifier {
            op,
            version_text,
            version,
            intervals,
        })
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The operand as written (stripped).
    pub fn version(&self) -> &str {
        &self.version_text
    }

    /// Whether this specifier by itself opts in to pre-releases (`packaging`'s
    /// `Specifier.prereleases` when not forced).
    pub fn prereleases(&self) -> Option<bool> {
        match self.op {
            Operator::NotEqual => Some(false),
            Operator::Equal if self.version_text.ends_with(".*") => Some(false),
            _ => self.version.as_ref().map(Version::is_prerelease),
        }
    }

    /// Whether a parsed version lies in this specifier's intervals (no pre-release policy).
    fn matches_version(&self, v: &Version) -> bool {
        let key = FKey::Key(v.key());
        self.intervals
            .iter()
            .any(|iv| iv.lower <= key && key < iv.upper)
    }

    /// Whether a version string matches, pre-releases allowed (the building block of
    /// the set's `contains` and `filter`).
    fn matches_text(&self, item: &str) -> bool {
        if self.op == Operator::Arbitrary {
            return item.to_lowercase() == self.version_text.to_lowercase();
        }
        match Version::parse(item) {
            Ok(v) => self.matches_version(&v),
            Err(_) => false,
        }
    }
}

/// A comma-separated set of specifiers, all of which must match.
#[derive(Debug, Clone)]
pub struct SpecifierSet {
    specs: Vec<Specifier>,
    has_arbitrary: bool,
}

impl SpecifierSet {
    /// Parses `>=1.0, !=1.3.*, <2` as `packaging.specifiers.SpecifierSet(text)` does.
    pub fn parse(text: &str) -> Result<SpecifierSet, Pep440Error> {
        let specs = text
            .split(',')
            .map(|s| s.trim_matches(py_space))
            .filter(|s| !s.is_empty())
            .map(Specifier::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SpecifierSet {
            specs,
            has_arbitrary: text.contains("==="),
        })
    }

    /// The specifiers.
    pub fn specifiers(&self) -> &[Specifier] {
        &self.specs
    }

    /// `SpecifierSet.prereleases`: `Some(true)` when any specifier names a pre-release.
    pub fn prereleases(&self) -> Option<bool> {
        if self.specs.iter().any(|s| s.prereleases() == Some(true)) {
            Some(true)
        } else {
            None
        }
    }

    /// `SpecifierSet.contains(item, prereleases)` of `packaging` 26: with `None`, a lone
    /// version that matches is accepted even if it is a pre-release (PEP 440 accepts
    /// pre-releases when nothing else satisfies); `Some(false)` rejects pre-releases;
    /// an unparsable version matches only `===` (or an empty set).
    pub fn contains(&self, item: &str, prereleases: Option<bool>) -> bool {
        let parsed = Version::parse(item).ok();
        if let Some(v) = &parsed
            && !self.has_arbitrary
            && !self.specs.is_empty()
        {
            if v.is_prerelease() && prereleases == Some(false) {
                return false;
            }
            return self.specs.iter().all(|s| s.matches_version(v));
        }
        !self.filter(&[item], prereleases).is_empty()
    }

    /// `SpecifierSet.filter(items, prereleases)`: with `None` (and no specifier naming a
    /// pre-release), pre-releases are dropped unless no final release matches.
    pub fn filter<'a>(&self, items: &[&'a str], prereleases: Option<bool>) -> Vec<&'a str> {
        let prereleases = prereleases.or(self.prereleases());
        let matched: Vec<&'a str> = items
            .iter()
            .copied()
            .filter(|item| {
                if self.has_arbitrary {
                    self.specs.iter().all(|s| s.matches_text(item))
                } else if self.specs.is_empty() {
                    true
                } else {
                    // Without `===`, unparsable items never match.
                    match Version::parse(item) {
                        Ok(v) => self.specs.iter().all(|s| s.matches_version(&v)),
                        Err(_) => false,
                    }
                }
            })
            .collect();
        let is_pre = |item: &str| Version::parse(item).is_ok_and(|v| v.is_prerelease());
        match prereleases {
            Some(true) => matched,
            Some(false) => matched.into_iter().filter(|i| !is_pre(i)).collect(),
            None => {
                // Arbitrary (unparsable) strings count as neither final nor pre-release:
                // they come out with the finals, or with the pre-releases when no final
                // matched.
                let has_final = matched
                    .iter()
                    .any(|i| Version::parse(i).is_ok_and(|v| !v.is_prerelease()));
                if has_final {
                    matched.into_iter().filter(|i| !is_pre(i)).collect()
                } else {
                    matched
                }
            }
        }
    }
}

/// Normalizes a PyPI project name (PEP 503): lowercase, runs of `-_.` become `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn normalizes() {
        assert_eq!(v("1.0-post1").to_string(), "1.0.post1");
        assert_eq!(v("1.0.dev0").to_string(), "1.0.dev0");
        assert_eq!(v("1.0RC1").to_string(), "1.0rc1");
        assert_eq!(v("v1!2.0-1").to_string(), "1!2.0.post1");
        assert_eq!(v("1.0+Ubuntu-1").to_string(), "1.0+ubuntu.1");
        assert_eq!(v(" 1.0c2 ").to_string(), "1.0rc2");
        assert!(Version::parse("1.0.x").is_err());
    }

    #[test]
    fn orders() {
        let order = [
            "1.0.dev0",
            "1.0a1.dev1",
            "1.0a1",
            "1.0a1.post1",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0+abc",
            "1.0+1",
            "1.0.post1.dev1",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{w:?}");
        }
        assert_eq!(v("1.0"), v("1.0.0"));
    }

    #[test]
    fn specifiers() {
        let s = |spec: &str, ver: &str| SpecifierSet::parse(spec).unwrap().contains(ver, None);
        assert!(s("~=1.4.2", "1.4.9"));
        assert!(!s("~=1.4.2", "1.5"));
        assert!(s("==1.*", "1.9a1"));
        assert!(!s("<1.0", "1.0a1"));
        assert!(s("<1.0a2", "1.0a1"));
        assert!(!s(">1.0", "1.0.post1"));
        assert!(s(">1.0.post1", "1.0.post2"));
        assert!(s("==1.0", "1.0+local"));
        assert!(!s("==1.0+a", "1.0+b"));
        assert!(s("===foo", "foo"));
        let set = SpecifierSet::parse(">=1.0").unwrap();
        assert!(!set.contains("2.0a1", Some(false)));
        assert_eq!(set.filter(&["1.5", "2.0a1"], None), vec!["1.5"]);
        assert_eq!(set.filter(&["2.0a1"], None), vec!["2.0a1"]);
        assert!(SpecifierSet::parse("=>1.0").is_err());
        assert!(SpecifierSet::parse("~=1").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("Jinja2"), "jinja2");
        assert_eq!(normalize_name("zope.Interface__x"), "zope-interface-x");
    }
}
