//! Walking a stored chain and naming the first thing wrong with it.
//!
//! # What can be detected, and when
//!
//! The chain is a plain SHA-256 chain with no secret in it, so whoever can write to the
//! store can also recompute hashes. What the chain alone proves is therefore limited to
//! edits made *without* recomputing everything after them; a signed [`Checkpoint`] (made
//! with a key the store never holds) pins the head at its seq and catches the rest, up to
//! that seq.
//!
//! | attack on the stored records | without a checkpoint | with a checkpoint at or after it |
//! |---|---|---|
//! | edit a field, hash left alone | [`Finding::Changed`] | same |
//! | edit a field and that record's hash | [`Finding::Changed`] (the next record still links to the old hash); undetected for the last record | same, or [`Finding::Recomputed`] for the checkpointed record |
//! | delete records, leave the rest | [`Finding::Removed`] | same |
//! | delete records, renumber later ones | [`Finding::Removed`] (a renumbered record still hashes under its old seq) | same |
//! | insert a record (taking a used seq, or renumbering later ones) | [`Finding::Inserted`] | same |
//! | swap stored records | [`Finding::Reordered`] | same |
//! | delete the newest records | undetected | [`Finding::Truncated`] |
//! | delete, insert or edit, then recompute every later hash | undetected | [`Finding::Recomputed`], or [`Finding::Truncated`] when the rewritten chain became shorter than the checkpoint |
//! | any change after the newest checkpoint, rehashed | undetected | undetected: checkpoint often and keep checkpoints off the node |
//! | forge or alter a checkpoint | — | [`Finding::BadCheckpointSignature`] |
//!
//! `Recomputed` names the checkpoint's seq, not where the rewrite began: the checkpoint
//! only knows the head. Records are judged in the order the store returns them; a store
//! that sorts by seq hides a reordering (harmless: seq and links are what count).
//! Verification expects the whole chain from seq 1 (no pruning).

use std::collections::VecDeque;
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::audit::chain::{GENESIS_HASH, record_hash};
use crate::audit::{ChainedRecord, Checkpoint};

/// How far a renumbered record's original seq is searched for: renumbering after deleting or
/// inserting up to this many records is diagnosed as such rather than as a changed record.
/// Costs at most twice this many hashes, once, on the failure path.
const MAX_RENUMBER_SHIFT: u64 = 1024;

/// The first problem found in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// Record `seq` no longer holds what was chained: its content does not hash to its stored
    /// hash, or it does but the record after it still links to its former hash (it was
    /// rewritten together with its own hash). The second reading is an inference: records
    /// `seq + 1` and `seq + 2` agree with each other but not with `seq`, so `seq` is the odd one
    /// out; if the checkpoint signed `seq`'s hash, [`Finding::Inserted`] is reported instead.
    Changed {
        /// The stored seq of the changed record.
        seq: u64,
    },
    /// Records are missing after `after_seq`: the next record present is not `expected_seq`
    /// (a gap), or it is a later record renumbered to close the gap.
    Removed {
        /// The last record verified (0: missing from the start).
        after_seq: u64,
        /// The seq that should have come next.
        expected_seq: u64,
    },
    /// Record `seq` is not part of the chain the writer made: a second record claiming a seq
    /// already used, a record followed by a genuine one renumbered to make room for it, or a
    /// self-consistent record that does not link to the one before it. In the last case,
    /// when nothing follows, the record before it may instead have been rewritten with its
    /// hash; the two cannot be told apart.
    Inserted {
        /// The seq the forged record holds.
        seq: u64,
    },
    /// Record `found_seq` is stored where `expected_seq` belongs, and `expected_seq` comes
    /// later.
    Reordered {
        /// The seq that should have come next.
        expected_seq: u64,
        /// The seq that came instead.
        found_seq: u64,
    },
    /// The chain ends at `last_seq`, before the checkpoint's seq: records were removed from its
    /// end (or the chain was rewritten shorter). Only detectable with a checkpoint.
    Truncated {
        /// The checkpoint's seq.
        checkpoint_seq: u64,
        /// The last record present (0: none).
        last_seq: u64,
    },
    /// The record at the checkpoint's seq is consistent with the chain before it, but its hash
    /// is not the one the checkpoint signed: the chain up to `seq` was rewritten and rehashed.
    /// Only detectable with a checkpoint.
    Recomputed {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The checkpoint's signature does not verify with the given public key (altered, forged,
    /// or made with another key). Nothing else is checked: fix the checkpoint first.
    BadCheckpointSignature,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Changed { seq } => write!(
                f,
                "record {seq} was changed: it no longer matches what the chain recorded"
            ),
            Finding::Removed {
                after_seq,
                expected_seq,
            } => write!(
                f,
                "records were removed after {after_seq}: {expected_seq} is missing"
            ),
            Finding::Inserted { seq } => {
                write!(f, "record {seq} was inserted: it is not part of the chain")
            }
            Finding::Reordered {
                expected_seq,
                found_seq,
            } => write!(
                f,
                "records are out of order: found {found_seq} where {expected_seq} belongs"
            ),
            Finding::Truncated {
                checkpoint_seq,
                last_seq,
            } => write!(
                f,
                "the chain ends at {last_seq}, before the signed checkpoint at {checkpoint_seq}: \
                 its newest records were removed"
            ),
            Finding::Recomputed { seq } => write!(
                f,
                "record {seq} does not have the hash the checkpoint signed: the chain was \
                 rewritten and rehashed"
            ),
            Finding::BadCheckpointSignature => {
                f.write_str("the checkpoint's signature does not verify with the given public key")
            }
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// How many records, from seq 1, were verified before the first finding (all of them when
    /// there is none).
    pub records: u64,
    /// `(seq, hash)` of the last verified record.
    #[serde(serialize_with = "serialize_head")]
    pub head: Option<(u64, [u8; 32])>,
    /// Whether a checkpoint was given and its head was found in the chain.
    pub checkpoint_matched: bool,
    /// The first problem, if any.
    pub finding: Option<Finding>,
}

