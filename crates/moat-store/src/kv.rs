//! Key-value buckets: the store side of `wasi:keyvalue`. Values are sealed at rest, and each
//! bucket's quota is checked in the same transaction as the write that would break it.

use async_trait::async_trait;

use crate::{BucketQuota, BucketRecord, Result};

#[async_trait]
pub trait KvStore: Send + Sync {
    async fn create_bucket(&self, name: &str, quota: BucketQuota) -> Result<()>;
    /// Deletes a bucket and every entry in it.
    async fn delete_bucket(&self, name: &str) -> Result<bool>;
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>>;
    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>>;
    async fn kv_get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a value, refusing with [`StoreError::Quota`] what would break the quota.
    async fn kv_set(&self, bucket: &str, key: &str, value: Vec<u8>) -> Result<()>;
    async fn kv_delete(&self, bucket: &str, key: &str) -> Result<()>;
    async fn kv_exists(&self, bucket: &str, key: &str) -> Result<bool>;
    /// One page of keys in key order, from `cursor` (an offset); the next cursor if more.
    async fn kv_keys(&self, bucket: &str, cursor: u64) -> Result<(Vec<String>, Option<u64>)>;
    /// Adds `delta` to the decimal counter at `key` (absent is 0), atomically.
    async fn kv_increment(&self, bucket: &str, key: &str, delta: u64) -> Result<u64>;
}
