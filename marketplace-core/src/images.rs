//! Product images: uploads decoded within limits, re-encoded without their
//! metadata, and kept in a blob store in the sizes a storefront shows.
//!
//! An upload is recognised from its bytes (JPEG, PNG or WebP, whatever its name
//! says), its header is read to refuse images over the pixel budget before any
//! pixel is decoded, and the whole image is then decoded, so a truncated or
//! corrupt file is refused. What is stored is re-encoded from the pixels: the
//! EXIF block (camera, GPS position of a seller's home), comments and colour
//! profiles of the upload are never kept, and its orientation is applied to the
//! pixels first. Two sizes are kept: the large image, at most
//! [`LARGE_SIDE`] pixels on its longer side, whose URL the product lists, and a
//! thumbnail of at most [`THUMBNAIL_SIDE`] pixels beside it (`…-thumb.<ext>`,
//! listed in the product view's `thumbnails`).
//!
//! A product stores the *key* of an uploaded image
//! (`products/<product>/<image>.<ext>`), not its URL: the URL is built when the
//! product is read, from the media base of [`Config`](crate::Config) at that
//! moment. So every instance of a marketplace behind one load balancer names
//! the same image with the same public URL, and moving the images to a CDN or
//! another bucket is a change of setting, not of data. Images given as outside
//! URLs are stored as given.

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use object_store::PutPayload;
use object_store::path::Path;

use crate::catalog::ProductView;
use crate::error::{Error, Result};
use crate::ids::ProductId;
use crate::marketplace::{Limits, Marketplace};
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// The image formats accepted, by the type their bytes show.
const ACCEPTED: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
];

/// Longer side of the stored large image, in pixels.
pub const LARGE_SIDE: u32 = 1600;
/// Longer side of the stored thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;

/// The suffix of a thumbnail's key, before the extension.
const THUMB: &str = "-thumb";

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

/// An upload turned into the files that are stored.
struct Prepared {
    ext: &'static str,
    large: Vec<u8>,
    thumbnail: Vec<u8>,
}

fn unreadable(why: impl std::fmt::Display) -> Error {
    Error::invalid(
        "image",
        "unreadable",
        format!("the image cannot be read: {why}"),
    )
}

/// Decodes `bytes` within `limits` and re-encodes the sizes that are stored.
/// CPU-bound: run it off the async threads.
fn prepare(bytes: &[u8], limits: &Limits) -> Result<Prepared> {
    let (_, ext) = sniff_image(bytes).ok_or_else(|| {
        Error::UnsupportedMediaType("images must be JPEG, PNG or WebP".to_owned())
    })?;
    let format = match ext {
        "jpg" => ImageFormat::Jpeg,
        "png" => ImageFormat::Png,
        _ => ImageFormat::WebP,
    };
    let reader = |bytes| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        let mut l = image::Limits::default();
        l.max_image_width = Some(limits.max_image_side);
        l.max_image_height = Some(limits.max_image_side);
        // Decoded RGBA pixels plus the decoder's working memory.
        l.max_alloc = Some(
            limits
                .max_image_pixels
                .saturating_mul(4)
                .saturating_add(64 << 20),
        );
        r.limits(l);
        r
    };
    // The header alone first: the budget is checked before any pixel is decoded.
    let (width, height) = match reader(bytes).into_dimensions() {
        Ok(d) => d,
        Err(image::ImageError::Limits(_)) => return Err(too_big(limits)),
        Err(e) => return Err(unreadable(e)),
    };
    if width > limits.max_image_side
        || height > limits.max_image_side
        || u64::from(width) * u64::from(height) > limits.max_image_pixels
    {
        return Err(too_big(limits));
    }
    let mut decoder = reader(bytes).into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => too_big(limits),
        e => unreadable(e),
    })?;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut pixels = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => too_big(limits),
        e => unreadable(e),
    })?;
    pixels.apply_orientation(orientation);
    let fit = |img: &DynamicImage, side: u32| {
        if img.width() > side || img.height() > side {
            img.resize(side, side, image::imageops::FilterType::Lanczos3)
        } else {
            img.clone()
        }
    };
    let large = fit(&pixels, LARGE_SIDE);
    let thumbnail = fit(&large, THUMBNAIL_SIDE);
    Ok(Prepared {
        ext,
        large: encode(&large, format)?,
        thumbnail: encode(&thumbnail, format)?,
    })
}

fn too_big(limits: &Limits) -> Error {
    Error::invalid(
        "image",
        "too_large",
        format!(
            "images may have at most {} megapixels and {} pixels on a side",
            limits.max_image_pixels / 1_000_000,
            limits.max_image_side
        ),
    )
}

/// Encodes pixels in `format`; nothing of the upload but its pixels is written.
fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        ImageFormat::Jpeg => {
            // JPEG has no alpha channel.
            let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
            rgb.write_with_encoder(encoder)
        }
        ImageFormat::WebP => {
            // The WebP encoder takes 8-bit RGB or RGBA.
            DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format)
        }
        _ => img.write_to(&mut out, format),
    };
    written.map_err(Error::internal)?;
    Ok(out.into_inner())
}

/// Whether the last three segments of `path` name an image this marketplace
/// stored, `products/<uuid>/<uuid>[-thumb].<ext>`: `Some(true)` for a thumbnail,
/// `Some(false)` for a large image, `None` for anything else.
fn stored_image(path: &str) -> Option<bool> {
    let mut segments = path.rsplit('/');
    let (file, product, root) = (segments.next()?, segments.next()?, segments.next()?);
    let (id, ext) = file.rsplit_once('.')?;
    let (id, thumbnail) = match id.strip_suffix(THUMB) {
        Some(id) => (id, true),
        None => (id, false),
    };
    (root == "products"
        && product.parse::<uuid::Uuid>().is_ok()
        && id.parse::<uuid::Uuid>().is_ok()
        && ACCEPTED.iter().any(|(_, e)| *e == ext))
    .then_some(thumbnail)
}