impl VerifyReport {
    /// No finding.
    pub fn is_ok(&self) -> bool {
        self.finding.is_none()
    }
}

fn serialize_head<S: serde::Serializer>(
    head: &Option<(u64, [u8; 32])>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Head {
        seq: u64,
        hash: String,
    }
    head.map(|(seq, hash)| Head {
        seq,
        hash: hex::encode(hash),
    })
    .serialize(s)
}

/// The verified prefix so far.
struct Walk {
    /// Recent verified `(seq, hash)`, newest last, to rewind to when the records just accepted
    /// turn out to be forged.
    recent: VecDeque<(u64, [u8; 32])>,
    last_seq: u64,
    last_hash: [u8; 32],
}

impl Walk {
    fn accept(&mut self, r: &ChainedRecord) {
        if self.recent.len() as u64 > MAX_RENUMBER_SHIFT {
            self.recent.pop_front();
        }
        self.recent.push_back((r.seq, r.hash));
        self.last_seq = r.seq;
        self.last_hash = r.hash;
    }

    /// The hash of verified record `seq`, if still remembered (`GENESIS_HASH` for 0).
    fn hash_of(&self, seq: u64) -> Option<[u8; 32]> {
        if seq == 0 {
            return Some(GENESIS_HASH);
        }
        self.recent.iter().find(|(s, _)| *s == seq).map(|(_, h)| *h)
    }

    /// Forget records after `seq`: they were counted as verified but are forgeries.
    fn rewind_to(&mut self, seq: u64) {
        let hash = self.hash_of(seq).unwrap_or(GENESIS_HASH);
        self.recent.retain(|(s, _)| *s <= seq);
        self.last_seq = seq;
        self.last_hash = hash;
    }

    fn report(&self, checkpoint_matched: bool, finding: Option<Finding>) -> VerifyReport {
        VerifyReport {
            records: self.last_seq,
            head: (self.last_seq > 0).then_some((self.last_seq, self.last_hash)),
            checkpoint_matched,
            finding,
        }
    }
}

