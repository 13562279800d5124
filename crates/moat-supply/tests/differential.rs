//! Differential tests: Moat's npm and PEP 440 version logic against the answers of the
//! ecosystems' own implementations (node-semver, Python `packaging`), recorded by
//! `tests/differential/run.sh` in `tests/differential/expected/`.

use std::cmp::Ordering;

use moat_supply::{npm, pep440};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/differential/expected/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("{path}: {e}; run tests/differential/run.sh"),
    };
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("{path}: {e}"),
    }
}

fn ord(n: i64) -> Ordering {
    n.cmp(&0)
}

fn report(kind: &str, total: usize, failures: &[String]) {
    println!("{kind}: {} cases, {} disagreements", total, failures.len());
    for f in failures.iter().take(40) {
        println!("  {f}");
    }
}

#[test]
fn npm_matches_node_semver() {
    let data = load("npm.json");
    let mut failures = Vec::new();
    let mut total = 0;
    for case in data["versions"].as_array().unwrap() {
        total += 1;
        let v = case[0].as_str().unwrap();
        let want = case[1].as_str();
        let got = npm::Version::parse(v).ok().map(|v| v.to_string());
        if got.as_deref() != want {
            failures.push(format!("valid({v:?}): want {want:?}, got {got:?}"));
        }
    }
    for case in data["compare"].as_array().unwrap() {
        total += 1;
        let (a, b) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let want = ord(case[2].as_i64().unwrap());
        match npm::compare(a, b) {
            Ok(got) if got == want => {}
            got => failures.push(format!("compare({a:?}, {b:?}): want {want:?}, got {got:?}")),
        }
    }
    for case in data["satisfies"].as_array().unwrap() {
        total += 1;
        let (v, r) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let want = case[2].as_bool();
        let got = npm::satisfies(v, r).ok();
        if got != want {
            failures.push(format!(
                "satisfies({v:?}, {r:?}): want {want:?}, got {got:?}"
            ));
        }
    }
    report("npm", total, &failures);
    assert!(
        failures.is_empty(),
        "{} disagreements with node-semver",
        failures.len()
    );
    assert!(total > 3000);
}

fn pre(v: &Value) -> Option<bool> {
    v.as_bool()
}

#[test]
fn pep440_matches_packaging() {
    let data = load("pypi.json");
    let mut failures = Vec::new();
    let mut total = 0;
    for case in data["versions"].as_array().unwrap() {
        total += 1;
        let v = case[0].as_str().unwrap();
        let want = case[1].as_str();
        let got = pep440::Version::parse(v).ok().map(|v| v.to_string());
        if got.as_deref() != want {
            failures.push(format!("Version({v:?}): want {want:?}, got {got:?}"));
        }
    }
    for case in data["compare"].as_array().unwrap() {
        total += 1;
        let (a, b) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let want = ord(case[2].as_i64().unwrap());
        let got =
            pep440::Version::parse(a).and_then(|x| pep440::Version::parse(b).map(|y| x.cmp(&y)));
        if got != Ok(want) {
            failures.push(format!("compare({a:?}, {b:?}): want {want:?}, got {got:?}"));
        }
    }
    for case in data["contains"].as_array().unwrap() {
        total += 1;
        let (v, s) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
        let set = pep440::SpecifierSet::parse(s);
        match (&case[2], set) {
            (Value::Null, Err(_)) => {}
            (Value::Null, Ok(_)) => failures.push(format!("SpecifierSet({s:?}): want invalid")),
            (_, Err(e)) => failures.push(format!("SpecifierSet({s:?}): want valid, got {e}")),
            (want, Ok(set)) => {
                let want: Vec<Option<bool>> = want.as_array().unwrap().iter().map(pre).collect();
                let got = vec![
                    Some(set.contains(v, None)),
                    Some(set.contains(v, Some(true))),
                    Some(set.contains(v, Some(false))),
                ];
                if got != want {
                    failures.push(format!(
                        "contains({v:?}, {s:?}) [None, True, False]: want {want:?}, got {got:?}"
                    ));
                }
            }
        }
    }
    for case in data["filter"].as_array().unwrap() {
        total += 1;
        let s = case[0].as_str().unwrap();
        let items: Vec<&str> = case[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        let want: Vec<&str> = case[2]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        let got = pep440::SpecifierSet::parse(s).map(|set| set.filter(&items, None));
        if got.as_ref() != Ok(&want) {
            failures.push(format!(
                "filter({s:?}, {items:?}): want {want:?}, got {got:?}"
            ));
        }
    }
    report("pypi", total, &failures);
    assert!(
        failures.is_empty(),
        "{} disagreements with packaging",
        failures.len()
    );
    assert!(total > 3000);
}
