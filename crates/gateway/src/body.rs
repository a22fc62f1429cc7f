//! The body of every answer Gust's HTTP faces give: whole (all of them but one) or a stream of
//! chunks (the log stream's server-sent events, `admin/log_stream.rs`).
//!
//! An enum rather than a boxed body: a whole answer keeps `Full`'s exact size hint (so hyper
//! sends `Content-Length`) and costs no allocation on the gateway's hot path.

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::Full;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

pub enum Body {
    Full(Full<Bytes>),
    /// Chunks as a task sends them; the body ends when the sender is dropped.
    Chunks(tokio::sync::mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn empty() -> Self {
        Self::Full(Full::new(Bytes::new()))
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Full<Bytes>> for Body {
    fn from(f: Full<Bytes>) -> Self {
        Self::Full(f)
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::Full(Full::new(b))
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Self::Full(Full::new(Bytes::from(b)))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::Full(Full::new(Bytes::from(s)))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(b) => b.fmt(f),
            Self::Chunks(_) => f.write_str("Body::Chunks"),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(b) => Pin::new(b).poll_frame(cx),
            Self::Chunks(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(b) => b.is_end_stream(),
            Self::Chunks(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(b) => b.size_hint(),
            Self::Chunks(_) => SizeHint::default(),
        }
    }
}
