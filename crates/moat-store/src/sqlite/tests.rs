//! SQLite-specific tests, and the conformance suite on SQLite.

use super::*;
use crate::conformance;

#[tokio::test]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().unwrap();
    store.set_sealer(Sealer::new([9; 32])).unwrap();
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn kv_values_are_sealed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_sealer(Sealer::new([3; 32])).unwrap();
    store
        .create_bucket("b", BucketQuota::default())
        .await
        .unwrap();
    store
        .kv_set("b", "k", b"plain-text-marker".to_vec())
        .await
        .unwrap();
    store.kv_set("b", "k2", b"other".to_vec()).await.unwrap();
    store.put_secret("s", "secret-text-marker").await.unwrap();
    store.put_secret("s", "secret-text-marker2").await.unwrap();
    let values: Vec<(String, i64, String)> = store
        .secret_values()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version, v.value.to_string()))
        .collect();
    assert_eq!(
        values,
        vec![
            ("s".to_string(), 1, "secret-text-marker".to_string()),
            ("s".to_string(), 2, "secret-text-marker2".to_string())
        ]
    );
    drop(store);
    let raw = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("moat.db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!bytes.windows(17).any(|w| w == b"plain-text-marker"));
        assert!(!bytes.windows(18).any(|w| w == b"secret-text-marker"));
    }
    // A sealed value moved to another key's row does not open.
    let c = Connection::open(&path).unwrap();
    c.execute(
            "UPDATE kv_entries SET sealed = (SELECT sealed FROM kv_entries WHERE key = 'k') WHERE key = 'k2'",
            [],
        )
        .unwrap();
    drop(c);
    let store = SqliteStore::open(&path).unwrap();
    store.set_sealer(Sealer::new([3; 32])).unwrap();
    assert!(matches!(
        store.kv_get("b", "k2").await,
        Err(StoreError::Sealed(_))
    ));
    // Another master key opens nothing.
    store.set_sealer(Sealer::new([4; 32])).unwrap();
    assert!(matches!(
        store.kv_get("b", "k").await,
        Err(StoreError::Sealed(_))
    ));
}

#[tokio::test]
async fn conformance_on_disk_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.db");
    let store = SqliteStore::open(&path).unwrap();
    store.set_sealer(Sealer::new([9; 32])).unwrap();
    conformance::run_all(&store).await;
    let before = store.active_versions().await.unwrap();
    drop(store);
    // Reopening applies no migration twice and sees the same state.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.active_versions().await.unwrap(), before);
}

#[tokio::test]
async fn refuses_a_schema_from_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moat.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (999, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 999, .. })
    ));
}
