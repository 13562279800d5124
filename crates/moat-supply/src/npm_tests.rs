//! Unit tests of npm's version ordering and range matching: carets, tildes, x-ranges,
//! the pre-release rule and invalid input (the differential test compares with npm's `semver`).

use super::*;

fn sat(v: &str, r: &str) -> bool {
    satisfies(v, r).unwrap()
}

#[test]
fn carets_tildes_and_x_ranges() {
    assert!(sat("1.2.3", "^1.2.3"));
    assert!(sat("1.9.0", "^1.2.3"));
    assert!(!sat("2.0.0", "^1.2.3"));
    assert!(sat("0.2.5", "^0.2.3"));
    assert!(!sat("0.3.0", "^0.2.3"));
    assert!(!sat("0.0.4", "^0.0.3"));
    assert!(sat("1.2.9", "~1.2.3"));
    assert!(!sat("1.3.0", "~1.2.3"));
    assert!(sat("1.4.0", "1.x"));
    assert!(sat("1.4.0", "1.2 - 2.3.4"));
    assert!(!sat("2.3.5", "1.2 - 2.3.4"));
    assert!(sat("2.3.9", "1.2 - 2.3"));
    assert!(sat("3.0.0", "<1 || >=3"));
    assert!(sat("1.0.0", "*"));
    assert!(sat("1.0.0", ""));
}

#[test]
fn prerelease_inclusion_rule() {
    assert!(sat("1.2.3-alpha.7", ">1.2.3-alpha.3"));
    assert!(!sat("3.4.5-alpha.9", ">1.2.3-alpha.3"));
    assert!(!sat("1.0.0-beta", "*"));
    assert!(sat("1.2.4-beta", "^1.2.4-alpha"));
}

#[test]
fn ordering_follows_semver() {
    let order = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ];
    for w in order.windows(2) {
        assert_eq!(compare(w[0], w[1]).unwrap(), Ordering::Less, "{w:?}");
    }
    assert_eq!(compare("1.0.0+a", "1.0.0+b").unwrap(), Ordering::Equal);
}

#[test]
fn invalid_input_is_an_error() {
    assert!(satisfies("1.2", "^1").is_err());
    assert!(satisfies("1.2.3", ">=foo").is_err());
    assert!(satisfies("01.2.3", "*").is_err());
}
