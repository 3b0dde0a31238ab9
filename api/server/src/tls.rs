//! Serving TLS without a proxy: the certificate chain and key from PEM files
//! (`CLOAK_TLS_CERT`, `CLOAK_TLS_KEY`) in a rustls configuration with the ring provider,
//! offering HTTP/1.1 (the WebSocket upgrade needs it) and HTTP/2.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// Builds the server's TLS configuration; the error names the file at fault.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE block", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let files = TlsFiles {
            cert: empty.clone(),
            key: dir.path().join("missing.pem"),
        };
        let err = server_config(&files).unwrap_err();
        assert!(err.contains("empty.pem"), "{err}");
        let files = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: empty,
        };
        assert!(server_config(&files).unwrap_err().contains("nope.pem"));
    }
}
