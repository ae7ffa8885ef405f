//! One memory pool for every query the process runs (Athena SQL, Redshift clusters, Glue and
//! EMR SQL, dashboards, continuous applications, Firehose transforms): DataFusion's fair
//! spilling pool, so sorts, aggregations and joins that can spill write to temporary files
//! when it is full, and the rest fail with `ResourcesExhausted`, which queries report as
//! `EXCEEDED_LOCAL_MEMORY_LIMIT` with the largest consumers named. Its size is
//! `LAKEBOOK_MEMORY` (`512MB`, `2GiB`, `1.5GB`: decimal or binary units) or else half the
//! machine's memory.

use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};

use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// The environment variable that sizes the pool.
pub const VARIABLE: &str = "LAKEBOOK_MEMORY";

static POOL: OnceLock<(Arc<dyn MemoryPool>, usize, String)> = OnceLock::new();

fn init() -> &'static (Arc<dyn MemoryPool>, usize, String) {
    POOL.get_or_init(|| {
        let size = |v: &str| crate::parse_size(v, crate::Units::Si).ok().filter(|&n| n > 0).map(|n| n as usize);
        let (size, source) = match std::env::var(VARIABLE).ok().and_then(|v| size(&v).map(|n| (n, v))) {
            Some((n, text)) => (n, format!("{VARIABLE}={text}")),
            None => (machine_memory() / 2, "half the machine's memory".to_string()),
        };
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(FairSpillPool::new(size), NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN)));
        (pool, size, source)
    })
}

/// A runtime for one query context, on the shared pool. Each context keeps its own runtime
/// otherwise: the object stores a context registers (a cluster's managed storage, the lake)
/// are its own.
pub fn runtime() -> Arc<RuntimeEnv> {
    RuntimeEnvBuilder::new().with_memory_pool(init().0.clone()).build_arc().unwrap_or_else(|_| Arc::new(RuntimeEnv::default()))
}

/// Bytes the running queries hold now.
pub fn in_use() -> usize {
    init().0.reserved()
}

/// The pool's size in bytes and where it came from.
pub fn limit() -> (usize, &'static str) {
    let (_, size, source) = init();
    (*size, source.as_str())
}

/// Total memory from /proc/meminfo; 8 GiB where there is none.
fn machine_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<usize>().ok()))
        .map_or(8 << 30, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_has_a_size() {
        assert!(limit().0 > 0);
        assert!(machine_memory() > 0);
    }
}
