//! A certificate authority made for this test run, and the server certificate it issues
//! for `localhost` and `127.0.0.1`: every server process serves HTTPS with it, and every
//! client (the SDK, the harness, the examples) trusts only it besides the usual roots.

use std::path::PathBuf;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub struct TestCa {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// Files: the CA certificate, the server's chain and key.
    pub ca_path: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Chromium's flag trusting exactly the server's key (base64 SHA-256 of its SPKI).
    pub chromium_flag: String,
    _dir: tempfile::TempDir,
}

/// The run's CA, made on first use.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        cloak_sdk::tls::install_default_provider();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Cloak e2e test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        std::fs::write(&cert_path, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(&key_path, leaf_key.serialize_pem()).unwrap();
        use base64::Engine as _;
        use sha2::Digest as _;
        let spki = sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&leaf_key));
        let chromium_flag = format!(
            "--ignore-certificate-errors-spki-list={}",
            base64::engine::general_purpose::STANDARD.encode(spki)
        );
        TestCa {
            chromium_flag,
            ca_pem: ca.pem(),
            ca_path,
            cert_path,
            key_path,
            _dir: dir,
        }
    })
}

/// The SDK's TLS settings trusting the test CA.
pub fn sdk_tls() -> cloak_sdk::Tls {
    cloak_sdk::Tls::with_root_pem(test_ca().ca_pem.as_bytes()).unwrap()
}

/// An HTTP client trusting the test CA.
pub fn http() -> reqwest::Client {
    sdk_tls().http_client().unwrap()
}
