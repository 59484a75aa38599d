//! Where uploaded product images are kept, behind the `object_store`
//! interface the marketplace writes through: a local folder
//! (`MARKETPLACE_MEDIA_DIR`, the default), or an S3-compatible bucket
//! (`MARKETPLACE_MEDIA_STORE=s3://bucket/prefix`) that every instance of a
//! marketplace shares.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::error::{Error, Result};
use crate::settings::Settings;

/// The image store the settings name: the bucket of `MARKETPLACE_MEDIA_STORE`,
/// or the folder `MARKETPLACE_MEDIA_DIR`.
pub fn configured_store(settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    match &settings.media_store {
        Some(url) => bucket_store(url),
        None => image_store(&settings.media_dir),
    }
}

/// The bucket and key prefix of `s3://bucket[/prefix]`, or `None` when `url`
/// is not one.
pub fn s3_location(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let prefix = prefix.trim_matches('/');
    let valid_prefix = !prefix.split('/').any(|seg| seg == "." || seg == "..")
        && !prefix.chars().any(|c| c.is_control() || c.is_whitespace());
    (valid_bucket && valid_prefix).then_some((bucket, prefix))
}

/// The image store in an S3-compatible bucket, `s3://bucket[/prefix]`, with
/// credentials, region and endpoint from the usual `AWS_*` variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT_URL`, …). An endpoint given as `http://` is allowed plain
/// HTTP: it was named explicitly (a store on the private network).
pub fn bucket_store(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let (bucket, prefix) = s3_location(url).ok_or_else(|| {
        Error::setting(
            "MARKETPLACE_MEDIA_STORE",
            format!("MARKETPLACE_MEDIA_STORE={url} is not s3://bucket or s3://bucket/prefix"),
        )
    })?;
    let plain_http = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .any(|e| e.starts_with("http://"));
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(plain_http)
        .build()
        .map_err(|e| {
            Error::setting(
                "MARKETPLACE_MEDIA_STORE",
                format!("MARKETPLACE_MEDIA_STORE={url}: {e}"),
            )
        })?;
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

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

    #[test]
    fn bucket_urls_are_read_strictly() {
        assert_eq!(s3_location("s3://shop-media"), Some(("shop-media", "")));
        assert_eq!(
            s3_location("s3://shop-media/prod/images/"),
            Some(("shop-media", "prod/images"))
        );
        for bad in [
            "shop-media",
            "https://shop-media/x",
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://b_ad",
            "s3://bucket/../x",
            "s3://bucket/a b",
        ] {
            assert_eq!(s3_location(bad), None, "{bad}");
        }
    }
}
