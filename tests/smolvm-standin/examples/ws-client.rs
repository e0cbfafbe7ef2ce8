//! A minimal WebSocket client for the serve self-test: drives smolvm's
//! interactive exec route (`GET .../exec/interactive`) over a unix socket
//! or TCP, and prints what the server sent.
//!
//! ```text
//! ws-client [--unix SOCKET] URL ACTION...
//!   --send TEXT     a binary frame (TEXT's bytes; \n, \r, \t, \xHH, \\ escapes)
//!   --text TEXT     a text frame (same escapes)
//!   --sleep MS      pause
//!   --expect TEXT   wait (up to 10 s) until the output received so far
//!                   contains TEXT (same escapes)
//!   --close         a Close frame
//! ```
//!
//! Binary frames received go to stdout as they are; every text frame goes
//! to stderr as a line `text: ...`, and the end as `closed` (server Close
//! or end of connection). Exits 0 once the server has closed, 1 on a
//! failed handshake (printing `handshake: STATUS BODY`), 2 if nothing
//! closed the connection within 20 s, and 3 if an `--expect` waited in
//! vain.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{self, Message};

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("\\xHH"));
            }
            Some(other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

enum Action {
    Send(Vec<u8>),
    Text(String),
    Sleep(u64),
    Expect(Vec<u8>),
    Close,
}

async fn session<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    url: &str,
    actions: Vec<Action>,
) -> i32 {
    let (ws, _) = match tokio_tungstenite::client_async(url, stream).await {
        Ok(pair) => pair,
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            eprintln!("handshake: {} {body}", response.status().as_u16());
            return 1;
        }
        Err(e) => {
            eprintln!("handshake: {e}");
            return 1;
        }
    };
    let (mut tx, mut rx) = ws.split();
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    let reader = tokio::spawn(async move {
        while let Some(message) = rx.next().await {
            match message {
                Ok(Message::Binary(data)) => {
                    seen.lock().unwrap().extend_from_slice(&data);
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&data);
                    let _ = out.flush();
                }
                Ok(Message::Text(text)) => eprintln!("text: {}", text.as_str()),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        eprintln!("closed");
    });
    for action in actions {
        let sent = match action {
            Action::Send(data) => tx.send(Message::Binary(data.into())).await,
            Action::Text(text) => tx.send(Message::Text(text.into())).await,
            Action::Close => tx.send(Message::Close(None)).await,
            Action::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Action::Expect(text) => {
                let until = Instant::now() + Duration::from_secs(10);
                while !received
                    .lock()
                    .unwrap()
                    .windows(text.len().max(1))
                    .any(|w| w == text.as_slice())
                {
                    if Instant::now() > until {
                        eprintln!("expected: {}", String::from_utf8_lossy(&text));
                        return 3;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
        };
        if sent.is_err() {
            break;
        }
    }
    match tokio::time::timeout(Duration::from_secs(20), reader).await {
        Ok(_) => 0,
        Err(_) => 2,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut unix = None;
    let mut url = None;
    let mut actions = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value");
        match arg.as_str() {
            "--unix" => unix = Some(value()),
            "--send" => actions.push(Action::Send(unescape(&value()))),
            "--text" => actions.push(Action::Text(
                String::from_utf8(unescape(&value())).expect("UTF-8"),
            )),
            "--sleep" => actions.push(Action::Sleep(value().parse().expect("milliseconds"))),
            "--expect" => actions.push(Action::Expect(unescape(&value()))),
            "--close" => actions.push(Action::Close),
            _ => url = Some(arg),
        }
    }
    let url = url.expect("usage: ws-client [--unix SOCKET] URL ACTION...");
    let code = match unix {
        Some(path) => match tokio::net::UnixStream::connect(&path).await {
            Ok(stream) => session(stream, &url, actions).await,
            Err(e) => {
                eprintln!("connect {path}: {e}");
                1
            }
        },
        None => {
            let authority = url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .expect("ws://HOST:PORT/...");
            match tokio::net::TcpStream::connect(authority).await {
                Ok(stream) => session(stream, &url, actions).await,
                Err(e) => {
                    eprintln!("connect {authority}: {e}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
