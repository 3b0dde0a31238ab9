//! Where the server may connect on a tenant's behalf (webhooks): public unicast addresses
//! only, unless the operator allows private targets (`CLOAK_WEBHOOK_ALLOW_PRIVATE`). A URL
//! is checked when it is registered and again at every connect: the name is resolved, the
//! addresses are checked, and the connection goes to a checked address, so a name that
//! later resolves to `127.0.0.1` (DNS rebinding) reaches nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is a public unicast address: not loopback, private, link-local (so not the
/// cloud metadata service at 169.254.169.254 or fd00:ec2::254), carrier-grade NAT,
/// unspecified, broadcast, multicast, documentation or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fc00::/7, AWS metadata fd00:ec2::254)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 (maps IPv4, private ones too)
}

/// The host of an `http(s)://` URL, without IPv6 brackets, and its port.
pub fn host_and_port(url: &str) -> Result<(String, u16), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err("the URL must be http(s)".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    Ok((host, uri.port_u16().unwrap_or(default_port)))
}

/// Resolves `host` and keeps the addresses the policy allows; an error says why none.
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| allow_private || is_public(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(if addrs.is_empty() {
            format!("{host} has no address")
        } else {
            format!(
                "{host} is a loopback, private, link-local or otherwise non-public address; \
                 set CLOAK_WEBHOOK_ALLOW_PRIVATE=true to allow private targets"
            )
        });
    }
    Ok(allowed)
}

/// Checks a URL as registration does: http(s), a host, and a public address.
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    let (host, port) = host_and_port(url)?;
    resolve_allowed(&host, port, allow_private)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn hosts_are_taken_from_urls() {
        assert_eq!(
            host_and_port("https://[::1]:8443/x").unwrap(),
            ("::1".into(), 8443)
        );
        assert_eq!(
            host_and_port("http://hooks.example/x").unwrap(),
            ("hooks.example".into(), 80)
        );
        assert!(host_and_port("ftp://x/").is_err());
        assert!(host_and_port("https:///x").is_err());
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://[::1]:9/hook",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(check_url(url, false).await.is_err(), "{url}");
        }
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
    }
}
