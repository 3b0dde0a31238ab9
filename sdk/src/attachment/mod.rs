//! Encrypted attachments: sealing ([`seal`], sans-IO) and transfer ([`transfer`]: tus
//! uploads and ranged downloads through [`crate::DeviceClient`]).

pub mod seal;
pub mod transfer;

/// How far a transfer is: bytes of the sealed blob moved, of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}
