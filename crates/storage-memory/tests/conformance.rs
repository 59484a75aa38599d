//! The conformance suite on the in-memory store.

use storage_memory::MemoryStorage;

async fn fresh() -> Option<MemoryStorage> {
    Some(MemoryStorage::new())
}

marketplace_conformance::conformance_suite!(fresh);
