//! QR codes of links, as SVG and PNG.

use cloak_proto::Code;
use qrcode::QrCode;
use qrcode::render::svg;

use super::ServiceError;

/// Pixels per QR module in the PNG.
const SCALE: usize = 8;
/// Light modules around the code, as readers expect.
const QUIET_ZONE: usize = 4;

fn code(text: &str) -> Result<QrCode, ServiceError> {
    QrCode::new(text.as_bytes()).map_err(|e| ServiceError::invalid(Code::QrTooLong, e.to_string()))
}

/// The QR code as an SVG document.
pub fn svg(text: &str) -> Result<String, ServiceError> {
    Ok(code(text)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// The QR code as a greyscale PNG.
pub fn png(text: &str) -> Result<Vec<u8>, ServiceError> {
    let qr = code(text)?;
    let modules = qr.width();
    let colors = qr.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let side32 = u32::try_from(side)
        .map_err(|_| ServiceError::invalid(Code::QrTooLong, "QR code too large"))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let internal = |e: png::EncodingError| ServiceError::invalid(Code::QrEncoding, e.to_string());
    let mut writer = encoder.write_header().map_err(internal)?;
    writer.write_image_data(&pixels).map_err(internal)?;
    writer.finish().map_err(internal)?;
    Ok(out)
}
