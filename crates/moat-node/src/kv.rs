//! Key-value buckets for functions: the runtime's `wasi:keyvalue` capability served from
//! the node's store, judged by the policy engine, with uses and denials recorded.

use std::sync::Arc;

use moat_runtime::kv::{BoxFuture, KvAuthorizer, KvBackend, KvError, KvObserver};
use moat_store::{Store, StoreError};

use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::policy::Policies;

/// The store, with each operation timed in `/metrics` (key-value is on the request path).
pub struct StoreKv(pub Arc<dyn Store>, pub Arc<Metrics>);

fn kv_error(e: StoreError) -> KvError {
    match e {
        StoreError::NotFound(_) => KvError::Missing,
        StoreError::Quota(m) => KvError::Quota(m),
        other => {
            tracing::error!("key-value store error: {other}");
            KvError::Unavailable(other.to_string())
        }
    }
}

impl KvBackend for StoreKv {
    fn exists_bucket(&self, bucket: &str) -> BoxFuture<'_, Result<bool, KvError>> {
        let bucket = bucket.to_string();
        Box::pin(async move {
            self.0
                .get_bucket(&bucket)
                .await
                .map(|b| b.is_some())
                .map_err(kv_error)
        })
    }
    fn get(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, KvError>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(async move {
            self.1
                .store_op("kv_get", self.0.kv_get(&bucket, &key))
                .await
                .map_err(kv_error)
        })
    }
    fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> BoxFuture<'_, Result<(), KvError>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(async move {
            self.1
                .store_op("kv_set", self.0.kv_set(&bucket, &key, value))
                .await
                .map_err(kv_error)
        })
    }
    fn delete(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<(), KvError>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(async move { self.0.kv_delete(&bucket, &key).await.map_err(kv_error) })
    }
    fn exists(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<bool, KvError>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(async move { self.0.kv_exists(&bucket, &key).await.map_err(kv_error) })
    }
    fn keys(
        &self,
        bucket: &str,
        cursor: u64,
    ) -> BoxFuture<'_, Result<moat_runtime::kv::KeyPage, KvError>> {
        let bucket = bucket.to_string();
        Box::pin(async move { self.0.kv_keys(&bucket, cursor).await.map_err(kv_error) })
    }
    fn increment(
        &self,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> BoxFuture<'_, Result<u64, KvError>> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        Box::pin(async move {
            self.0
                .kv_increment(&bucket, &key, delta)
                .await
                .map_err(kv_error)
        })
    }
}

pub struct PolicyKv(pub Policies);

impl KvAuthorizer for PolicyKv {
    fn may(&self, function: &str, bucket: &str, write: bool) -> BoxFuture<'static, bool> {
        let (policies, function, bucket) =
            (self.0.clone(), function.to_string(), bucket.to_string());
        // The guest's host call runs on a wasmtime fiber, where Cedar cannot measure its
        // stack; the decision runs as its own task on a runtime thread.
        Box::pin(async move {
            tokio::spawn(async move { policies.read().may_use_bucket(&function, &bucket, write) })
                .await
                .unwrap_or(false)
        })
    }
}

pub struct KvEvents {
    pub usage: Arc<dyn moat_runtime::config::UsageObserver>,
    pub audit: Arc<Audit>,
    pub metrics: Arc<Metrics>,
}

impl KvObserver for KvEvents {
    fn used(&self, function: &str, action: &'static str, bucket: &str) {
        self.usage.used(function, action, bucket);
    }
    fn denied(&self, function: &str, action: &'static str, bucket: &str) {
        self.metrics.limit_hit(function, "kv_denied");
        tracing::warn!(function, action, bucket, "key-value access denied");
        self.audit.denied(
            function,
            action,
            &format!("bucket:{bucket}"),
            "not granted or forbidden",
        );
    }
}
