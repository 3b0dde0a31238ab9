//! Transport security: one rustls configuration (ring provider) for HTTP and the
//! WebSocket, and the rule that a device token only travels over TLS.
//!
//! Roots of trust are the Mozilla set (webpki-roots), the operating system's store (read
//! as `rustls-native-certs` reads it, so `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured)
//! and any roots the app adds for a self-hosted server ([`Tls::with_root_pem`]).
//! Plain `http`/`ws` is refused except to a loopback address, unless the app explicitly
//! allows it ([`Tls::allow_plaintext`]).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::Error;

/// The TLS settings of one client. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    allow_plaintext: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("allow_plaintext", &self.allow_plaintext)
            .finish_non_exhaustive()
    }
}

fn tls_error(e: impl std::fmt::Display) -> Error {
    Error::Transport(format!("TLS: {e}"))
}

impl Tls {
    /// webpki and native roots.
    pub fn new() -> Result<Self, Error> {
        Self::with_roots(Vec::new())
    }

    /// webpki and native roots plus the certificates in `pem` (one or more `CERTIFICATE`
    /// blocks), for a server whose certificate a private CA issued.
    pub fn with_root_pem(pem: &[u8]) -> Result<Self, Error> {
        let extra = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls_error)?;
        if extra.is_empty() {
            return Err(Error::Transport(
                "TLS: no CERTIFICATE block in the root file".into(),
            ));
        }
        Self::with_roots(extra)
    }

    fn with_roots(extra: Vec<CertificateDer<'static>>) -> Result<Self, Error> {
        install_default_provider();
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // Unreadable or malformed system certificates are skipped, as browsers do.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for cert in extra {
            roots.add(cert).map_err(tls_error)?;
        }
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(tls_error)?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            allow_plaintext: false,
        })
    }

    /// Allows plain `http`/`ws` to any host (development only: tokens then travel in
    /// clear).
    pub fn allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }

    /// Whether plain `http` to any host is allowed.
    pub fn allows_plaintext(&self) -> bool {
        self.allow_plaintext
    }

    /// The rustls configuration (shared by HTTP and the WebSocket).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// An HTTP client over this configuration.
    pub fn http_client(&self) -> Result<reqwest::Client, Error> {
        reqwest::Client::builder()
            .use_preconfigured_tls(ClientConfig::clone(&self.config))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| tls_error(e.without_url()))
    }

    /// Refuses a base URL that would carry tokens in clear: `https` always passes,
    /// `http` only to a loopback host (or with [`allow_plaintext`](Self::allow_plaintext)).
    pub fn check_url(&self, base_url: &str) -> Result<(), Error> {
        check_base_url(base_url, self.allow_plaintext)
    }
}

/// Makes ring the process's default rustls provider, unless one is set already.
/// `reqwest::Client::new()` needs a default provider when reqwest is built without one of
/// its own (as here: its own choice, aws-lc-rs, needs cmake); every [`Tls`] calls this.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The configuration used when the app gave none: webpki and native roots, built once.
pub(crate) fn default_config() -> Result<Arc<ClientConfig>, Error> {
    static DEFAULT: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(config.clone());
    }
    let config = Tls::new()?.config();
    Ok(DEFAULT.get_or_init(|| config).clone())
}

/// See [`Tls::check_url`].
pub fn check_base_url(base_url: &str, allow_plaintext: bool) -> Result<(), Error> {
    let (scheme, rest) = base_url
        .split_once("://")
        .ok_or_else(|| Error::InvalidUrl(format!("{base_url}: no scheme")))?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_plaintext || is_loopback(host_of(rest)) => Ok(()),
        "http" => Err(Error::InvalidUrl(format!(
            "{base_url}: plain http only reaches loopback; use https"
        ))),
        other => Err(Error::InvalidUrl(format!(
            "{base_url}: unsupported scheme {other}"
        ))),
    }
}

/// The host of `host[:port][/path]`, brackets of an IPv6 literal removed.
fn host_of(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_only_reaches_loopback() {
        for ok in [
            "https://chat.example",
            "https://chat.example:8443/base",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost:1",
            "http://[::1]:80/x",
            "HTTP://LOCALHOST",
        ] {
            assert!(check_base_url(ok, false).is_ok(), "{ok}");
        }
        for refused in [
            "http://chat.example",
            "http://10.0.0.1:80",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "http://[::2]:80",
            "http://user@chat.example",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
        ] {
            assert!(check_base_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_base_url("http://chat.example", true).is_ok());
        assert!(check_base_url("ftp://chat.example", true).is_err());
    }

    #[test]
    fn root_files_must_hold_certificates() {
        assert!(Tls::with_root_pem(b"not a pem").is_err());
        assert!(Tls::new().is_ok());
    }
}
