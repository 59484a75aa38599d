//! The conformance suite on the in-memory store.

use storage_memory::MemoryStorage;

async fn fresh() -> Option<(MemoryStorage, ())> {
    Some((MemoryStorage::new(), ()))
}

marketplace_conformance::conformance_suite!(fresh);

/// The same suite through `Arc<dyn Storage>`, the form hosts use to pick a backend
/// at run time: proves the forwarding implementation forwards everything.
mod shared {
    use std::sync::Arc;

    use marketplace_core::Storage;
    use storage_memory::MemoryStorage;

    async fn fresh() -> Option<(Arc<dyn Storage>, ())> {
        Some((Arc::new(MemoryStorage::new()), ()))
    }

    marketplace_conformance::conformance_suite!(fresh);
}
