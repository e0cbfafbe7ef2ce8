//! claude on the caller's terminal through serve's interactive WebSocket
//! (`GET .../exec/interactive?cmd=PROGRAM`), which runs one program on a
//! guest pseudo-terminal: binary frames carry the terminal's bytes both
//! ways, a text frame `{"type":"resize",...}` resizes it, and a final
//! `{"type":"exit","code":N}` ends the session.
//!
//! The route takes a program without arguments, environment or working
//! directory, so the library first uploads a launcher script into a
//! root-only directory (`/tmp/.bottle-claude-<random>`), made executable
//! by one root command: it removes its own directory, sets the carried
//! variables and execs the same `runuser -l ... node SCRIPT` as the other
//! transports, with claude's argv quoted byte for byte. The route is then
//! opened with the launcher as its program.
//!
//! The caller's terminal is put in raw mode for the session (as smolvm's
//! CLI does with `-t`) and restored after; its size is sent at the start
//! and whenever it changes. Stopping the call (deadline, cancel token)
//! closes the WebSocket, which ends the command.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use tungstenite::protocol::Message;
use tungstenite::WebSocket;

use crate::cancel::Bounds;
use crate::capture::SharedStdin;
use crate::endpoint::Target;
use crate::error::{Error, Result};
use crate::serve::Serve;

/// How often the terminal's size is looked at while nothing else happens.
const TICK: Duration = Duration::from_millis(250);

/// A connection to serve, as the WebSocket runs over it.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    fn socket(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Unix(s) => s.as_fd(),
            Conn::Tcp(s) => s.as_fd(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.sock.as_fd(),
        }
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_nonblocking(on),
            Conn::Tcp(s) => s.set_nonblocking(on),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.sock.set_nonblocking(on),
        }
    }
}

/// Opens a connection to serve as `serve` reaches it.
fn connect(serve: &Serve) -> Result<Conn> {
    let failed =
        |e: io::Error| Error::io(format!("connecting to smolvm serve at {}", serve.url()), e);
    match serve.target() {
        Target::Unix(path) => UnixStream::connect(path).map(Conn::Unix).map_err(failed),
        Target::Tcp {
            tls: false,
            host,
            port,
        } => TcpStream::connect((host.as_str(), *port))
            .map(Conn::Tcp)
            .map_err(failed),
        #[cfg(feature = "tls")]
        Target::Tcp {
            tls: true,
            host,
            port,
        } => {
            let tcp = TcpStream::connect((host.as_str(), *port)).map_err(failed)?;
            let config = serve.rustls_config().ok_or_else(|| {
                Error::invalid("ep", "an https endpoint needs its certificates set first")
            })?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| failed(io::Error::other(e)))?;
            let conn = rustls::ClientConnection::new(config, name)
                .map_err(|e| failed(io::Error::other(e)))?;
            Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
        }
        #[cfg(not(feature = "tls"))]
        Target::Tcp { tls: true, .. } => Err(Error::Unsupported(
            "this libbottle was built without its `tls` feature: no https endpoints".into(),
        )),
    }
}

/// Runs `launcher` (an executable guest path) on a guest terminal wired to
/// the caller's, within `bounds`; returns its exit status.
pub(crate) fn run(serve: &Serve, machine: &str, launcher: &str, bounds: &Bounds) -> Result<i32> {
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let path = format!(
        "/api/v1/machines/{machine}/exec/interactive?cmd={}&cols={cols}&rows={rows}",
        percent_encoding::utf8_percent_encode(launcher, percent_encoding::NON_ALPHANUMERIC)
    );
    let conn = connect(serve)?;
    let url = format!("ws://localhost{path}");
    let (mut ws, _) = tungstenite::client::client(url.as_str(), conn).map_err(|e| {
        Error::Smolvm(format!(
            "smolvm serve at {}: opening the interactive route failed: {e}",
            serve.url()
        ))
    })?;
    ws.get_ref()
        .set_nonblocking(true)
        .map_err(|e| Error::io("the interactive connection", e))?;
    let terminal = SharedStdin::save();
    terminal.make_raw();
    let result = relay(&mut ws, bounds, (cols, rows));
    terminal.restore();
    result
}

