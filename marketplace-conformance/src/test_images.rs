//! Image files for tests, made in memory: real images of any size, and the
//! hostile ones a seller could upload (truncated, claiming huge dimensions,
//! carrying metadata).

use std::io::Cursor;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A striped image of `width` x `height` pixels, so that resizing shows.
fn pixels(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 8 + y / 8) % 2 * 255) as u8,
        ])
    }))
}

fn encoded(img: &DynamicImage, format: ImageFormat) -> Bytes {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    Bytes::from(out.into_inner())
}

/// A real PNG.
pub fn png(width: u32, height: u32) -> Bytes {
    encoded(&pixels(width, height), ImageFormat::Png)
}

/// A real JPEG.
pub fn jpeg(width: u32, height: u32) -> Bytes {
    encoded(&pixels(width, height), ImageFormat::Jpeg)
}

/// A real WebP.
pub fn webp(width: u32, height: u32) -> Bytes {
    encoded(&pixels(width, height), ImageFormat::WebP)
}

/// The marker text the metadata of [`jpeg_with_exif`] and [`png_with_text`]
/// carries, as a phone's camera would carry a GPS position.
pub const SECRET: &str = "GPS 51.5014N 0.1419W home of the seller";

/// A JPEG with an EXIF block (APP1) holding [`SECRET`].
pub fn jpeg_with_exif(width: u32, height: u32) -> Bytes {
    let plain = jpeg(width, height);
    let mut payload = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    payload.extend_from_slice(SECRET.as_bytes());
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&plain[2..]);
    Bytes::from(out)
}

/// A PNG with a `tEXt` chunk holding [`SECRET`].
pub fn png_with_text(width: u32, height: u32) -> Bytes {
    let plain = png(width, height);
    // After the 8-byte signature and the 25-byte IHDR chunk.
    let mut data = b"Comment\0".to_vec();
    data.extend_from_slice(SECRET.as_bytes());
    let mut out = plain[..33].to_vec();
    out.extend_from_slice(&chunk(b"tEXt", &data));
    out.extend_from_slice(&plain[33..]);
    Bytes::from(out)
}

/// A PNG whose header claims `width` x `height` pixels, with a few bytes of image
/// data: what a decompression bomb or a lying header looks like before decoding.
pub fn png_claiming(width: u32, height: u32) -> Bytes {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&chunk(b"IHDR", &ihdr));
    // A zlib stream of zeros: a real bomb repeats this for megabytes.
    out.extend_from_slice(&chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00]));
    out.extend_from_slice(&chunk(b"IEND", &[]));
    Bytes::from(out)
}

/// One PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(kind.iter().chain(data));
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The CRC-32 PNG chunks carry (ISO 3309), bit by bit: a few bytes in tests.
fn crc32<'a>(bytes: impl Iterator<Item = &'a u8>) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The width and height of an encoded image.
pub fn dimensions(bytes: &[u8]) -> (u32, u32) {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crafted_files_are_what_they_claim() {
        assert_eq!(dimensions(&png(3, 2)), (3, 2));
        assert_eq!(dimensions(&jpeg_with_exif(5, 4)), (5, 4));
        assert_eq!(dimensions(&png_with_text(5, 4)), (5, 4));
        assert_eq!(dimensions(&png_claiming(12_000, 12_000)), (12_000, 12_000));
        let exif = jpeg_with_exif(5, 4);
        assert!(exif.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
        image::load_from_memory(&png_with_text(5, 4)).unwrap();
        image::load_from_memory(&jpeg_with_exif(5, 4)).unwrap();
    }
}