/// Whether `stored` is the key of an image this marketplace stored (and not an
/// outside URL).
fn is_key(stored: &str) -> bool {
    stored.split('/').count() == 3 && stored_image(stored).is_some()
}

/// The URL of an image as a product stores it: a stored key is served from
/// `media_base`; an outside URL (or one stored before images were stored by
/// key) is its own URL.
pub fn image_url(media_base: &str, stored: &str) -> String {
    if is_key(stored) {
        format!("{}/{stored}", media_base.trim_end_matches('/'))
    } else {
        stored.to_owned()
    }
}

/// What a product stores for an image a client sent: the key, when the URL is
/// one of this marketplace's own under `media_base` (a client sends back the
/// URLs it was shown), or a key itself; anything else as sent.
pub(crate) fn image_key(media_base: &str, given: &str) -> String {
    let base = media_base.trim_end_matches('/');
    match given
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(key) if is_key(key) => key.to_owned(),
        _ => given.to_owned(),
    }
}

/// Whether `stored` may be kept in a product's images: a key of ours, or an
/// http(s) URL.
pub(crate) fn valid_image(stored: &str) -> bool {
    is_key(stored)
        || (stored.len() <= 2048
            && (stored.starts_with("https://") || stored.starts_with("http://"))
            && !stored.chars().any(|c| c.is_whitespace() || c.is_control()))
}

/// The thumbnail URL of a stored image's URL: the uploaded images of this
/// marketplace have one beside them (`<id>-thumb.<ext>`); any other URL is its
/// own thumbnail.
pub fn thumbnail_url(url: &str) -> String {
    match (stored_image(url), url.rsplit_once('.')) {
        (Some(false), Some((stem, ext))) => format!("{stem}{THUMB}.{ext}"),
        _ => url.to_owned(),
    }
}

impl<S: Storage> Marketplace<S> {
    /// The product's seller uploads an image (JPEG, PNG or WebP, recognised from
    /// the bytes, within the pixel budget of [`Limits`]); it is stored without
    /// its metadata in a large size and a thumbnail, and the large image's URL is
    /// appended to the product's images.
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
        let limits_copy = limits.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&bytes, &limits_copy))
            .await
            .map_err(Error::internal)??;
        let id = self.new_id();
        let key = format!("products/{product_id}/{id}.{}", prepared.ext);
        let thumb = format!("products/{product_id}/{id}{THUMB}.{}", prepared.ext);
        // The thumbnail first: a product never lists an image whose sizes are
        // not all stored.
        for (k, data) in [(&thumb, prepared.thumbnail), (&key, prepared.large)] {
            self.inner
                .images
                .put(&Path::from(k.as_str()), PutPayload::from(data))
                .await
                .map_err(Error::internal)?;
        }
        loop {
            let current = self.editable_product(who, product_id).await?;
            if current.images.len() >= limits.max_images {
                return Err(Error::conflict(
                    "too_many_images",
                    format!("a product has at most {} images", limits.max_images),
                ));
            }
            let mut p = current.clone();
            p.images.push(key.clone());
            if let Some(p) = self.save_product(p, current.version).await? {
                return Ok(self.product_view(&p, self.now()));
            }
        }
    }

    /// Reads a stored image by its key (the part of its URL after the media base).
    pub async fn image(&self, key: &str) -> Result<StoredImage> {
        // Keys are ours: products/<uuid>/<uuid>[-thumb].<ext>; anything else is
        // not an image.
        if !is_key(key) {
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

    #[test]
    fn stored_keys_are_served_from_the_media_base_of_the_moment() {
        let key = format!(
            "products/{}/{}.png",
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7()
        );
        let cdn = "https://cdn.example/m/";
        let url = image_url(cdn, &key);
        assert_eq!(url, format!("https://cdn.example/m/{key}"));
        // A URL shown to a client comes back as the key; so does the key itself.
        assert_eq!(image_key(cdn, &url), key);
        assert_eq!(image_key(cdn, &key), key);
        // Under another base, or not an image of ours: kept as sent.
        let elsewhere = format!("https://old.example/media/{key}");
        assert_eq!(image_key(cdn, &elsewhere), elsewhere);
        assert_eq!(image_url(cdn, &elsewhere), elsewhere);
        assert_eq!(
            image_key(cdn, "https://cdn.example/m/lamp.jpg"),
            "https://cdn.example/m/lamp.jpg"
        );
        assert!(valid_image(&key) && valid_image(&elsewhere));
        assert!(!valid_image("products/x/y.png") && !valid_image("ftp://a/b.png"));
    }

    #[test]
    fn uploaded_images_have_a_thumbnail_beside_them() {
        let p = uuid::Uuid::now_v7();
        let i = uuid::Uuid::now_v7();
        assert_eq!(
            thumbnail_url(&format!("https://cdn.example/media/products/{p}/{i}.jpg")),
            format!("https://cdn.example/media/products/{p}/{i}-thumb.jpg")
        );
        for other in [
            "https://elsewhere.example/lamp.jpg",
            "https://elsewhere.example/products/x/y.png",
            "no-slash",
        ] {
            assert_eq!(thumbnail_url(other), other);
        }
    }
}