/// Moves bytes between the caller's terminal and the WebSocket until the
/// exit frame arrives, or the call is stopped.
fn relay(ws: &mut WebSocket<Conn>, bounds: &Bounds, mut size: (u16, u16)) -> Result<i32> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdin = io::stdin();
    let mut stdin_open = true;
    let mut out = io::stdout();
    let lost = |e: tungstenite::Error| Error::io("the interactive connection", io::Error::other(e));
    // A descriptor of the socket to poll, while the WebSocket owns it.
    let socket = ws
        .get_ref()
        .socket()
        .try_clone_to_owned()
        .map_err(|e| Error::io("the interactive connection", e))?;
    loop {
        if bounds.cancel().is_some_and(|c| c.is_tripped()) {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Err(Error::Cancelled("cancelled".into()));
        }
        let wait = match bounds.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    return Err(Error::Timeout("the deadline passed".into()));
                }
                left.min(TICK)
            }
            None => TICK,
        };
        // Everything the connection already holds is read first.
        loop {
            match ws.read() {
                Ok(Message::Binary(data)) => {
                    out.write_all(&data)
                        .and_then(|()| out.flush())
                        .map_err(|e| Error::io("writing to stdout", e))?;
                }
                Ok(Message::Text(text)) => {
                    if let Some(code) = exit_code(text.as_str()) {
                        let _ = ws.close(None);
                        let _ = ws.flush();
                        return Ok(code);
                    }
                }
                Ok(Message::Close(_)) => {
                    return Err(Error::Smolvm(
                        "smolvm serve closed the terminal without claude's exit status".into(),
                    ))
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(lost(e)),
            }
        }
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(lost(e)),
        }
        if let Some(now) = window_size() {
            if now != size {
                size = now;
                let resize = format!(r#"{{"type":"resize","cols":{},"rows":{}}}"#, now.0, now.1);
                send(ws, Message::Text(resize.into())).map_err(lost)?;
            }
        }
        let mut fds = vec![PollFd::new(&socket, PollFlags::IN)];
        let stdin_fd = stdin.as_fd();
        if stdin_open {
            fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
        }
        let cancel_fd = bounds.cancel().map(|c| c.as_fd());
        if let Some(fd) = &cancel_fd {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        let timeout = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: wait.subsec_nanos().into(),
        };
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("waiting for the terminal", e.into())),
        }
        let stdin_ready = stdin_open && !fds[1].revents().is_empty();
        drop(fds);
        if stdin_ready {
            let mut buf = [0u8; 4096];
            match rustix::io::read(stdin_fd, &mut buf) {
                // End of input: the route has no way to pass it on, so the
                // terminal simply gets no more.
                Ok(0) => stdin_open = false,
                Ok(n) => send(ws, Message::Binary(buf[..n].to_vec().into())).map_err(lost)?,
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

/// Sends a frame; one the socket cannot take yet stays queued for the
/// next flush.
fn send(ws: &mut WebSocket<Conn>, message: Message) -> tungstenite::Result<()> {
    match ws.send(message) {
        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        other => other,
    }
}

/// The code of an exit frame, `{"type":"exit","code":N}`.
fn exit_code(text: &str) -> Option<i32> {
    #[derive(serde::Deserialize)]
    struct Exit {
        r#type: String,
        code: i32,
    }
    serde_json::from_str::<Exit>(text)
        .ok()
        .filter(|e| e.r#type == "exit")
        .map(|e| e.code)
}

/// The caller's terminal size (columns, rows), if stdout or stdin is one.
fn window_size() -> Option<(u16, u16)> {
    [io::stdout().as_fd(), io::stdin().as_fd()]
        .into_iter()
        .find_map(|fd| rustix::termios::tcgetwinsize(fd).ok())
        .filter(|w| w.ws_col > 0 && w.ws_row > 0)
        .map(|w| (w.ws_col, w.ws_row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exit_frames_end_the_session() {
        assert_eq!(exit_code(r#"{"type":"exit","code":3}"#), Some(3));
        assert_eq!(exit_code(r#"{"type":"resize","cols":1,"rows":2}"#), None);
        assert_eq!(exit_code("not json"), None);
    }
}
