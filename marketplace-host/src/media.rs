//! Where uploaded product images are kept: a local folder
//! (`MARKETPLACE_MEDIA_DIR`) behind the `object_store` interface the marketplace
//! writes through, so another store (S3-compatible) is a different value here,
//! not a change in any host.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::error::{Error, Result};

/// The image store in `dir`, created when missing.
pub fn image_store(dir: &Path) -> Result<Arc<dyn ObjectStore>> {
    let failed = |e: crate::error::BoxError| Error::Media {
        path: dir.to_owned(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(e.into()))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| failed(e.into()))?;
    Ok(Arc::new(store))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("a").join("media");
        image_store(&media).unwrap();
        assert!(media.is_dir());
        let file = dir.path().join("file");
        std::fs::write(&file, b"not a folder").unwrap();
        assert!(matches!(image_store(&file), Err(Error::Media { .. })));
    }
}
