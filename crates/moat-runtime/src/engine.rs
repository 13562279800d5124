//! The one wasmtime engine configuration, shared by the node and the compile child.
//!
//! Compiled artifacts are only valid for the engine settings that produced them, so the
//! child that compiles and the node that loads must build their `Config` from the same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A guest that computes yields to the async runtime at every
/// tick, which is what lets a wall-clock deadline stop it.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each freed linear memory kept resident and reset in place (see
/// `serving_engine`). Bounds the idle memory a warm pool slot holds.
const KEEP_RESIDENT: usize = 1 << 20;

/// Node-wide sizing of the instance pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Instances that can run at once across the whole node.
    pub max_instances: u32,
    /// The largest linear memory any function may be given (its `memory_mb` is checked
    /// against this and then enforced per store).
    pub max_memory_bytes: usize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
        }
    }
}

/// The compiler-relevant settings. Everything here affects generated code.
fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Copy-on-write images make a fresh instance per request cheap.
    config.memory_init_cow(true);
    // A guest's stack is bounded; deep recursion traps instead of exhausting the host.
    config.max_wasm_stack(512 * 1024);
    config.async_stack_size(2 << 20);
    config
}

/// The engine the compile child uses: same code generation, no pool (it never instantiates).
pub fn compile_engine() -> wasmtime::Result<Engine> {
    Engine::new(&base_config())
}

/// The engine the node runs functions on: pooling allocator, one epoch ticker.
pub fn serving_engine(pool: &PoolSettings) -> wasmtime::Result<Engine> {
    let mut config = base_config();
    let mut pooling = PoolingAllocationConfig::new();
    let n = pool.max_instances;
    pooling
        .total_component_instances(n)
        .total_core_instances(n.saturating_mul(4))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(2))
        .total_stacks(n)
        .max_memory_size(pool.max_memory_bytes)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        // Reset a freed instance's memory by rewriting the pages it dirtied (found with the
        // PAGEMAP_SCAN ioctl where the kernel has it) instead of `madvise`: dropping pages
        // from a multi-threaded process's address space costs a TLB-shootdown interrupt on
        // every core, which was the largest single cost of a request under load. Only the
        // first `KEEP_RESIDENT` bytes are kept; the rest is still returned to the kernel, and
        // the reset is complete either way (see `sandbox::no_state_survives_between_invocations`).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .async_stack_keep_resident(KEEP_RESIDENT / 4)
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config)
}

/// Identifies the engine build and settings a compiled artifact belongs to.
pub fn engine_id(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("wt48-{:016x}", h.finish())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped. One thread per engine,
/// never one per request.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.weak(), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("moat-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(EpochTicker { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
