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

/// The text of the one QR code in a PNG image.
pub fn decode_png(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    // Palette, 16-bit and low-bit-depth images become 8-bit samples.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().context("not a PNG image")?;
    let size = reader
        .output_buffer_size()
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
        bail!("no QR code found in {}", path.display());
    };
    let (_, text) = grid.decode().context("the QR code could not be read")?;
    Ok(text)
}
