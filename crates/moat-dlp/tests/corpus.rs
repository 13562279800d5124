//! Recall and false positives of the default detectors (plus the corpus's secrets) over the
//! seeded, labeled corpus of `tests/corpus/generate.rs`: recall at least 99% for each
//! detector and overall, false positives (negative samples with any finding) at most 1%.

#[path = "corpus/generate.rs"]
mod generate;

use moat_dlp::{DetectorSet, Scanner};

const SEED: u64 = 0x00d1_c0de_5eed_2025;

#[test]
fn default_detectors_meet_recall_and_false_positive_targets() {
    let corpus = generate::generate(SEED);
    let mut builder = Scanner::builder().detectors(DetectorSet::default());
    for (name, value) in &corpus.secrets {
        builder = builder.secret(name, value);
    }
    let scanner = builder.build().unwrap_or_else(|e| panic!("{e}"));
    let report = generate::evaluate(&corpus, |body| scanner.scan(body));

    let (recall, fp) = (report.recall(), report.false_positives());
    assert!(recall.total >= 2000, "{} positives", recall.total);
    assert!(fp.total >= 5000, "{} negatives", fp.total);
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|s| format!("{}: {}", s.kind, String::from_utf8_lossy(&s.body)))
        .collect();
    for (detector, tally) in &report.recall_by_detector {
        assert!(
            tally.rate() >= 0.99,
            "{detector} recall {}/{}; failures: {failures:#?}",
            tally.hit,
            tally.total
        );
    }
    assert!(recall.rate() >= 0.99, "recall {recall:?}; {failures:#?}");
    assert!(fp.rate() <= 0.01, "false positives {fp:?}; {failures:#?}");
}

#[test]
fn the_corpus_is_deterministic() {
    let (a, b) = (generate::generate(SEED), generate::generate(SEED));
    assert_eq!(a.samples.len(), b.samples.len());
    assert!(
        a.samples
            .iter()
            .zip(&b.samples)
            .all(|(x, y)| x.body == y.body)
    );
}
