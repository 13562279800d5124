//! The store tests, written once against [`Store`] so every back end runs the same suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test suite: a failed step must panic"
)]

use crate::{LogQuery, LogRecord, NewVersion, Store, StoreError, TokenRecord, sha256_hex};

/// Runs every conformance check against an empty store.
pub async fn run_all(store: &dyn Store) {
    blobs_are_content_addressed(store).await;
    deploy_rollback_delete(store).await;
    routes_are_unique(store).await;
    meta_is_set_once(store).await;
    tokens_round_trip(store).await;
    logs_are_bounded(store).await;
    secrets_are_versioned(store).await;
    secret_versions_are_deleted_one_by_one_and_never_reused(store).await;
    policies_round_trip(store).await;
    usage_aggregates(store).await;
    kv_buckets_and_quotas(store).await;
    audit_chain_appends(store).await;
    supply_state(store).await;
}

async fn kv_buckets_and_quotas(store: &dyn Store) {
    use crate::BucketQuota;
    let quota = BucketQuota {
        max_value_bytes: 10,
        max_keys: 3,
        max_total_bytes: 30,
    };
    store.create_bucket("orders", quota).await.unwrap();
    assert!(matches!(
        store.create_bucket("orders", quota).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.kv_get("missing", "k").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.kv_get("orders", "a").await.unwrap(), None);
    store.kv_set("orders", "a", b"1234".to_vec()).await.unwrap();
    assert_eq!(
        store.kv_get("orders", "a").await.unwrap(),
        Some(b"1234".to_vec())
    );
    assert!(store.kv_exists("orders", "a").await.unwrap());
    // Value size.
    assert!(matches!(
        store.kv_set("orders", "b", vec![0; 11]).await,
        Err(StoreError::Quota(_))
    ));
    // Total bytes: a(1+4) + b(1+10) + c(1+10) = 27; d(1+10) would make 38 > 30 -- and it
    // would also be the fourth key.
    store.kv_set("orders", "b", vec![1; 10]).await.unwrap();
    store.kv_set("orders", "c", vec![2; 10]).await.unwrap();
    assert!(matches!(
        store.kv_set("orders", "d", vec![3; 1]).await,
        Err(StoreError::Quota(_))
    ));
    // Overwriting within the totals is fine; growing past them is not.
    store.kv_set("orders", "a", vec![4; 7]).await.unwrap();
    assert!(matches!(
        store.kv_set("orders", "a", vec![4; 9]).await,
        Err(StoreError::Quota(_))
    ));
    let b = store.get_bucket("orders").await.unwrap().unwrap();
    assert_eq!((b.keys, b.bytes), (3, 8 + 11 + 11));
    store.kv_delete("orders", "c").await.unwrap();
    store.kv_delete("orders", "c").await.unwrap();
    assert_eq!(store.kv_increment("orders", "n", 5).await.unwrap(), 5);
    assert_eq!(store.kv_increment("orders", "n", 2).await.unwrap(), 7);
    assert!(store.kv_increment("orders", "b", 1).await.is_err());
    let (keys, next) = store.kv_keys("orders", 0).await.unwrap();
    assert_eq!(keys, vec!["a", "b", "n"]);
    assert_eq!(next, None);
    assert_eq!(store.list_buckets().await.unwrap().len(), 1);
    assert!(store.delete_bucket("orders").await.unwrap());
    assert!(!store.delete_bucket("orders").await.unwrap());
    // A new bucket of the same name starts empty.
    store.create_bucket("orders", quota).await.unwrap();
    assert_eq!(store.kv_get("orders", "a").await.unwrap(), None);
    store.delete_bucket("orders").await.unwrap();
}

async fn audit_chain_appends(store: &dyn Store) {
    use moat_telemetry::audit::{AuditEvent, Outcome, verify};
    let ev = |i: i64, f: &str| {
        AuditEvent::new(i, "node", "kv.denied", "bucket:x", Outcome::Denied).with_function(f)
    };
    let first = store
        .append_audit(vec![ev(1, "a"), ev(2, "b")])
        .await
        .unwrap();
    let second = store.append_audit(vec![ev(3, "a")]).await.unwrap();
    assert_eq!(first[0].seq, 1);
    assert_eq!(second[0].seq, 3);
    assert_eq!(second[0].prev_hash, first[1].hash);
    let all = store
        .audit_records(crate::AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(verify(all, None).is_ok());
    let only_a = store
        .audit_records(crate::AuditQuery {
            function: Some("a".into()),
            action: Some("kv.*".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_a.len(), 2);
}

async fn usage_aggregates(store: &dyn Store) {
    let rec = |count, first, last| crate::UsageRecord {
        function: "f".into(),
        action: "secret:read".into(),
        resource: "k".into(),
        count,
        first_seen_ms: first,
        last_seen_ms: last,
    };
    store.record_usage(vec![rec(2, 10, 20)]).await.unwrap();
    store.record_usage(vec![rec(3, 5, 15)]).await.unwrap();
    assert_eq!(
        store.usage(Some("f"), 0).await.unwrap(),
        vec![rec(5, 5, 20)]
    );
    assert!(store.usage(Some("f"), 21).await.unwrap().is_empty());
    assert!(store.usage(Some("g"), 0).await.unwrap().is_empty());
}

async fn policies_round_trip(store: &dyn Store) {
    store
        .put_policy("b", "forbid(principal, action, resource);")
        .await
        .unwrap();
    store.put_policy("a", "x").await.unwrap();
    store.put_policy("a", "y").await.unwrap();
    assert_eq!(
        store.policies().await.unwrap(),
        vec![
            ("a".to_string(), "y".to_string()),
            (
                "b".to_string(),
                "forbid(principal, action, resource);".to_string()
            )
        ]
    );
    assert!(store.delete_policy("a").await.unwrap());
    assert!(!store.delete_policy("a").await.unwrap());
}

async fn secrets_are_versioned(store: &dyn Store) {
    assert_eq!(store.put_secret("stripe-key", "v1").await.unwrap(), 1);
    assert_eq!(store.put_secret("stripe-key", "v2").await.unwrap(), 2);
    assert_eq!(store.put_secret("other", "x").await.unwrap(), 1);
    let meta = store.list_secrets().await.unwrap();
    assert_eq!(
        meta.iter()
            .map(|m| (m.name.as_str(), m.version))
            .collect::<Vec<_>>(),
        vec![("other", 1), ("stripe-key", 2)]
    );
    // Every version is kept, and listed without its value.
    let kept = |meta: &[crate::SecretMeta], name: &str| -> Vec<i64> {
        meta.iter()
            .find(|m| m.name == name)
            .map(|m| m.versions.iter().map(|v| v.version).collect())
            .unwrap_or_default()
    };
    assert_eq!(kept(&meta, "stripe-key"), vec![1, 2]);
    assert_eq!(
        secret_values(store).await,
        vec![
            ("other".to_string(), 1, "x".to_string()),
            ("stripe-key".to_string(), 1, "v1".to_string()),
            ("stripe-key".to_string(), 2, "v2".to_string()),
        ]
    );
    assert!(store.delete_secret("other").await.unwrap());
    assert!(!store.delete_secret("other").await.unwrap());
}

async fn secret_values(store: &dyn Store) -> Vec<(String, i64, String)> {
    store
        .secret_values()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version, v.value.to_string()))
        .collect()
}

async fn secret_versions_are_deleted_one_by_one_and_never_reused(store: &dyn Store) {
    for v in ["a1", "a2", "a3"] {
        store.put_secret("rotating", v).await.unwrap();
    }
    // An old version goes alone; the others stay.
    assert!(store.delete_secret_version("rotating", 2).await.unwrap());
    assert!(!store.delete_secret_version("rotating", 2).await.unwrap());
    assert!(!store.delete_secret_version("rotating", 99).await.unwrap());
    assert!(!store.delete_secret_version("no-such", 1).await.unwrap());
    let values = secret_values(store).await;
    let rotating: Vec<_> = values.iter().filter(|v| v.0 == "rotating").collect();
    assert_eq!(
        rotating
            .iter()
            .map(|v| (v.1, v.2.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "a1"), (3, "a3")]
    );
    // The current version cannot be deleted alone.
    assert!(matches!(
        store.delete_secret_version("rotating", 3).await,
        Err(StoreError::Conflict(_))
    ));
    // A new version takes the next number, not a deleted one.
    assert!(store.delete_secret_version("rotating", 1).await.unwrap());
    assert_eq!(store.put_secret("rotating", "a4").await.unwrap(), 4);
    // Deleting the whole secret takes every version; setting it again never reuses a
    // number, so a pin on an old number cannot come to mean a new value.
    assert!(store.delete_secret("rotating").await.unwrap());
    assert!(
        !store
            .list_secrets()
            .await
            .unwrap()
            .iter()
            .any(|m| m.name == "rotating")
    );
    assert!(!secret_values(store).await.iter().any(|v| v.0 == "rotating"));
    assert_eq!(store.put_secret("rotating", "b").await.unwrap(), 5);
    let meta = store.list_secrets().await.unwrap();
    let m = meta.iter().find(|m| m.name == "rotating").unwrap();
    assert_eq!((m.version, m.versions.len()), (5, 1));
    assert!(store.delete_secret("rotating").await.unwrap());
}

fn new_version(function: &str, route: &str, digest: &str, spec: &str) -> NewVersion {
    NewVersion {
        function: function.into(),
        route: route.into(),
        component_digest: digest.into(),
        spec_json: spec.into(),
        supply: None,
    }
}

async fn blobs_are_content_addressed(store: &dyn Store) {
    let bytes = b"component bytes".to_vec();
    let digest = sha256_hex(&bytes);
    assert!(!store.has_blob(&digest).await.unwrap());
    store.put_blob(&digest, &bytes).await.unwrap();
    store.put_blob(&digest, &bytes).await.unwrap(); // idempotent
    assert_eq!(store.get_blob(&digest).await.unwrap(), Some(bytes));
    let wrong = store.put_blob(&digest, b"other bytes").await;
    assert!(matches!(wrong, Err(StoreError::DigestMismatch { .. })));
    assert_eq!(store.get_blob(&sha256_hex(b"absent")).await.unwrap(), None);
}

async fn deploy_rollback_delete(store: &dyn Store) {
    let a = b"component a".to_vec();
    let b = b"component b".to_vec();
    let (da, db) = (sha256_hex(&a), sha256_hex(&b));
    store.put_blob(&da, &a).await.unwrap();
    store.put_blob(&db, &b).await.unwrap();

    // A version whose blob is absent is refused and changes nothing.
    let missing = store
        .deploy_version(new_version("f", "/f", &sha256_hex(b"nope"), "{}"))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
    assert!(store.get_function("f").await.unwrap().is_none());

    let v1 = store
        .deploy_version(new_version("f", "/f", &da, r#"{"v":1}"#))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let v2 = store
        .deploy_version(new_version("f", "/f2", &db, r#"{"v":2}"#))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let f = store.get_function("f").await.unwrap().unwrap();
    assert_eq!(
        (f.active_version, f.latest_version, f.route.as_str()),
        (2, 2, "/f2")
    );
    assert_eq!(store.active_versions().await.unwrap(), vec![v2.clone()]);

    // Rollback switches the serving version and its route together.
    let back = store.activate_version("f", 1).await.unwrap();
    assert_eq!(back, v1);
    let f = store.get_function("f").await.unwrap().unwrap();
    assert_eq!((f.active_version, f.route.as_str()), (1, "/f"));
    assert!(matches!(
        store.activate_version("f", 9).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.versions("f").await.unwrap(), vec![v1, v2]);

    // A deploy after a rollback takes the next number, never reusing one.
    let v3 = store
        .deploy_version(new_version("f", "/f", &da, "{}"))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);

    assert!(store.delete_function("f").await.unwrap());
    assert!(!store.delete_function("f").await.unwrap());
    assert!(store.get_function("f").await.unwrap().is_none());
    assert!(store.versions("f").await.unwrap().is_empty());
    assert!(store.active_versions().await.unwrap().is_empty());
    // Blobs outlive functions: a redeploy of the same bytes needs no upload.
    assert!(store.has_blob(&da).await.unwrap());
}

async fn routes_are_unique(store: &dyn Store) {
    let c = b"route component".to_vec();
    let d = sha256_hex(&c);
    store.put_blob(&d, &c).await.unwrap();
    store
        .deploy_version(new_version("one", "/shared", &d, "{}"))
        .await
        .unwrap();
    let clash = store
        .deploy_version(new_version("two", "/shared", &d, "{}"))
        .await;
    match clash {
        Err(StoreError::RouteTaken { route, function }) => {
            assert_eq!((route.as_str(), function.as_str()), ("/shared", "one"));
        }
        other => panic!("expected RouteTaken, got {other:?}"),
    }
    assert!(store.get_function("two").await.unwrap().is_none());
    assert!(store.versions("two").await.unwrap().is_empty());
    store.delete_function("one").await.unwrap();
    store
        .deploy_version(new_version("two", "/shared", &d, "{}"))
        .await
        .unwrap();
    store.delete_function("two").await.unwrap();
}

async fn meta_is_set_once(store: &dyn Store) {
    assert_eq!(store.get_meta("k").await.unwrap(), None);
    assert_eq!(store.init_meta("k", "first").await.unwrap(), "first");
    assert_eq!(store.init_meta("k", "second").await.unwrap(), "first");
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("first"));
}

async fn tokens_round_trip(store: &dyn Store) {
    let t = TokenRecord {
        id: "tok1".into(),
        name: "admin".into(),
        role: "admin".into(),
        hash: sha256_hex(b"secret"),
        created_at_ms: 1,
        expires_at_ms: Some(2),
        revoked: false,
        function: Some("orders".into()),
    };
    store.insert_token(t.clone()).await.unwrap();
    assert_eq!(store.list_tokens().await.unwrap(), vec![t.clone()]);
    assert!(store.revoke_token("tok1").await.unwrap());
    assert!(!store.revoke_token("absent").await.unwrap());
    assert!(store.list_tokens().await.unwrap()[0].revoked);
    // The same hash twice is refused (two tokens must never share a secret).
    let dup = TokenRecord {
        id: "tok2".into(),
        revoked: false,
        ..t
    };
    assert!(store.insert_token(dup).await.is_err());
}

async fn logs_are_bounded(store: &dyn Store) {
    let record = |i: i64, rid: &str| LogRecord {
        function: "logger".into(),
        version: 1,
        request_id: rid.into(),
        stream: "stdout".into(),
        at_ms: i,
        text: format!("line {i}"),
    };
    let records: Vec<_> = (0..10)
        .map(|i| record(i, if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    let stored = store.append_logs(records.clone()).await.unwrap();
    // Appending gives each record its id, in order.
    assert_eq!(
        stored.iter().map(|s| &s.record).collect::<Vec<_>>(),
        records.iter().collect::<Vec<_>>()
    );
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    let q = |rid: Option<&str>, limit| LogQuery {
        function: "logger".into(),
        request_id: rid.map(String::from),
        since_ms: None,
        after_id: None,
        limit,
    };
    let at = |logs: &[crate::StoredLog]| logs.iter().map(|r| r.record.at_ms).collect::<Vec<_>>();
    let all = store.logs(q(None, 100)).await.unwrap();
    assert_eq!(all, stored);
    let newest = store.logs(q(None, 3)).await.unwrap();
    assert_eq!(at(&newest), vec![7, 8, 9]);
    assert_eq!(store.logs(q(Some("odd"), 100)).await.unwrap().len(), 5);
    // Paging forward from a cursor: the oldest after it, with the other filters applied.
    let page = |after, rid: Option<&str>, limit| LogQuery {
        after_id: Some(after),
        ..q(rid, limit)
    };
    let next = store.logs(page(stored[2].id, None, 3)).await.unwrap();
    assert_eq!(at(&next), vec![3, 4, 5]);
    let next = store
        .logs(page(stored[2].id, Some("even"), 100))
        .await
        .unwrap();
    assert_eq!(at(&next), vec![4, 6, 8]);
    assert!(
        store
            .logs(page(stored[9].id, None, 100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.prune_logs("logger", 4).await.unwrap(), 6);
    let kept = store.logs(q(None, 100)).await.unwrap();
    assert_eq!(at(&kept), vec![6, 7, 8, 9]);
    // Retention by age, across functions.
    assert_eq!(store.prune_logs_before(8).await.unwrap(), 2);
    let kept = store.logs(q(None, 100)).await.unwrap();
    assert_eq!(at(&kept), vec![8, 9]);
    // Ids are never given again, even after the newest records are removed.
    assert_eq!(store.prune_logs("logger", 0).await.unwrap(), 2);
    let again = store.append_logs(vec![record(10, "even")]).await.unwrap();
    assert!(again[0].id > stored[9].id);
    assert_eq!(store.prune_logs_before(8).await.unwrap(), 0);
}

async fn supply_state(store: &dyn Store) {
    use crate::{AdvisoryIgnore, AdvisoryRow, SupplyRecord, TrustedKey};
    // Trusted keys: unique names, removable.
    let key = |name: &str| TrustedKey {
        name: name.into(),
        key_id: "0123456789ABCDEF".into(),
        public_key: "untrusted comment: x\nRWQ".into(),
        added_at_ms: 1,
    };
    store.put_trusted_key(key("ci")).await.unwrap();
    assert!(matches!(
        store.put_trusted_key(key("ci")).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(store.trusted_keys().await.unwrap(), vec![key("ci")]);
    assert!(store.delete_trusted_key("ci").await.unwrap());
    assert!(!store.delete_trusted_key("ci").await.unwrap());

    // Settings: set, replace, clear.
    store
        .put_setting("block_severity", Some("high".into()))
        .await
        .unwrap();
    store
        .put_setting("block_severity", Some("critical".into()))
        .await
        .unwrap();
    assert_eq!(
        store.settings().await.unwrap(),
        vec![("block_severity".to_string(), "critical".to_string())]
    );
    store.put_setting("block_severity", None).await.unwrap();
    assert!(store.settings().await.unwrap().is_empty());

    // Advisories: a newer record replaces, an older or identical one does not.
    let row = |id: &str, modified: &str, json: &str| AdvisoryRow {
        id: id.into(),
        modified: modified.into(),
        json: json.into(),
    };
    let c = store
        .import_advisories(vec![
            row("A", "2024-01-01T00:00:00Z", "a1"),
            row("B", "2024-01-01T00:00:00Z", "b1"),
        ])
        .await
        .unwrap();
    assert_eq!((c.added, c.updated, c.unchanged), (2, 0, 0));
    let c = store
        .import_advisories(vec![
            row("A", "2024-02-01T00:00:00Z", "a2"),
            row("B", "2023-01-01T00:00:00Z", "b0"),
            row("C", "2024-01-01T00:00:00Z", "c1"),
        ])
        .await
        .unwrap();
    assert_eq!((c.added, c.updated, c.unchanged), (1, 1, 1));
    assert_eq!(store.advisories().await.unwrap(), vec!["a2", "b1", "c1"]);

    // Exceptions: replaced by id.
    let ignore = |until_ms| AdvisoryIgnore {
        id: "A".into(),
        reason: "not reachable".into(),
        until_ms,
        created_by: "t1".into(),
        created_at_ms: 1,
    };
    store.put_advisory_ignore(ignore(10)).await.unwrap();
    store.put_advisory_ignore(ignore(20)).await.unwrap();
    assert_eq!(store.advisory_ignores().await.unwrap(), vec![ignore(20)]);
    assert!(store.delete_advisory_ignore("A").await.unwrap());
    assert!(store.advisory_ignores().await.unwrap().is_empty());

    // A version's record is written with the version and goes with the function.
    let bytes = b"supply component".to_vec();
    let digest = sha256_hex(&bytes);
    store.put_blob(&digest, &bytes).await.unwrap();
    let supply = SupplyRecord {
        signer: Some("ci (0123456789ABCDEF)".into()),
        sbom_source: "lockfile".into(),
        sbom_json: "{}".into(),
        findings_json: "[]".into(),
    };
    let mut new = new_version("supplied", "/supplied", &digest, "{}");
    new.supply = Some(supply.clone());
    let v = store.deploy_version(new).await.unwrap();
    assert_eq!(
        store.version_supply("supplied", v.version).await.unwrap(),
        Some(supply.clone())
    );
    store
        .set_version_findings("supplied", v.version, "[1]")
        .await
        .unwrap();
    let all = store.all_version_supply().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].2.findings_json, "[1]");
    store.delete_function("supplied").await.unwrap();
    assert!(store.all_version_supply().await.unwrap().is_empty());
}