/// Walks `records` in the order given and reports the first problem (module documentation
/// lists what each finding means and when it is detectable).
///
/// With a checkpoint, its signature is checked first, the record at its seq must carry its
/// head hash, and the chain must reach its seq.
pub fn verify(
    records: impl IntoIterator<Item = ChainedRecord>,
    checkpoint: Option<(&Checkpoint, &VerifyingKey)>,
) -> VerifyReport {
    let mut walk = Walk {
        recent: VecDeque::new(),
        last_seq: 0,
        last_hash: GENESIS_HASH,
    };
    let checkpoint = match checkpoint {
        Some((cp, key)) => {
            if cp.verify(key).is_err() {
                return walk.report(false, Some(Finding::BadCheckpointSignature));
            }
            Some(cp)
        }
        None => None,
    };
    let mut matched = false;
    if let Some(cp) = checkpoint.filter(|cp| cp.seq == 0) {
        if cp.head_hash != GENESIS_HASH {
            return walk.report(false, Some(Finding::Recomputed { seq: 0 }));
        }
        matched = true;
    }

    let mut records = records.into_iter().peekable();
    while let Some(r) = records.next() {
        let expected = walk.last_seq.saturating_add(1);

        if !r.is_self_consistent() {
            let finding = match renumbered_from(&r, expected) {
                Some(orig) if orig < expected => {
                    // Genuine record `orig`, pushed up by the records now holding
                    // `orig..expected`: those were inserted, provided it still links to the
                    // verified record before them.
                    if walk.hash_of(orig - 1) == Some(r.prev_hash) {
                        walk.rewind_to(orig - 1);
                        // A checkpoint matched among the forged records was signed after
                        // the forgery; it vouches for nothing that is still verified.
                        matched &= checkpoint.is_some_and(|cp| cp.seq < orig);
                        Finding::Inserted { seq: orig }
                    } else {
                        Finding::Changed { seq: r.seq }
                    }
                }
                Some(orig) if orig > expected => Finding::Removed {
                    after_seq: walk.last_seq,
                    expected_seq: expected,
                },
                // Intact content whose seq alone was edited, or anything else edited.
                _ => Finding::Changed { seq: r.seq },
            };
            return walk.report(matched, Some(finding));
        }

        if r.seq == expected && r.prev_hash != walk.last_hash {
            // Self-consistent but not linked. If the next record links to this one, these
            // two are genuine and the one before was rewritten with a fresh hash.
            let next_links = records.peek().is_some_and(|next| {
                next.seq == r.seq.saturating_add(1)
                    && next.prev_hash == r.hash
                    && next.is_self_consistent()
            });
            // A predecessor whose hash the checkpoint signed was not rewritten.
            let pinned = checkpoint.is_some_and(|cp| cp.seq == walk.last_seq);
            let finding = if next_links && walk.last_seq > 0 && !pinned {
                let changed = walk.last_seq;
                walk.rewind_to(changed - 1);
                Finding::Changed { seq: changed }
            } else {
                Finding::Inserted { seq: r.seq }
            };
            return walk.report(matched, Some(finding));
        }

        if r.seq > expected {
            let finding = if r.prev_hash == walk.last_hash {
                // Links straight to the previous record yet skips seqs: the writer never
                // does that, so this record was made by someone else.
                Finding::Inserted { seq: r.seq }
            } else if records.any(|later| later.seq == expected) {
                Finding::Reordered {
                    expected_seq: expected,
                    found_seq: r.seq,
                }
            } else {
                Finding::Removed {
                    after_seq: walk.last_seq,
                    expected_seq: expected,
                }
            };
            return walk.report(matched, Some(finding));
        }

        if r.seq < expected {
            // Every seq below `expected` was already verified in order, so this is a second
            // record claiming a used seq: a forgery, or a fork by two unsynchronized writers.
            return walk.report(matched, Some(Finding::Inserted { seq: r.seq }));
        }

        walk.accept(&r);
        if let Some(cp) = checkpoint.filter(|cp| cp.seq == r.seq) {
            if cp.head_hash != r.hash {
                return walk.report(false, Some(Finding::Recomputed { seq: r.seq }));
            }
            matched = true;
        }
    }

    if let Some(cp) = checkpoint.filter(|cp| cp.seq > walk.last_seq) {
        return walk.report(
            false,
            Some(Finding::Truncated {
                checkpoint_seq: cp.seq,
                last_seq: walk.last_seq,
            }),
        );
    }
    walk.report(matched, None)
}

