//! The key-value capability: `wasi:keyvalue` (0.2.0-draft) `store`, `atomics` and `batch`,
//! served from buckets that belong to the platform (`moat kv create`) and live in the node's
//! store. Each call is judged at call time: reading needs `kv:read` on the bucket, changing
//! needs `kv:write` (a grant in `permissions.kv` permits both; a guardrail may forbid
//! either). A bucket the function may not use does not open (`access-denied`), every
//! refusal is reported as a denial, and every allowed use is reported for `moat iam review`.
//!
//! Architecture invariant: this crate does not read the store; the node hands it a
//! [`KvBackend`].

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::host::Host;

mod bindings {
    wasmtime::component::bindgen!({
        inline: "
            package wasi:keyvalue@0.2.0-draft;

            interface store {
                variant error {
                    no-such-store,
                    access-denied,
                    other(string),
                }
                record key-response {
                    keys: list<string>,
                    cursor: option<u64>,
                }
                open: func(identifier: string) -> result<bucket, error>;
                resource bucket {
                    get: func(key: string) -> result<option<list<u8>>, error>;
                    set: func(key: string, value: list<u8>) -> result<_, error>;
                    delete: func(key: string) -> result<_, error>;
                    exists: func(key: string) -> result<bool, error>;
                    list-keys: func(cursor: option<u64>) -> result<key-response, error>;
                }
            }

            interface atomics {
                use store.{bucket, error};
                increment: func(bucket: borrow<bucket>, key: string, delta: u64) -> result<u64, error>;
            }

            interface batch {
                use store.{bucket, error};
                get-many: func(bucket: borrow<bucket>, keys: list<string>) -> result<list<option<tuple<string, list<u8>>>>, error>;
                set-many: func(bucket: borrow<bucket>, key-values: list<tuple<string, list<u8>>>) -> result<_, error>;
                delete-many: func(bucket: borrow<bucket>, keys: list<string>) -> result<_, error>;
            }

            world imports {
                import store;
                import atomics;
                import batch;
            }
        ",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::kv::Bucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};
use store::Error;

/// An open bucket, as the guest holds it.
pub struct Bucket {
    name: String,
}

/// Why a backend call failed. `Quota` and `Missing` reach the guest as `other`/
/// `no-such-store`; anything else as a generic `other("store unavailable")`.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("no such bucket")]
    Missing,
    #[error("{0}")]
    Quota(String),
    #[error("{0}")]
    Unavailable(String),
}

/// Where the buckets live (the node's store).
pub trait KvBackend: Send + Sync {
    fn exists_bucket(&self, bucket: &str) -> BoxFuture<'_, Result<bool, KvError>>;
    fn get(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<Option<Vec<u8>>, KvError>>;
    fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> BoxFuture<'_, Result<(), KvError>>;
    fn delete(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<(), KvError>>;
    fn exists(&self, bucket: &str, key: &str) -> BoxFuture<'_, Result<bool, KvError>>;
    fn keys(&self, bucket: &str, cursor: u64) -> BoxFuture<'_, Result<KeyPage, KvError>>;
    fn increment(&self, bucket: &str, key: &str, delta: u64)
    -> BoxFuture<'_, Result<u64, KvError>>;
}

/// One page of keys and the cursor of the next, if any.
pub type KeyPage = (Vec<String>, Option<u64>);

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The policy engine's say on a bucket use.
pub trait KvAuthorizer: Send + Sync {
    fn may(&self, function: &str, bucket: &str, write: bool) -> BoxFuture<'static, bool>;
}

/// Told about every decision: allowed uses are aggregated, denials are security events.
pub trait KvObserver: Send + Sync {
    fn used(&self, function: &str, action: &'static str, bucket: &str);
    fn denied(&self, function: &str, action: &'static str, bucket: &str);
}

/// What one function may do with key-value buckets.
pub struct KvAccess {
    pub function: String,
    pub backend: Arc<dyn KvBackend>,
    pub authorizer: Arc<dyn KvAuthorizer>,
    pub observer: Arc<dyn KvObserver>,
}

impl KvAccess {
    async fn allow(&self, bucket: &str, write: bool) -> Result<(), Error> {
        let action = if write { "kv:write" } else { "kv:read" };
        if self.authorizer.may(&self.function, bucket, write).await {
            self.observer.used(&self.function, action, bucket);
            Ok(())
        } else {
            self.observer.denied(&self.function, action, bucket);
            Err(Error::AccessDenied)
        }
    }
}

fn guest_error(e: KvError) -> Error {
    match e {
        KvError::Missing => Error::NoSuchStore,
        KvError::Quota(m) => Error::Other(m),
        // Store internals stay in the node's log.
        KvError::Unavailable(_) => Error::Other("store unavailable".into()),
    }
}

type Out<T> = wasmtime::Result<Result<T, Error>>;

/// The function's key-value access, if this use of `bucket` is allowed. (Takes the access
/// by value: the host state may not be held across the decision's await.)
async fn allowed(
    kv: Option<Arc<KvAccess>>,
    bucket: &str,
    write: bool,
) -> Result<Arc<KvAccess>, Error> {
    let kv = kv.ok_or(Error::AccessDenied)?;
    kv.allow(bucket, write).await?;
    Ok(kv)
}

impl Host {
    fn bucket_name(&mut self, b: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table().get(b)?.name.clone())
    }
}

impl store::Host for Host {
    async fn open(&mut self, identifier: String) -> Out<Resource<Bucket>> {
        let Some(kv) = self.kv.clone() else {
            return Ok(Err(Error::AccessDenied));
        };
        // Opening needs at least one of the two rights; each call checks its own.
        let readable = kv.authorizer.may(&kv.function, &identifier, false).await;
        let writable = readable || kv.authorizer.may(&kv.function, &identifier, true).await;
        if !readable && !writable {
            kv.observer.denied(&kv.function, "kv:read", &identifier);
            return Ok(Err(Error::AccessDenied));
        }
        match kv.backend.exists_bucket(&identifier).await {
            Ok(true) => {}
            Ok(false) => return Ok(Err(Error::NoSuchStore)),
            Err(e) => return Ok(Err(guest_error(e))),
        }
        let r = self.table().push(Bucket { name: identifier })?;
        Ok(Ok(r))
    }
}

impl store::HostBucket for Host {
    async fn get(&mut self, b: Resource<Bucket>, key: String) -> Out<Option<Vec<u8>>> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, false).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv.backend.get(&name, &key).await.map_err(guest_error))
    }

    async fn set(&mut self, b: Resource<Bucket>, key: String, value: Vec<u8>) -> Out<()> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, true).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv
            .backend
            .set(&name, &key, value)
            .await
            .map_err(guest_error))
    }

    async fn delete(&mut self, b: Resource<Bucket>, key: String) -> Out<()> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, true).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv.backend.delete(&name, &key).await.map_err(guest_error))
    }

    async fn exists(&mut self, b: Resource<Bucket>, key: String) -> Out<bool> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, false).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv.backend.exists(&name, &key).await.map_err(guest_error))
    }

    async fn list_keys(
        &mut self,
        b: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Out<store::KeyResponse> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, false).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv
            .backend
            .keys(&name, cursor.unwrap_or(0))
            .await
            .map(|(keys, cursor)| store::KeyResponse { keys, cursor })
            .map_err(guest_error))
    }

    async fn drop(&mut self, b: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table().delete(b)?;
        Ok(())
    }
}

