//! The SQLite schema, as numbered migrations applied in order at open.

/// Versioned migrations. Never edit a released one; append a new one.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        bytes BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE functions (
        name TEXT PRIMARY KEY,
        route TEXT NOT NULL UNIQUE,
        active_version INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE versions (
        function TEXT NOT NULL,
        version INTEGER NOT NULL,
        route TEXT NOT NULL,
        component_digest TEXT NOT NULL REFERENCES blobs(digest),
        spec_json TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (function, version)
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE function_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        function TEXT NOT NULL,
        version INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX function_logs_by_function ON function_logs (function, id);
    "#,
    ),
    (
        2,
        r#"
    ALTER TABLE tokens ADD COLUMN function TEXT;
    "#,
    ),
    (
        3,
        r#"
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    "#,
    ),
    (
        4,
        r#"
    CREATE TABLE policies (
        name TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    "#,
    ),
    (
        5,
        r#"
    CREATE TABLE permission_usage (
        function TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (function, action, resource)
    );
    "#,
    ),
    (
        6,
        r#"
    CREATE TABLE kv_buckets (
        name TEXT PRIMARY KEY,
        max_value_bytes INTEGER NOT NULL,
        max_keys INTEGER NOT NULL,
        max_total_bytes INTEGER NOT NULL,
        keys INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE kv_entries (
        bucket TEXT NOT NULL REFERENCES kv_buckets(name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        sealed BLOB NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (bucket, key)
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        source TEXT,
        request_id TEXT,
        function TEXT,
        details TEXT NOT NULL
    );
    CREATE INDEX audit_by_function ON audit_log (function, seq);
    "#,
    ),
    (
        7,
        r#"
    ALTER TABLE secrets ADD COLUMN sealed BLOB;
    "#,
    ),
    (
        8,
        r#"
    CREATE TABLE alert_rules (
        name TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    "#,
    ),
    (
        9,
        // Secret versions: every version is kept (sealed, the version bound into its
        // associated data as before, so existing rows move without re-sealing), and the
        // highest number a name ever had is kept apart, so a deleted and re-created secret
        // never reuses a version number. `legacy_value` carries a plaintext value from a
        // store older than sealing (migration 7) until the node seals it at start.
        r#"
    CREATE TABLE secret_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        sealed BLOB,
        legacy_value TEXT,
        created_at_ms INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE secret_names (
        name TEXT PRIMARY KEY,
        last_version INTEGER NOT NULL
    );
    INSERT INTO secret_versions (name, version, sealed, legacy_value, created_at_ms)
        SELECT name, version, sealed, CASE WHEN sealed IS NULL THEN value END, updated_at_ms
        FROM secrets;
    INSERT INTO secret_names (name, last_version) SELECT name, version FROM secrets;
    DROP TABLE secrets;
    "#,
    ),
    (
        10,
        r#"
    CREATE TABLE trusted_keys (
        name TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        public_key TEXT NOT NULL,
        added_at_ms INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE advisories (
        id TEXT PRIMARY KEY,
        modified TEXT NOT NULL,
        json TEXT NOT NULL
    );
    CREATE TABLE advisory_ignores (
        id TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        until_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE version_supply (
        function TEXT NOT NULL,
        version INTEGER NOT NULL,
        signer TEXT,
        sbom_source TEXT NOT NULL,
        sbom_json TEXT NOT NULL,
        findings_json TEXT NOT NULL,
        PRIMARY KEY (function, version),
        FOREIGN KEY (function, version) REFERENCES versions (function, version) ON DELETE CASCADE
    );
    "#,
    ),
];

/// The newest schema version this build understands.
pub const SCHEMA_VERSION: i64 = 10;
