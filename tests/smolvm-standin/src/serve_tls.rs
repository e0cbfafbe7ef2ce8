//! TLS for `serve` on TCP, configured as smolvm 1.9.2's `serve_tls.rs` does:
//! mutual TLS only, from three PEM files named by environment variables
//! (all three or none), the client certificate verified against the client
//! CA (a client without one, or with one from another CA, fails the
//! handshake), rustls with ring, TLS 1.2 and 1.3. With
//! `SMOLVM_SERVE_REQUIRE_MTLS=1` (or `true`) serve refuses to start
//! without them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

const ENV_CERT: &str = "SMOLVM_SERVE_TLS_CERT";
const ENV_KEY: &str = "SMOLVM_SERVE_TLS_KEY";
const ENV_CLIENT_CA: &str = "SMOLVM_SERVE_TLS_CLIENT_CA";
const ENV_REQUIRE_MTLS: &str = "SMOLVM_SERVE_REQUIRE_MTLS";

fn require_mtls() -> bool {
    matches!(
        std::env::var(ENV_REQUIRE_MTLS).ok().as_deref(),
        Some("1") | Some("true")
    )
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `None`: plain HTTP. The messages are smolvm's. Resolved whatever the
/// listen address, as smolvm does: a unix socket is always plain HTTP, but
/// `SMOLVM_SERVE_REQUIRE_MTLS` still refuses to start without the files.
pub fn resolve() -> Result<Option<Arc<ServerConfig>>, String> {
    match (
        env_path(ENV_CERT),
        env_path(ENV_KEY),
        env_path(ENV_CLIENT_CA),
    ) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(server_config(&cert, &key, &ca)?)),
        (None, None, None) if require_mtls() => Err(format!(
            "{ENV_REQUIRE_MTLS} is set but {ENV_CERT}/{ENV_KEY}/{ENV_CLIENT_CA} are unset — \
             refusing to start without client-cert verification (fail-closed)"
        )),
        (None, None, None) => Ok(None),
        _ => Err(format!(
            "incomplete serve TLS config: set all of {ENV_CERT}, {ENV_KEY}, {ENV_CLIENT_CA} (or none)"
        )),
    }
}

fn server_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca)
        .map_err(|e| format!("read client CA {}: {e}", client_ca.display()))?
    {
        let ca = ca.map_err(|e| format!("parse client CA cert: {e}"))?;
        roots
            .add(ca)
            .map_err(|e| format!("add client CA to root store: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "client CA {} contained no certificates",
            client_ca.display()
        ));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("build client-cert verifier: {e}"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("read server cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parse server cert chain: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "server cert {} contained no certificates",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("read server key {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("rustls protocol versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("install server cert/key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// With TLS, smolvm also serves plain HTTP on the loopback address, port + 1
/// (or `SMOLVM_SERVE_LOCAL_ADDR`), for its node agent's liveness polls: only
/// health routes, never the machine API. An unparsable override means no
/// such listener.
pub fn local_plain_addr(
    main: std::net::SocketAddr,
) -> Result<Option<std::net::SocketAddr>, String> {
    let addr = match std::env::var("SMOLVM_SERVE_LOCAL_ADDR")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(text) => text.parse().ok(),
        None => Some(std::net::SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            main.port().wrapping_add(1),
        ))),
    };
    match addr {
        Some(addr) if !addr.ip().is_loopback() => {
            Err(format!("SMOLVM_SERVE_LOCAL_ADDR {addr} must be loopback"))
        }
        other => Ok(other),
    }
}
