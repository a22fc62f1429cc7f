//! Header names as the client wrote them, for payload format 1.0 (`event.headers` keeps the
//! client's case there, as API Gateway's REST APIs do: handlers read
//! `event.headers['Content-Type']`).
//!
//! hyper lower-cases header names and keeps the original case only in a type it does not
//! export (`preserve_header_case` fills a crate-private map), so the connection's bytes are
//! watched on their way in instead: [`CaseWatch`] wraps a connection and, for every line that
//! starts with a header-name token and a colon, remembers the spelling of names that are not
//! all lower case. hyper reads a request's head before it hands the request over, so the
//! handler finds that request's spellings in [`ClientCase`]. The cost is one scan for
//! newlines per read.
//!
//! What this does not do: tell a header line from a body line that looks like one. A body
//! line `X-Thing: 1` on the same connection can only change the case of a header `x-thing`
//! that request also has, with the client's own spelling; the value is never taken from it.
//! Names are kept per connection, at most [`MAX_NAMES`], the latest spelling winning
//! (HTTP/2 names are lower case by the protocol).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Spellings kept per connection.
pub const MAX_NAMES: usize = 256;
/// Longer tokens are not header names Gust keeps the case of.
const MAX_NAME_LEN: usize = 128;

/// The client's spelling of the header names it sent on this connection, by lower-case name.
#[derive(Debug, Clone, Default)]
pub struct ClientCase(Arc<Mutex<HashMap<String, String>>>);

impl ClientCase {
    /// `name` (lower case, as hyper gives it) as the client wrote it.
    pub fn spell(&self, name: &str) -> String {
        self.0
            .lock()
            .expect("header case lock")
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    fn saw(&self, original: &[u8]) {
        let Ok(original) = std::str::from_utf8(original) else {
            return;
        };
        let lower = original.to_ascii_lowercase();
        let mut names = self.0.lock().expect("header case lock");
        if lower == original {
            names.remove(&lower);
        } else if names.len() < MAX_NAMES || names.contains_key(&lower) {
            names.insert(lower, original.to_string());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line: a name may begin.
    LineStart,
    /// Inside a token that may be a header name.
    Name,
    /// The rest of a line.
    Skip,
}

/// A connection whose incoming header names are noted in a [`ClientCase`].
pub struct CaseWatch<S> {
    inner: S,
    scanner: Scanner,
}

/// Finds `name:` at the start of lines, across reads.
struct Scanner {
    case: ClientCase,
    state: State,
    name: Vec<u8>,
}

impl<S> CaseWatch<S> {
    pub fn new(inner: S) -> (Self, ClientCase) {
        let case = ClientCase::default();
        (
            Self {
                inner,
                scanner: Scanner {
                    case: case.clone(),
                    // The request line comes first: not a header.
                    state: State::Skip,
                    name: Vec::new(),
                },
            },
            case,
        )
    }
}

impl Scanner {
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Skip => match bytes.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        self.state = State::LineStart;
                        bytes = &bytes[i + 1..];
                    }
                    None => return,
                },
                State::LineStart | State::Name => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if is_tchar(b) && self.name.len() < MAX_NAME_LEN {
                        self.name.push(b);
                        self.state = State::Name;
                        continue;
                    }
                    if b == b':' && self.state == State::Name {
                        self.case.saw(&self.name);
                    }
                    self.name.clear();
                    self.state = if b == b'\n' { State::LineStart } else { State::Skip };
                }
            }
        }
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<S: AsyncRead + Unpin> AsyncRead for CaseWatch<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.scanner.scan(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CaseWatch<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(reads: &[&[u8]]) -> ClientCase {
        let (mut w, case) = CaseWatch::new(tokio::io::empty());
        for r in reads {
            w.scanner.scan(r);
        }
        case
    }

    #[test]
    fn header_names_keep_their_spelling_across_reads() {
        let case = watched(&[
            b"GET /X-Not: header HTTP/1.1\r\nHost: a\r\nContent-Ty",
            b"pe: text/plain\r\nx-lower: 1\r\nX-MiXed: 2\r\n\r\n",
        ]);
        assert_eq!(case.spell("content-type"), "Content-Type");
        assert_eq!(case.spell("host"), "Host");
        assert_eq!(case.spell("x-mixed"), "X-MiXed");
        assert_eq!(case.spell("x-lower"), "x-lower");
        assert_eq!(case.spell("unseen"), "unseen");
        // The request line is not a header line.
        assert_eq!(case.spell("/x-not"), "/x-not");
        // A later request's spelling wins.
        let case = watched(&[b"GET / HTTP/1.1\r\nAccept: a\r\n\r\nGET / HTTP/1.1\r\naccept: b\r\n\r\n"]);
        assert_eq!(case.spell("accept"), "accept");
    }
}
