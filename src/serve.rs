//! The HTTP client of `smolvm serve`: the routes a bottle uses, their
//! request and response shapes (smolvm 1.9.2's `src/api/types.rs`), and
//! how serve's failures become this library's errors.
//!
//! HTTP/1.1 and TLS are ureq's and rustls's; this module adds only a
//! connector for unix sockets, which ureq leaves to its users.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, ShutdownHandle, Transport,
};

use crate::cancel::Bounds;
use crate::endpoint::{Endpoint, Target};
use crate::error::{Error, Result};

/// The most a response body may hold: a file read back (smolvm buffers
/// those whole as well) or an exec's output, base64-encoded twice over.
const BODY_MAX: u64 = 1 << 40;

/// How long a connection may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many idle connections a bottle keeps open to its serve for the
/// next requests.
pub(crate) const IDLE_CONNECTIONS: usize = 8;

/// A client of one `smolvm serve` for one bottle; its connections are
/// pooled (at most [`IDLE_CONNECTIONS`] kept idle) and closed with it.
#[derive(Debug, Clone)]
pub(crate) struct Serve {
    agent: ureq::Agent,
    /// Where serve is, for connections of the library's own (the
    /// interactive WebSocket).
    target: Target,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `scheme://host:port` the requests go to (a dummy for a unix socket).
    base: String,
    /// The endpoint's URL, for messages.
    url: String,
}

/// A machine as serve describes it (`MachineInfo`): what the library reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MachineInfo {
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) created_at: Option<u64>,
}

/// `{name, value}`, as serve's create and exec take variables.
#[derive(Debug, Serialize)]
pub(crate) struct EnvVar<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
}

/// serve's `ExecRequest` as the library sends it. Serve refuses unknown
/// fields, so only these are ever sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecRequest<'a> {
    pub(crate) command: &'a [String],
    pub(crate) env: Vec<EnvVar<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeout_secs: Option<u64>,
}

/// serve's `ExecResponse`; the `*B64` fields are byte-exact.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecResponse {
    exit_code: i32,
    #[serde(default)]
    stdout_b64: Option<String>,
    #[serde(default)]
    stderr_b64: Option<String>,
}

/// What a command run through serve printed, byte for byte.
#[derive(Debug)]
pub(crate) struct ExecReply {
    pub(crate) exit_code: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// serve's create request (`CreateMachineRequest`), as far as a launch sets it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateRequest<'a> {
    pub(crate) name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpus: Option<u32>,
    #[serde(rename = "memoryMb", skip_serializing_if = "Option::is_none")]
    pub(crate) memory_mb: Option<u32>,
    pub(crate) network: bool,
    pub(crate) mounts: Vec<Mount<'a>>,
    pub(crate) env: Vec<EnvVar<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Mount<'a> {
    pub(crate) source: &'a str,
    pub(crate) target: &'a str,
    pub(crate) readonly: bool,
}

/// serve's error body: `{"error": "...", "code": "NOT_FOUND"}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// A failure serve answered with: its HTTP status and its message.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl Refused {
    /// serve's message, or the HTTP status when it gave none.
    pub(crate) fn describe(&self) -> String {
        if self.message.is_empty() {
            format!("smolvm serve answered HTTP {} with no message", self.status)
        } else {
            self.message.clone()
        }
    }
}

enum Body<'a> {
    Empty,
    Json(Vec<u8>),
    Bytes(&'a [u8]),
}

