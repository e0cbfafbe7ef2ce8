//! Where a `smolvm serve` listens, and how to reach it: the endpoint a
//! bottle can be opened or launched at instead of the local smolvm CLI.

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A `smolvm serve` to talk to: `unix:/path/to/smolvm.sock`,
/// `https://host:port` (mutual TLS, see [`Endpoint::set_tls`]) or
/// `http://127.0.0.1:port` (plain HTTP, loopback only: serve has no other
/// authentication).
#[derive(Clone)]
pub struct Endpoint {
    url: String,
    pub(crate) target: Target,
    pub(crate) tls: Option<Arc<Identity>>,
}

/// How a connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A unix socket at this absolute path.
    Unix(PathBuf),
    /// TCP to `host:port`, with TLS or (loopback only) without.
    Tcp { tls: bool, host: String, port: u16 },
}

/// The PEM material of mutual TLS, read when it is set: the CA that signed
/// serve's certificate, and this client's certificate chain and key.
#[cfg(feature = "tls")]
pub(crate) struct Identity {
    pub(crate) ca: Vec<ureq::tls::Certificate<'static>>,
    pub(crate) chain: Vec<ureq::tls::Certificate<'static>>,
    pub(crate) key: ureq::tls::PrivateKey<'static>,
}

/// Without the `tls` feature there is no TLS material to hold.
#[cfg(not(feature = "tls"))]
pub(crate) enum Identity {}

impl fmt::Debug for Endpoint {
    /// The URL and whether TLS material is set; never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// Parses `url`; nothing is contacted. Messages name `url`.
    pub fn new(url: &str) -> Result<Self> {
        let bad = |reason: String| Err(Error::invalid("url", reason));
        let target = if let Some(path) = url.strip_prefix("unix:") {
            // smolvm's own spelling is unix:///path; unix:/path is the same.
            let path = path.strip_prefix("//").unwrap_or(path);
            if !path.starts_with('/') {
                return bad(format!(
                    "{url:?}: a unix socket is named by an absolute path, as in \
                     unix:/run/smolvm.sock"
                ));
            }
            if path.contains('\0') {
                return bad("must not contain a NUL byte".into());
            }
            // sun_path holds 108 bytes with the NUL.
            if path.len() > 107 {
                return bad(format!(
                    "the socket path is {} bytes long; a unix socket's path holds at most 107",
                    path.len()
                ));
            }
            Target::Unix(PathBuf::from(path))
        } else if let Some(rest) = url.strip_prefix("https://") {
            let (host, port) = host_port(url, rest, 443)?;
            Target::Tcp {
                tls: true,
                host,
                port,
            }
        } else if let Some(rest) = url.strip_prefix("http://") {
            let (host, port) = host_port(url, rest, 80)?;
            if !is_loopback(&host, port) {
                return bad(format!(
                    "{url:?}: plain http is allowed only to a loopback address (serve has no \
                     authentication); use https:// with mutual TLS for another host"
                ));
            }
            Target::Tcp {
                tls: false,
                host,
                port,
            }
        } else {
            return bad(format!(
                "{url:?} is not an endpoint: use unix:/path/to/smolvm.sock, \
                 https://host:port or http://127.0.0.1:port"
            ));
        };
        Ok(Endpoint {
            url: url.to_owned(),
            target,
            tls: None,
        })
    }

    /// Sets the mutual-TLS material of an `https://` endpoint, read from PEM
    /// files now: `ca_file` holds the certificate(s) that serve's
    /// certificate must chain to, `cert_file` this client's certificate
    /// (chain), `key_file` its private key. Messages name the file's
    /// argument.
    ///
    /// A library built without its `tls` feature returns
    /// [`Error::Unsupported`].
    pub fn set_tls(&mut self, ca_file: &Path, cert_file: &Path, key_file: &Path) -> Result<()> {
        if !matches!(self.target, Target::Tcp { tls: true, .. }) {
            return Err(Error::invalid(
                "ep",
                format!("{}: TLS is set only on an https:// endpoint", self.url),
            ));
        }
        #[cfg(feature = "tls")]
        {
            let ca = certificates("ca_file", ca_file)?;
            let chain = certificates("cert_file", cert_file)?;
            let key = private_key("key_file", key_file)?;
            self.tls = Some(Arc::new(Identity { ca, chain, key }));
            Ok(())
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (ca_file, cert_file, key_file);
            Err(Error::Unsupported(
                "this libbottle was built without its `tls` feature: no https endpoints".into(),
            ))
        }
    }

