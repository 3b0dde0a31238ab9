//! QR codes: drawn in the terminal, and read back from PNG images with a pure-Rust decoder.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// The QR code of `text` as terminal art (two modules per character cell).
pub fn draw(text: &str) -> Result<String> {
    let code = QrCode::new(text.as_bytes()).context("the link does not fit in a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

/// Largest image side read (a phone photo of a QR code is far smaller).
pub const MAX_SIDE: u32 = 4096;
/// Most bytes the PNG decoder may allocate, the pixel buffer included.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// The text of the one QR code in a PNG image. The image is untrusted (someone sent it):
/// its header is read first and an image larger than [`MAX_SIDE`] on a side is refused
/// before any pixel buffer exists, and the decoder allocates at most [`MAX_DECODE_BYTES`].
pub fn decode_png(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    decode_png_from(std::io::BufReader::new(file), &path.display().to_string())
}

/// [`decode_png`] of an image in memory (the fuzz target `qr_png` feeds it any bytes).
pub fn decode_png_bytes(png: &[u8]) -> Result<String> {
    decode_png_from(std::io::Cursor::new(png), "the image")
}

fn decode_png_from(input: impl std::io::BufRead + std::io::Seek, name: &str) -> Result<String> {
    let mut decoder = png::Decoder::new_with_limits(
        input,
        png::Limits {
            bytes: MAX_DECODE_BYTES,
        },
    );
    let header = decoder.read_header_info().context("not a PNG image")?;
    if header.width > MAX_SIDE || header.height > MAX_SIDE {
        bail!(
            "the image is {}×{} pixels; a QR image is at most {MAX_SIDE}×{MAX_SIDE}",
            header.width,
            header.height
        );
    }
    // Palette, 16-bit and low-bit-depth images become 8-bit samples.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("not a PNG image")?;
    let size = reader
        .output_buffer_size()
        .filter(|n| *n <= MAX_DECODE_BYTES)
        .context("the PNG image is too large")?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .context("unreadable PNG image")?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let luma = |x: usize, y: usize| -> u8 {
        let i = (y * w + x) * channels;
        match channels {
            1 | 2 => buf.get(i).copied().unwrap_or(255),
            _ => {
                let px = |k: usize| u32::from(buf.get(i + k).copied().unwrap_or(255));
                u8::try_from((px(0) * 299 + px(1) * 587 + px(2) * 114) / 1000).unwrap_or(255)
            }
        }
    };
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = image.detect_grids();
    let Some(grid) = grids.first() else {
        bail!("no QR code found in {name}");
    };
    let (_, text) = grid.decode().context("the QR code could not be read")?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG header claiming `w`×`h` pixels, with no pixel data.
    fn header_only(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Sixteen);
        // The header is written; the (never written) pixels are what a bomb would claim.
        let writer = encoder.write_header().unwrap();
        drop(writer);
        out
    }

    #[test]
    fn a_crafted_huge_image_is_refused_before_any_pixel_buffer() {
        // 100,000 × 100,000 RGBA16: 80 GB of pixels if the header were believed.
        let png = header_only(100_000, 100_000);
        let err = decode_png_bytes(&png).unwrap_err();
        assert!(err.to_string().contains("at most 4096"), "{err}");
    }

    #[test]
    fn a_real_qr_png_still_decodes() {
        let code = QrCode::new(b"https://chat.example/i/abc#fp=00").unwrap();
        // Draw the code into a greyscale PNG, 4 pixels a module.
        let modules = code.to_colors();
        let width = code.width();
        let scale = 4;
        let side = (width + 8) * scale;
        let mut pixels = vec![255u8; side * side];
        for (i, c) in modules.iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (mx, my) = (i % width + 4, i / width + 4);
                for dy in 0..scale {
                    for dx in 0..scale {
                        pixels[(my * scale + dy) * side + mx * scale + dx] = 0;
                    }
                }
            }
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&pixels).unwrap();
        }
        let text = decode_png_bytes(&out).unwrap();
        assert_eq!(text, "https://chat.example/i/abc#fp=00");
    }
}
