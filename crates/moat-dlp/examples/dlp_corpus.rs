//! Recall and false-positive rate of the DLP scanner over the seeded, labeled corpus of
//! `tests/corpus/generate.rs`, printed as markdown tables: per detector and overall, per
//! kind of positive, per kind of negative.
//!
//! Run with `cargo run --release -p moat-dlp --example dlp_corpus [seed]`. The scanner has
//! the default detectors (high-entropy off) and the corpus's secrets.

#[path = "../tests/corpus/generate.rs"]
mod generate;

use moat_dlp::{DetectorSet, Scanner};

fn pct(t: generate::Tally) -> String {
    format!("{:.2}%", 100.0 * t.rate())
}

fn main() -> Result<(), moat_dlp::DlpError> {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00d1_c0de_5eed_2025);
    let corpus = generate::generate(seed);
    let mut builder = Scanner::builder().detectors(DetectorSet::default());
    for (name, value) in &corpus.secrets {
        builder = builder.secret(name, value);
    }
    let scanner = builder.build()?;
    let report = generate::evaluate(&corpus, |body| scanner.scan(body));

    let (recall, fp) = (report.recall(), report.false_positives());
    println!(
        "seed {seed:#x}: {} positives, {} negatives, {} secrets given to the scanner\n",
        recall.total,
        fp.total,
        corpus.secrets.len()
    );
    println!("| detector | found | positives | recall |");
    println!("|---|---:|---:|---:|");
    for (detector, t) in &report.recall_by_detector {
        println!("| {detector} | {} | {} | {} |", t.hit, t.total, pct(*t));
    }
    println!(
        "| **overall** | {} | {} | **{}** |",
        recall.hit,
        recall.total,
        pct(recall)
    );
    println!(
        "\nFalse positives: {} of {} negative samples had a finding (**{}**).\n",
        fp.hit,
        fp.total,
        pct(fp)
    );
    println!("| positive kind | found | samples | recall |");
    println!("|---|---:|---:|---:|");
    for (kind, t) in &report.recall_by_kind {
        println!("| {kind} | {} | {} | {} |", t.hit, t.total, pct(*t));
    }
    println!("\n| negative kind | with a finding | samples | rate |");
    println!("|---|---:|---:|---:|");
    for (kind, t) in &report.fp_by_kind {
        println!("| {kind} | {} | {} | {} |", t.hit, t.total, pct(*t));
    }
    if !report.failures.is_empty() {
        println!("\nSome failures (up to three per kind):\n");
        for s in &report.failures {
            println!("- `{}`: {:?}", s.kind, String::from_utf8_lossy(&s.body));
            for f in scanner.scan(&s.body) {
                println!(
                    "  - found {f}: {:?}",
                    String::from_utf8_lossy(&s.body[f.range.clone()])
                );
            }
        }
    }
    Ok(())
}