impl Serve {
    /// A client of `ep`'s serve; nothing is contacted yet.
    pub(crate) fn new(ep: &Endpoint) -> Result<Self> {
        ep.check_usable()?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .max_idle_connections(IDLE_CONNECTIONS)
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .user_agent(concat!("libbottle/", env!("CARGO_PKG_VERSION")));
        #[cfg(feature = "tls")]
        let config = match &ep.tls {
            Some(id) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let tls = ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::Rustls)
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&id.ca))
                    .client_cert(Some(ureq::tls::ClientCert::new_with_certs(
                        &id.chain,
                        id.key.to_owned(),
                    )))
                    .unversioned_rustls_crypto_provider(provider)
                    .build();
                config.tls_config(tls)
            }
            None => config,
        };
        let config = config.build();
        let (agent, base) = match &ep.target {
            Target::Unix(path) => (
                ureq::Agent::with_parts(
                    config,
                    UnixConnector(path.clone()),
                    ureq::unversioned::resolver::DefaultResolver::default(),
                ),
                // Never resolved: the connector ignores the address.
                "http://127.0.0.1".to_owned(),
            ),
            Target::Tcp { tls, host, port } => {
                let scheme = if *tls { "https" } else { "http" };
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                (config.new_agent(), format!("{scheme}://{host}:{port}"))
            }
        };
        Ok(Serve {
            agent,
            base,
            url: ep.url().to_owned(),
            target: ep.target.clone(),
            #[cfg(feature = "tls")]
            tls: ep.tls.as_deref().map(rustls_config).transpose()?,
        })
    }

    /// Where serve is.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The TLS configuration of an https endpoint's own connections.
    #[cfg(feature = "tls")]
    pub(crate) fn rustls_config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// The endpoint's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v1/machines/{name}`; `Ok(None)` for a machine serve has no
    /// record of.
    pub(crate) fn machine(&self, name: &str, bounds: &Bounds) -> Result<Option<MachineInfo>> {
        match self.call("GET", &machine_path(name, ""), Body::Empty, bounds)? {
            Ok(body) => Ok(Some(self.json(&body)?)),
            Err(refused) if refused.status == 404 => Ok(None),
            Err(refused) => Err(self.refused(refused)),
        }
    }

    /// `POST /api/v1/machines`.
    pub(crate) fn create(
        &self,
        req: &CreateRequest<'_>,
        bounds: &Bounds,
    ) -> Result<std::result::Result<MachineInfo, Refused>> {
        let body = Body::Json(serde_json::to_vec(req).expect("a create request serialises"));
        match self.call("POST", "/api/v1/machines", body, bounds)? {
            Ok(body) => Ok(Ok(self.json(&body)?)),
            Err(refused) => Ok(Err(refused)),
        }
    }

    /// `POST .../start`, `.../stop` or `DELETE` of a machine.
    pub(crate) fn lifecycle(
        &self,
        op: Lifecycle,
        name: &str,
        bounds: &Bounds,
    ) -> Result<std::result::Result<(), Refused>> {
        let (method, path) = match op {
            Lifecycle::Start => ("POST", machine_path(name, "/start")),
            Lifecycle::Stop => ("POST", machine_path(name, "/stop")),
            Lifecycle::Delete => ("DELETE", machine_path(name, "")),
        };
        Ok(self.call(method, &path, Body::Empty, bounds)?.map(drop))
    }

    /// `POST .../exec`: runs `req` to its end and returns its output, byte
    /// for byte.
    pub(crate) fn exec(
        &self,
        name: &str,
        req: &ExecRequest<'_>,
        bounds: &Bounds,
    ) -> Result<std::result::Result<ExecReply, Refused>> {
        let body = Body::Json(serde_json::to_vec(req).expect("an exec request serialises"));
        let body = match self.call("POST", &machine_path(name, "/exec"), body, bounds)? {
            Ok(body) => body,
            Err(refused) => return Ok(Err(refused)),
        };
        let reply: ExecResponse = self.json(&body)?;
        let decode = |field: &str, b64: Option<String>| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.unwrap_or_default())
                .map_err(|e| self.unexpected(format!("{field} is not base64: {e}")))
        };
        Ok(Ok(ExecReply {
            exit_code: reply.exit_code,
            stdout: decode("stdoutB64", reply.stdout_b64)?,
            stderr: decode("stderrB64", reply.stderr_b64)?,
        }))
    }

    /// `PUT .../files/{path}`: writes `data` at `path` (parents created,
    /// mode 0644, owned by root).
    pub(crate) fn upload(
        &self,
        name: &str,
        path: &str,
        data: &[u8],
        bounds: &Bounds,
    ) -> Result<std::result::Result<(), Refused>> {
        let route = machine_path(name, &files_path(path));
        Ok(self
            .call("PUT", &route, Body::Bytes(data), bounds)?
            .map(drop))
    }

    /// `GET .../files/{path}`: the file's bytes.
    pub(crate) fn download(
        &self,
        name: &str,
        path: &str,
        bounds: &Bounds,
    ) -> Result<std::result::Result<Vec<u8>, Refused>> {
        let route = machine_path(name, &files_path(path));
        self.call("GET", &route, Body::Empty, bounds)
    }

    /// A refusal as this library's error: serve's message, with the
    /// endpoint.
    pub(crate) fn refused(&self, r: Refused) -> Error {
        Error::Smolvm(format!(
            "smolvm serve at {} answered {}: {}",
            self.url,
            r.status,
            r.describe()
        ))
    }

    fn unexpected(&self, what: String) -> Error {
        Error::Smolvm(format!(
            "smolvm serve at {}: unexpected answer: {what}",
            self.url
        ))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| self.unexpected(e.to_string()))
    }

    /// One request, within `bounds`: the body of a success, or serve's
    /// refusal. Failing to reach serve, or an answer that is not HTTP, is
    /// an error.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        bounds: &Bounds,
    ) -> Result<std::result::Result<Vec<u8>, Refused>> {
        if bounds.cancel().is_some_and(|c| c.is_tripped()) {
            return Err(Error::Cancelled("cancelled".into()));
        }
        let timeout = match bounds.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout("the deadline passed".into()));
                }
                Some(left)
            }
            None => None,
        };
        let uri = format!("{}{path}", self.base);
        let request = ureq::http::Request::builder().method(method).uri(&uri);
        let request = match body {
            Body::Empty => request.body(Vec::new()),
            Body::Json(json) => request
                .header("content-type", "application/json")
                .body(json),
            Body::Bytes(bytes) => request
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec()),
        }
        .map_err(|e| self.unexpected(format!("request {method} {path}: {e}")))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(timeout)
            .build();
        let mut response = self.agent.run(request).map_err(|e| self.failed(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_MAX)
            .read_to_vec()
            .map_err(|e| self.failed(e))?;
        if (200..300).contains(&status) {
            return Ok(Ok(body));
        }
        let message = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => e.error,
            Err(_) => String::from_utf8_lossy(&body).trim().to_owned(),
        };
        Ok(Err(Refused { status, message }))
    }

    fn failed(&self, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Timeout(_) => Error::Timeout(format!("smolvm serve at {}", self.url)),
            ureq::Error::Io(e) => Error::io(format!("talking to smolvm serve at {}", self.url), e),
            other => Error::io(
                format!("talking to smolvm serve at {}", self.url),
                io::Error::other(other.to_string()),
            ),
        }
    }
}

