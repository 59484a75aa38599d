//! Product images: uploads checked from their bytes and kept in a blob store.

use bytes::Bytes;
use object_store::PutPayload;
use object_store::path::Path;

use crate::catalog::ProductView;
use crate::error::{Error, Result};
use crate::ids::ProductId;
use crate::marketplace::Marketplace;
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// The image formats accepted, by the type their bytes show.
const ACCEPTED: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
];

/// Recognises an accepted image from its first bytes, whatever its name says.
pub fn sniff_image(bytes: &[u8]) -> Option<(&'static str, &'static str)> {
    let mime = infer::get(bytes)?.mime_type();
    ACCEPTED.iter().find(|(m, _)| *m == mime).copied()
}

/// An image read back from the blob store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The bytes.
    pub bytes: Bytes,
    /// Its media type.
    pub content_type: &'static str,
}

impl<S: Storage> Marketplace<S> {
    /// The product's seller uploads an image (JPEG, PNG or WebP, recognised from
    /// the bytes); its URL is appended to the product's images.
    pub async fn upload_image(
        &self,
        who: &Principal,
        product_id: ProductId,
        bytes: Bytes,
    ) -> Result<ProductView> {
        if who.role != Role::Seller && who.role != Role::Admin {
            return Err(Error::Forbidden("only sellers may do this"));
        }
        let limits = &self.inner.config.limits;
        if bytes.len() > limits.max_image_bytes {
            return Err(Error::PayloadTooLarge {
                limit: limits.max_image_bytes,
            });
        }
        let product = self.editable_product(who, product_id).await?;
        if product.images.len() >= limits.max_images {
            return Err(Error::conflict(
                "too_many_images",
                format!("a product has at most {} images", limits.max_images),
            ));
        }
        let (_, ext) = sniff_image(&bytes).ok_or_else(|| {
            Error::UnsupportedMediaType("images must be JPEG, PNG or WebP".to_owned())
        })?;
        let key = format!("products/{product_id}/{}.{ext}", self.new_id());
        self.inner
            .images
            .put(&Path::from(key.as_str()), PutPayload::from_bytes(bytes))
            .await
            .map_err(Error::internal)?;
        let url = format!(
            "{}/{key}",
            self.inner.config.media_url.trim_end_matches('/')
        );
        loop {
            let current = self.editable_product(who, product_id).await?;
            if current.images.len() >= limits.max_images {
                return Err(Error::conflict(
                    "too_many_images",
                    format!("a product has at most {} images", limits.max_images),
                ));
            }
            let mut p = current.clone();
            p.images.push(url.clone());
            if let Some(p) = self.save_product(p, current.version).await? {
                return Ok(ProductView::of(&p, self.now()));
            }
        }
    }

    /// Reads a stored image by its key (the part of its URL after the media base).
    pub async fn image(&self, key: &str) -> Result<StoredImage> {
        // Keys are ours: products/<uuid>/<uuid>.<ext>; anything else is not an image.
        let parts: Vec<&str> = key.split('/').collect();
        let valid = parts.len() == 3
            && parts[0] == "products"
            && parts[1].parse::<uuid::Uuid>().is_ok()
            && parts[2].rsplit_once('.').is_some_and(|(id, ext)| {
                id.parse::<uuid::Uuid>().is_ok() && ACCEPTED.iter().any(|(_, e)| *e == ext)
            });
        if !valid {
            return Err(Error::NotFound("image"));
        }
        let result = match self.inner.images.get(&Path::from(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(Error::NotFound("image")),
            Err(e) => return Err(Error::internal(e)),
        };
        let bytes = result.bytes().await.map_err(Error::internal)?;
        let content_type = sniff_image(&bytes).map_or("application/octet-stream", |(m, _)| m);
        Ok(StoredImage {
            bytes,
            content_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_from_bytes() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
        assert_eq!(sniff_image(&png), Some(("image/png", "png")));
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F'];
        assert_eq!(sniff_image(&jpeg), Some(("image/jpeg", "jpg")));
        let webp = *b"RIFF\x24\0\0\0WEBPVP8 ";
        assert_eq!(sniff_image(&webp), Some(("image/webp", "webp")));
        assert_eq!(sniff_image(b"GIF89a......"), None);
        assert_eq!(sniff_image(b"<svg xmlns='...'>"), None);
    }
}