/// The seq under which `r`'s content does hash to its stored hash, searched near `expected`:
/// a record renumbered after a deletion or insertion keeps its old hash.
fn renumbered_from(r: &ChainedRecord, expected: u64) -> Option<u64> {
    let low = expected.saturating_sub(MAX_RENUMBER_SHIFT).max(1);
    let high = expected.saturating_add(MAX_RENUMBER_SHIFT);
    // Nearest first, so the smallest shift explains it.
    (0..=MAX_RENUMBER_SHIFT)
        .flat_map(|d| [expected.checked_sub(d), expected.checked_add(d)])
        .flatten()
        .filter(|s| (low..=high).contains(s) && *s != r.seq)
        .find(|s| record_hash(*s, &r.prev_hash, &r.event) == r.hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, Chain, CheckpointKey, Outcome};
    use serde_json::json;

    const N: u64 = 8;

    fn event(i: u64) -> AuditEvent {
        AuditEvent::new(
            1_700_000_000_000 + i as i64,
            "token:ab12cd",
            if i.is_multiple_of(2) {
                "function.deploy"
            } else {
                "policy.denied"
            },
            format!("fn-{i}"),
            Outcome::Denied,
        )
        .with_details(json!({"i": i}))
    }

    fn chain(n: u64) -> Vec<ChainedRecord> {
        let mut c = Chain::new(None);
        (1..=n).map(|i| c.append(event(i))).collect()
    }

    /// What an attacker with write access does to hide a change: rebuild every hash.
    fn rehash(records: &[ChainedRecord]) -> Vec<ChainedRecord> {
        let mut c = Chain::new(None);
        records.iter().map(|r| c.append(r.event.clone())).collect()
    }

    fn key() -> CheckpointKey {
        CheckpointKey::from_seed(&[1; 32])
    }

    fn checkpoint_of(records: &[ChainedRecord], seq: u64) -> Checkpoint {
        let r = &records[(seq - 1) as usize];
        Checkpoint::sign(r.seq, r.hash, 99, &key())
    }

    fn check(records: Vec<ChainedRecord>) -> VerifyReport {
        verify(records, None)
    }

    fn check_cp(records: Vec<ChainedRecord>, cp: &Checkpoint) -> VerifyReport {
        verify(records, Some((cp, &key().verifying_key())))
    }

    #[test]
    fn an_intact_chain_verifies_with_and_without_checkpoints() {
        let records = chain(N);
        let head = Some((N, records[N as usize - 1].hash));
        let report = check(records.clone());
        assert_eq!(
            report,
            VerifyReport {
                records: N,
                head,
                checkpoint_matched: false,
                finding: None
            }
        );
        for seq in [1, 4, N] {
            let report = check_cp(records.clone(), &checkpoint_of(&records, seq));
            assert!(
                report.is_ok() && report.checkpoint_matched,
                "{seq}: {report:?}"
            );
            assert_eq!(report.records, N);
        }
    }

    #[test]
    fn an_empty_chain() {
        assert_eq!(check(vec![]).records, 0);
        assert_eq!(check(vec![]).head, None);
        let genesis = Checkpoint::sign(0, GENESIS_HASH, 0, &key());
        assert!(check_cp(vec![], &genesis).checkpoint_matched);
        let cp = checkpoint_of(&chain(3), 3);
        assert_eq!(
            check_cp(vec![], &cp).finding,
            Some(Finding::Truncated {
                checkpoint_seq: 3,
                last_seq: 0
            })
        );
    }

    #[test]
    fn changing_one_field_of_a_middle_record_is_changed() {
        let mut records = chain(N);
        records[3].event.target = "other".into();
        let report = check(records.clone());
        assert_eq!(report.finding, Some(Finding::Changed { seq: 4 }));
        assert_eq!(report.records, 3);
        records[3].event.target = "fn-4".into();
        records[3].event.details = json!({"i": 5});
        assert_eq!(check(records).finding, Some(Finding::Changed { seq: 4 }));
    }

    #[test]
    fn changing_a_record_and_its_own_hash_is_changed() {
        let mut records = chain(N);
        records[3].event.outcome = Outcome::Allowed;
        records[3].hash = records[3].compute_hash();
        let report = check(records);
        assert_eq!(report.finding, Some(Finding::Changed { seq: 4 }));
        assert_eq!(report.records, 3);
    }

    #[test]
    fn a_checkpointed_predecessor_is_not_blamed_for_a_broken_link() {
        let original = chain(N);
        let cp = checkpoint_of(&original, 3);
        let mut records = original;
        // Record 4 and 5 replaced by forgeries that link to each other but not to 3.
        let mut c = Chain::new(Some((3, [0xaa; 32])));
        records[3] = c.append(event(40));
        records[4] = c.append(event(50));
        assert_eq!(
            check(records.clone()).finding,
            Some(Finding::Changed { seq: 3 })
        );
        let report = check_cp(records, &cp);
        assert_eq!(report.finding, Some(Finding::Inserted { seq: 4 }));
        assert!(report.checkpoint_matched);
    }

    #[test]
    fn changing_the_last_record_and_its_hash_needs_a_checkpoint() {
        let original = chain(N);
        let cp = checkpoint_of(&original, N);
        let mut records = original;
        let last = records.len() - 1;
        records[last].event.outcome = Outcome::Allowed;
        records[last].hash = records[last].compute_hash();
        assert!(check(records.clone()).is_ok());
        assert_eq!(
            check_cp(records, &cp).finding,
            Some(Finding::Recomputed { seq: N })
        );
    }

    #[test]
    fn changing_a_record_seq_alone_is_changed() {
        let mut records = chain(N);
        records.remove(4);
        records[3].seq = 5;
        assert_eq!(check(records).finding, Some(Finding::Changed { seq: 5 }));
    }

    #[test]
    fn deleting_a_middle_record_is_removed() {
        let mut records = chain(N);
        records.remove(3);
        let report = check(records);
        assert_eq!(
            report.finding,
            Some(Finding::Removed {
                after_seq: 3,
                expected_seq: 4
            })
        );
        assert_eq!(report.records, 3);
    }

    #[test]
    fn deleting_the_first_records_is_removed() {
        let mut records = chain(N);
        records.drain(..2);
        assert_eq!(
            check(records).finding,
            Some(Finding::Removed {
                after_seq: 0,
                expected_seq: 1
            })
        );
    }

    #[test]
    fn deleting_records_and_renumbering_the_rest_is_removed() {
        let mut records = chain(N);
        records.drain(3..5);
        for r in &mut records[3..] {
            r.seq -= 2;
        }
        assert_eq!(
            check(records).finding,
            Some(Finding::Removed {
                after_seq: 3,
                expected_seq: 4
            })
        );
    }

    #[test]
    fn deleting_and_rehashing_needs_a_checkpoint() {
        let original = chain(N);
        let mut records = original.clone();
        records.remove(3);
        let records = rehash(&records);
        assert!(check(records.clone()).is_ok());
        // Shorter than the checkpoint: looks exactly like a truncation.
        assert_eq!(
            check_cp(records.clone(), &checkpoint_of(&original, N)).finding,
            Some(Finding::Truncated {
                checkpoint_seq: N,
                last_seq: N - 1
            })
        );
        assert_eq!(
            check_cp(records, &checkpoint_of(&original, 5)).finding,
            Some(Finding::Recomputed { seq: 5 })
        );
    }

    /// A forged record that links correctly (the attacker can read the previous hash) and
    /// hashes correctly.
    fn forged(after: &ChainedRecord) -> ChainedRecord {
        let event = AuditEvent::new(0, "node", "function.deploy", "evil", Outcome::Succeeded);
        let mut c = Chain::new(Some((after.seq, after.hash)));
        c.append(event)
    }

    #[test]
    fn inserting_a_forged_record_with_a_used_seq_is_inserted() {
        let mut records = chain(N);
        let x = forged(&records[2]);
        assert_eq!(x.seq, 4);
        records.insert(3, x);
        let report = check(records);
        assert_eq!(report.finding, Some(Finding::Inserted { seq: 4 }));
    }

    #[test]
    fn inserting_a_forged_record_and_renumbering_the_rest_is_inserted() {
        let mut records = chain(N);
        let x = forged(&records[2]);
        records.insert(3, x);
        for r in &mut records[4..] {
            r.seq += 1;
        }
        let report = check(records);
        assert_eq!(report.finding, Some(Finding::Inserted { seq: 4 }));
        assert_eq!(
            report.records, 3,
            "the forged record is not counted as verified"
        );
        assert_eq!(report.head.map(|h| h.0), Some(3));
    }

    #[test]
    fn inserting_a_record_that_does_not_link_is_inserted() {
        let mut records = chain(N);
        let mut x = forged(&records[2]);
        x.prev_hash = [0xaa; 32];
        x.hash = x.compute_hash();
        records.insert(3, x);
        for r in &mut records[4..] {
            r.seq += 1;
        }
        assert_eq!(check(records).finding, Some(Finding::Inserted { seq: 4 }));
    }

    #[test]
    fn appending_a_record_that_skips_seqs_is_inserted() {
        let mut records = chain(N);
        let mut x = forged(&records[N as usize - 1]);
        x.seq = N + 5;
        x.hash = x.compute_hash();
        records.push(x);
        assert_eq!(
            check(records).finding,
            Some(Finding::Inserted { seq: N + 5 })
        );
    }

    #[test]
    fn inserting_and_rehashing_needs_a_checkpoint() {
        let original = chain(N);
        let mut records = original.clone();
        records.insert(3, forged(&records[2]));
        let records = rehash(&records);
        assert!(check(records.clone()).is_ok());
        assert_eq!(
            check_cp(records, &checkpoint_of(&original, N)).finding,
            Some(Finding::Recomputed { seq: N })
        );
    }

    #[test]
    fn a_fork_by_two_writers_is_reported() {
        let mut records = chain(5);
        let mut other = Chain::new(Some((5, records[4].hash)));
        records.push(other.append(event(100)));
        let mut c = Chain::new(Some((5, records[4].hash)));
        records.push(c.append(event(6)));
        assert_eq!(check(records).finding, Some(Finding::Inserted { seq: 6 }));
    }

    #[test]
    fn swapping_two_records_is_reordered() {
        let mut records = chain(N);
        records.swap(3, 4);
        assert_eq!(
            check(records).finding,
            Some(Finding::Reordered {
                expected_seq: 4,
                found_seq: 5
            })
        );
    }

    #[test]
    fn truncating_the_tail_needs_a_checkpoint() {
        let original = chain(N);
        let cp = checkpoint_of(&original, N);
        let mut records = original;
        records.truncate(N as usize - 2);
        let report = check(records.clone());
        assert!(
            report.is_ok(),
            "no checkpoint, nothing to compare the end with"
        );
        assert_eq!(report.records, N - 2);
        let report = check_cp(records, &cp);
        assert_eq!(
            report.finding,
            Some(Finding::Truncated {
                checkpoint_seq: N,
                last_seq: N - 2
            })
        );
        assert!(!report.checkpoint_matched);
        assert_eq!(report.records, N - 2);
    }

    #[test]
    fn recomputing_the_whole_chain_after_a_change_needs_a_checkpoint() {
        let original = chain(N);
        let mut records = original.clone();
        records[2].event.actor = "token:innocent".into();
        let records = rehash(&records);
        assert!(check(records.clone()).is_ok());
        let report = check_cp(records.clone(), &checkpoint_of(&original, 6));
        assert_eq!(report.finding, Some(Finding::Recomputed { seq: 6 }));
        assert_eq!(report.records, 6);
        // A checkpoint covers only up to its seq: one taken before the change sees nothing.
        assert!(check_cp(records, &checkpoint_of(&original, 2)).is_ok());
    }

    #[test]
    fn a_forged_checkpoint_signature_is_refused() {
        let records = chain(N);
        let mut cp = checkpoint_of(&records, N);
        cp.signature[0] ^= 1;
        let report = check_cp(records.clone(), &cp);
        assert_eq!(report.finding, Some(Finding::BadCheckpointSignature));
        // Moving a genuine checkpoint to another seq or head breaks its signature too.
        let mut cp = checkpoint_of(&records, N);
        cp.seq = N - 1;
        cp.head_hash = records[N as usize - 2].hash;
        assert_eq!(
            check_cp(records, &cp).finding,
            Some(Finding::BadCheckpointSignature)
        );
    }

    #[test]
    fn a_checkpoint_from_another_key_is_refused() {
        let original = chain(N);
        let mut records = original.clone();
        records[2].event.actor = "token:innocent".into();
        let records = rehash(&records);
        // The attacker signs the rewritten head with their own key.
        let theirs = CheckpointKey::from_seed(&[2; 32]);
        let cp = Checkpoint::sign(N, records[N as usize - 1].hash, 99, &theirs);
        assert_eq!(
            check_cp(records, &cp).finding,
            Some(Finding::BadCheckpointSignature)
        );
    }

    #[test]
    fn findings_read_well_and_serialize_with_a_kind() {
        let f = Finding::Removed {
            after_seq: 3,
            expected_seq: 4,
        };
        assert_eq!(f.to_string(), "records were removed after 3: 4 is missing");
        let v = serde_json::to_value(&f).unwrap_or_default();
        assert_eq!(
            v,
            json!({"kind": "removed", "after_seq": 3, "expected_seq": 4})
        );
        let report = check(chain(1));
        let v = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(v["head"]["seq"], 1);
        assert_eq!(v["finding"], serde_json::Value::Null);
    }
}
