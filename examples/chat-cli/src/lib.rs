//! The parts of cloak-chat that read untrusted input, as a library so that fuzz targets
//! (`examples/chat-cli/fuzz`) reach them: the QR image decoder.

pub mod qr;