/// A rustls client configuration for `id`: its CA as the only roots, its
/// certificate and key for client authentication.
#[cfg(feature = "tls")]
fn rustls_config(id: &crate::endpoint::Identity) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: rustls::Error| Error::invalid("ep", format!("the TLS material is unusable: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for ca in &id.ca {
        roots
            .add(CertificateDer::from(ca.der().to_vec()))
            .map_err(bad)?;
    }
    let chain = id
        .chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::try_from(id.key.der().to_vec())
        .map_err(|e| Error::invalid("key_file", format!("not a private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(bad)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(bad)?;
    Ok(Arc::new(config))
}

/// The lifecycle requests a bottle makes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lifecycle {
    Start,
    Stop,
    Delete,
}

/// `/api/v1/machines/{name}{rest}`; a machine name needs no escaping
/// (its rule allows only ASCII letters, digits, `-` and `_`).
fn machine_path(name: &str, rest: &str) -> String {
    format!("/api/v1/machines/{name}{rest}")
}

/// `/files/{path}` with each segment of the guest path percent-encoded.
fn files_path(path: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let mut out = String::from("/files");
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.extend(utf8_percent_encode(segment, SEGMENT));
    }
    out
}

/// ureq's connector for a unix socket: every request, whatever its URL,
/// goes to the socket at this path.
#[derive(Debug)]
struct UnixConnector(PathBuf);

impl<In: Transport> Connector<In> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        let stream = Arc::new(Socket(UnixStream::connect(&self.0)?));
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let config = details.config;
        Ok(Some(UnixTransport {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
        }))
    }
}

/// A unix socket ureq can shut down from another thread.
#[derive(Debug)]
struct Socket(UnixStream);

impl ShutdownHandle for Socket {
    fn shutdown(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// A unix-socket connection as ureq drives it.
#[derive(Debug)]
struct UnixTransport {
    stream: Arc<Socket>,
    buffers: LazyBuffers,
}

/// The time left by `timeout` for one read or write; `Err` once it is up.
fn io_timeout(timeout: NextTimeout) -> std::result::Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_not_happening() {
        return Ok(None);
    }
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(Some(*timeout.after))
}

fn timed_out(e: io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.0.set_write_timeout(io_timeout(timeout)?)?;
        let output = &self.buffers.output()[..amount];
        (&self.stream.0)
            .write_all(output)
            .map_err(|e| timed_out(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.0.set_read_timeout(io_timeout(timeout)?)?;
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&self.stream.0).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| timed_out(e, timeout))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Readable with nothing to read means the peer closed it.
        let mut fds = [rustix::event::PollFd::new(
            &self.stream.0,
            rustix::event::PollFlags::IN,
        )];
        let now = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&now)), Ok(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_encoded_segment_by_segment() {
        assert_eq!(
            files_path("/home/node/a b.txt"),
            "/files/home/node/a%20b.txt"
        );
        assert_eq!(files_path("/x/%/?#"), "/files/x/%25/%3F%23");
        assert_eq!(files_path("/é"), "/files/%C3%A9");
    }
}