    /// The URL the endpoint was made from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Refuses an endpoint that cannot be used as it is: `https://` without
    /// its TLS material.
    pub(crate) fn check_usable(&self) -> Result<()> {
        if matches!(self.target, Target::Tcp { tls: true, .. }) && self.tls.is_none() {
            return Err(Error::invalid(
                "ep",
                format!(
                    "{}: an https endpoint needs its certificates set first \
                     (smolvm serve speaks only mutual TLS)",
                    self.url
                ),
            ));
        }
        Ok(())
    }
}

/// `host[:port][/]` of an http(s) URL; `[v6]` for IPv6 literals.
fn host_port(url: &str, rest: &str, default_port: u16) -> Result<(String, u16)> {
    let bad = |reason: &str| Err(Error::invalid("url", format!("{url:?}: {reason}")));
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return bad("an endpoint is scheme://host:port, with no path, query or user");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return bad("an IPv6 address needs its closing ']'");
        };
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("needs a host name or address");
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return bad("the port must be a number from 1 to 65535"),
        },
    };
    Ok((host.to_owned(), port))
}

/// Whether every address `host` names is a loopback address.
fn is_loopback(host: &str, port: u16) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    if !host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    (host, port)
        .to_socket_addrs()
        .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
        .unwrap_or(false)
}

#[cfg(feature = "tls")]
fn read_pem(arg: &str, path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(arg, "must not be empty"));
    }
    std::fs::read(path).map_err(|e| Error::io(format!("{arg} {}: cannot read", path.display()), e))
}

#[cfg(feature = "tls")]
fn certificates(arg: &str, path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = read_pem(arg, path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::invalid(
                    arg,
                    format!("{}: not PEM: {e}", path.display()),
                ))
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::invalid(
            arg,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

#[cfg(feature = "tls")]
fn private_key(arg: &str, path: &Path) -> Result<ureq::tls::PrivateKey<'static>> {
    let pem = read_pem(arg, path)?;
    let mut keys = ureq::tls::parse_pem(&pem).filter_map(|item| match item {
        Ok(ureq::tls::PemItem::PrivateKey(k)) => Some(Ok(k)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    });
    match (keys.next(), keys.next()) {
        (Some(Ok(key)), None) => Ok(key),
        (Some(Err(e)), _) => Err(Error::invalid(
            arg,
            format!("{}: not PEM: {e}", path.display()),
        )),
        (None, _) => Err(Error::invalid(
            arg,
            format!("{} holds no PEM private key", path.display()),
        )),
        (Some(Ok(_)), Some(_)) => Err(Error::invalid(
            arg,
            format!("{} holds more than one private key", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Endpoint::new(url).unwrap().target
    }

    #[test]
    fn urls_parse_into_targets() {
        assert_eq!(
            target("unix:/run/s.sock"),
            Target::Unix("/run/s.sock".into())
        );
        assert_eq!(
            target("unix:///run/s.sock"),
            Target::Unix("/run/s.sock".into())
        );
        let tcp = |tls, host: &str, port| Target::Tcp {
            tls,
            host: host.into(),
            port,
        };
        assert_eq!(target("https://vm-host:8443"), tcp(true, "vm-host", 8443));
        assert_eq!(target("https://vm-host/"), tcp(true, "vm-host", 443));
        assert_eq!(target("https://[fd00::1]:9"), tcp(true, "fd00::1", 9));
        assert_eq!(
            target("http://127.0.0.1:8080"),
            tcp(false, "127.0.0.1", 8080)
        );
        assert_eq!(target("http://[::1]:8080"), tcp(false, "::1", 8080));
    }

    #[test]
    fn bad_urls_are_refused_by_name() {
        for bad in [
            "",
            "unix:relative.sock",
            "unix:",
            "ftp://h",
            "https://",
            "https://h:0",
            "https://h:99999",
            "https://h:1/api",
            "https://u@h:1",
            "http://10.0.0.1:80",
            "http://example.com:80",
            "https://[::1",
        ] {
            let e = Endpoint::new(bad).unwrap_err().to_string();
            assert!(e.starts_with("url: "), "{bad}: {e}");
        }
    }

    #[test]
    #[cfg(feature = "tls")]
    fn https_needs_its_certificates_and_others_refuse_them() {
        let ep = Endpoint::new("https://h:1").unwrap();
        assert!(ep
            .check_usable()
            .unwrap_err()
            .to_string()
            .starts_with("ep: "));
        let mut unix = Endpoint::new("unix:/s").unwrap();
        unix.check_usable().unwrap();
        let p = Path::new("/nonexistent");
        assert!(unix
            .set_tls(p, p, p)
            .unwrap_err()
            .to_string()
            .starts_with("ep: "));
        let mut ep = ep;
        let e = ep.set_tls(p, p, p).unwrap_err().to_string();
        assert!(e.starts_with("ca_file /nonexistent: cannot read"), "{e}");
    }
}
