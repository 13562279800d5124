//! Advisory scan and import cost: a generated OSV export of 50,000 advisories (crates.io,
//! npm and PyPI, as an `all.zip`) and a bill of materials of 300 packages.
//!
//! Prints the time to read the export (as `moat advisories import` does on the client),
//! to build the database (as a node does at start and after an import), and to scan the
//! 300 packages — beside a baseline in the same run: the same matching done by walking
//! every advisory instead of the package index.
//!
//! `cargo run --release -p moat-supply --example advisory_bench [ADVISORIES] [PACKAGES] [KEEP_ZIP]`
//! (`bench/advisories.sh` keeps the zip to time a node's import of it).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark")]

use std::io::Write as _;
use std::time::{Duration, Instant};

use moat_supply::sbom::Package;
use moat_supply::{AdvisoryDb, Ecosystem, Sbom};

/// A small deterministic generator (xorshift), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const ECOSYSTEMS: [(Ecosystem, &str, &str); 3] = [
    (Ecosystem::CratesIo, "crates.io", "SEMVER"),
    (Ecosystem::Npm, "npm", "SEMVER"),
    (Ecosystem::PyPI, "PyPI", "ECOSYSTEM"),
];

fn package_name(eco: usize, i: u64) -> String {
    match eco {
        1 if i.is_multiple_of(5) => format!("@scope{}/pkg-{i}", i % 17),
        _ => format!("pkg-{i}"),
    }
}

fn version(rng: &mut Rng) -> String {
    format!("{}.{}.{}", rng.below(5), rng.below(20), rng.below(20))
}

/// One OSV record with a realistic shape: one or two ranges, sometimes `last_affected`,
/// sometimes an explicit `versions` list, a CVSS vector or a GitHub severity label.
fn advisory(rng: &mut Rng, n: u64, packages: u64) -> String {
    let eco = (n % 3) as usize;
    let (_, osv_name, range_type) = ECOSYSTEMS[eco];
    let name = package_name(eco, rng.below(packages));
    let a = version(rng);
    let b = version(rng);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let events = match rng.below(4) {
        0 => format!(r#"[{{"introduced":"0"}},{{"fixed":"{hi}"}}]"#),
        1 => format!(r#"[{{"introduced":"{lo}"}},{{"last_affected":"{hi}"}}]"#),
        _ => format!(r#"[{{"introduced":"{lo}"}},{{"fixed":"{hi}"}}]"#),
    };
    let severity = match rng.below(3) {
        0 => r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#.to_string(),
        1 => String::new(),
        _ => String::new(),
    };
    let label = ["LOW", "MODERATE", "HIGH", "CRITICAL"][rng.below(4) as usize];
    let versions = if rng.below(5) == 0 {
        format!(r#","versions":["{lo}"]"#)
    } else {
        String::new()
    };
    format!(
        r#"{{"schema_version":"1.6.0","id":"GHSA-bench-{n:06}","modified":"2026-01-01T00:00:00Z","published":"2025-01-01T00:00:00Z","aliases":["CVE-2025-{n}"],"summary":"generated advisory {n}",{severity}"affected":[{{"package":{{"ecosystem":"{osv_name}","name":"{name}"}},"ranges":[{{"type":"{range_type}","events":{events}}}]{versions}}}],"database_specific":{{"severity":"{label}"}}}}"#
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let advisories: u64 = args.next().map_or(50_000, |a| a.parse().unwrap());
    let packages: u64 = args.next().map_or(300, |a| a.parse().unwrap());
    // About 2.5 advisories per package name, as in the real OSV data for these ecosystems.
    let names = advisories * 2 / 5;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let dir = tempfile::tempdir().unwrap();
    let zip_path = args
        .next()
        .map_or_else(|| dir.path().join("all.zip"), std::path::PathBuf::from);
    let t = Instant::now();
    {
        let file = std::fs::File::create(&zip_path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for n in 0..advisories {
            zip.start_file(format!("GHSA-bench-{n:06}.json"), opts)
                .unwrap();
            zip.write_all(advisory(&mut rng, n, names).as_bytes())
                .unwrap();
        }
        zip.finish().unwrap();
    }
    let size = std::fs::metadata(&zip_path).unwrap().len();
    eprintln!(
        "generated {advisories} advisories over {names} package names per ecosystem: {:.1} MB zip in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // The client side of `moat advisories import`: read and check every record.
    let runs = 3;
    let mut read = Vec::new();
    let mut records = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        records = moat_supply::read_records(&zip_path).unwrap();
        read.push(t.elapsed());
    }
    assert_eq!(records.len() as u64, advisories);
    // The node side: build the database from stored records.
    let mut build = Vec::new();
    let mut db = AdvisoryDb::default();
    for _ in 0..runs {
        let t = Instant::now();
        db = AdvisoryDb::from_records(records.iter().map(|r| r.json.as_str())).unwrap();
        build.push(t.elapsed());
    }
    assert_eq!(db.len() as u64, advisories);

    // 300 packages: a third per ecosystem, names drawn from the advisories' packages.
    let components: Vec<Package> = (0..packages)
        .map(|i| {
            let eco = (i % 3) as usize;
            Package {
                ecosystem: ECOSYSTEMS[eco].0,
                name: package_name(eco, rng.below(names)),
                version: version(&mut rng),
            }
        })
        .collect();
    let sbom = Sbom {
        components,
        unpinned: Vec::new(),
    };
    let scans = 50;
    let mut scan = Vec::new();
    let mut findings = 0;
    for _ in 0..scans {
        let t = Instant::now();
        findings = db.scan(&sbom).len();
        scan.push(t.elapsed());
    }

    // Baseline: one database per advisory, scanned in turn — what matching costs without
    // the package index (every advisory's ranges parsed and walked for every scan).
    let singles: Vec<AdvisoryDb> = records
        .iter()
        .map(|r| AdvisoryDb::from_records([r.json.as_str()]).unwrap())
        .collect();
    let mut naive = Vec::new();
    let mut naive_findings = 0;
    for _ in 0..3 {
        let t = Instant::now();
        naive_findings = singles.iter().map(|d| d.scan(&sbom).len()).sum();
        naive.push(t.elapsed());
    }
    assert_eq!(
        findings, naive_findings,
        "the index must find what a full walk finds"
    );

    println!("| step ({advisories} advisories, {packages} packages) | median | runs |");
    println!("|---|---|---|");
    println!(
        "| read the export (`all.zip`, {:.1} MB) | {} | {runs} |",
        size as f64 / 1e6,
        ms(median(read))
    );
    println!(
        "| build the database from stored records | {} | {runs} |",
        ms(median(build))
    );
    println!(
        "| **scan {packages} packages ({findings} findings)** | **{}** | {scans} |",
        ms(median(scan.clone()))
    );
    println!(
        "| baseline: scan by walking every advisory | {} | 3 |",
        ms(median(naive.clone()))
    );
    println!(
        "\nscan target < 100 ms after import: {}",
        if median(scan) < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
}