impl atomics::Host for Host {
    async fn increment(&mut self, b: Resource<Bucket>, key: String, delta: u64) -> Out<u64> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, true).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        Ok(kv
            .backend
            .increment(&name, &key, delta)
            .await
            .map_err(guest_error))
    }
}

impl batch::Host for Host {
    async fn get_many(
        &mut self,
        b: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Out<Vec<Option<(String, Vec<u8>)>>> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, false).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match kv.backend.get(&name, &key).await {
                Ok(v) => out.push(v.map(|v| (key, v))),
                Err(e) => return Ok(Err(guest_error(e))),
            }
        }
        Ok(Ok(out))
    }

    async fn set_many(&mut self, b: Resource<Bucket>, kvs: Vec<(String, Vec<u8>)>) -> Out<()> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, true).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        for (key, value) in kvs {
            if let Err(e) = kv.backend.set(&name, &key, value).await {
                return Ok(Err(guest_error(e)));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, b: Resource<Bucket>, keys: Vec<String>) -> Out<()> {
        let name = self.bucket_name(&b)?;
        let kv = match allowed(self.kv.clone(), &name, true).await {
            Ok(kv) => kv,
            Err(e) => return Ok(Err(e)),
        };
        for key in keys {
            if let Err(e) = kv.backend.delete(&name, &key).await {
                return Ok(Err(guest_error(e)));
            }
        }
        Ok(Ok(()))
    }
}

/// Links `wasi:keyvalue/{store,atomics,batch}`.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<Host>) -> wasmtime::Result<()> {
    bindings::Imports::add_to_linker::<Host, wasmtime::component::HasSelf<Host>>(linker, |h| h)
}
