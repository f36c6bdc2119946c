//! Connections: the accept loop's limits (a connection cap, back-off when out of descriptors),
//! hyper's timers (header read, which also closes idle keep-alives), the request body's read
//! deadline, and the error envelope on the answers that hyper writes by itself (400, 414, 431
//! for requests it cannot parse), so that every error a client sees is the envelope of spec 2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use posemu_protocol::error::ErrorEnvelope;
use posemu_protocol::headers::{RETRY_AFTER, X_TRACE_ID};

/// Default of `SandboxConfig::header_read_timeout`: the time a client has to send a request
/// head, counted from when the server waits for one (a new connection, or a kept-alive one
/// after an answer: so it is also the idle keep-alive timeout).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `SandboxConfig::body_read_timeout`: the time to receive a whole request body,
/// counted from its head.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `SandboxConfig::max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Largest request head (request line and headers) hyper reads; past it, 431.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;
/// Most header lines in a request; past it, 431.
pub const MAX_HEADERS: usize = 100;
/// Connections past the cap that are answered 503 at once; beyond these they are closed.
const MAX_REFUSING: usize = 64;

/// Marks a request whose body did not arrive in time (set by [`TimedBody`]).
#[derive(Clone, Default)]
pub struct BodyTimedOut(Arc<AtomicBool>);

impl BodyTimedOut {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body not received in time")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails once its deadline passes while waiting for data.
pub struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    flag: BodyTimedOut,
}

impl TimedBody {
    pub fn new(inner: Incoming, limit: Duration) -> (TimedBody, BodyTimedOut) {
        let flag = BodyTimedOut::default();
        (
            TimedBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(limit)),
                flag: flag.clone(),
            },
            flag,
        )
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                self.flag.0.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is still read of a request body that its handler left unread, before the answer goes
/// out: a server that answers and closes with the request unread makes the kernel reset the
/// connection, and a client still sending may then never read the answer (a 413, a 401 before
/// the body). Bounded in bytes here and in time by the body's read deadline.
pub const DRAIN_BYTES: usize = 2 * 1024 * 1024;

/// A request body that, when its handler drops it unfinished, leaves itself in a shared slot,
/// so that the connection can [`drain`](Leftover::drain) it before the answer is written.
pub struct Unread {
    body: Option<TimedBody>,
    slot: Leftover,
}

/// The slot an [`Unread`] body leaves itself in.
#[derive(Clone, Default)]
pub struct Leftover(Arc<parking_lot::Mutex<Option<TimedBody>>>);

impl Unread {
    /// A body that is empty from the start comes back as it is (most requests: no slot to
    /// allocate).
    pub fn wrap(body: TimedBody) -> Result<(Unread, Leftover), TimedBody> {
        if body.is_end_stream() {
            return Err(body);
        }
        let slot = Leftover::default();
        let body = Some(body);
        Ok((
            Unread {
                body,
                slot: slot.clone(),
            },
            slot,
        ))
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|b| !b.is_end_stream()) {
            *self.slot.0.lock() = Some(body);
        }
    }
}

impl Body for Unread {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.body.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Leftover {
    /// Reads and drops what the handler left of the body: up to [`DRAIN_BYTES`], until the body
    /// ends, fails or its deadline passes.
    pub async fn drain(self) {
        let Some(mut body) = self.0.lock().take() else {
            return;
        };
        let mut seen = 0usize;
        while seen <= DRAIN_BYTES {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    seen = seen.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                }
                _ => return,
            }
        }
    }
}

/// A whole HTTP/1.1 answer with the error envelope, a fresh trace id and `Connection: close`.
pub fn envelope_answer(
    status: u16,
    reason: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Vec<u8> {
    let trace = super::trace::new_trace_id();
    let body = serde_json::to_vec(&ErrorEnvelope::new(status, message, trace.as_str()))
        .unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {X_TRACE_ID}: {trace}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(secs) = retry_after {
        head.push_str(&format!("{RETRY_AFTER}: {secs}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The envelope answer that replaces hyper's own (empty) answer of `status`.
fn replacement(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        414 => ("URI Too Long", "Request URI too long"),
        431 => (
            "Request Header Fields Too Large",
            "Request headers too large",
        ),
        _ => ("Bad Request", "Malformed request"),
    };
    envelope_answer(status, reason, message, None)
}

/// The status of an answer that hyper wrote by itself: a response head with an error status
/// and no `X-Trace-Id` (every answer of the router has one).
fn hyper_own_error(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.")?;
    let status: u16 = std::str::from_utf8(rest.get(2..5)?).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = buf[..head_end].to_ascii_lowercase();
    let marker = format!("\r\n{X_TRACE_ID}:").to_ascii_lowercase();
    (!head.windows(marker.len()).any(|w| w == marker.as_bytes())).then_some(status)
}

/// The connection's stream as hyper sees it: what hyper writes passes through, except its own
/// error answers, which are replaced by the envelope.
pub struct Stream {
    inner: TcpStream,
    /// A replacement being written: bytes, how many are out, and the length to report.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl Stream {
    pub fn new(inner: TcpStream) -> Stream {
        Stream {
            inner,
            pending: None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            match hyper_own_error(buf) {
                Some(status) => self.pending = Some((replacement(status), 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        let this = &mut *self;
        let Some((bytes, sent, report)) = this.pending.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while *sent < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        // hyper closes the connection after its own answers: nothing follows.
        Poll::Ready(Ok((*report).min(buf.len())))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connections past the cap: answered 503 (envelope, `Retry-After`) by a short task, at most
/// [`MAX_REFUSING`] at once; past those, closed at once.
pub struct Refuser {
    slots: Arc<tokio::sync::Semaphore>,
}

impl Default for Refuser {
    fn default() -> Self {
        Refuser {
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING)),
        }
    }
}

impl Refuser {
    pub fn refuse(&self, mut stream: TcpStream, cap: usize) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return;
        };
        let answer = envelope_answer(
            503,
            "Service Unavailable",
            &format!("Too many connections (at most {cap})"),
            Some(1),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(&answer).await?;
                stream.shutdown().await?;
                // Read what the client sent, so that closing does not reset the connection
                // before it has read the answer.
                let mut sink = [0u8; 4096];
                let mut total = 0usize;
                while total < 64 * 1024 {
                    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                io::Result::Ok(())
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_are_told_from_ours() {
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_own_error(hyper_431), Some(431));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-trace-id: 0123\r\n\r\n{}";
        assert_eq!(hyper_own_error(ours), None);
        assert_eq!(hyper_own_error(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(hyper_own_error(b"{\"error\":1}"), None);
        let a = String::from_utf8(replacement(414)).unwrap();
        assert!(a.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{a}");
        assert!(
            a.contains("\"code\":\"4014\"") && a.contains("X-Trace-Id: "),
            "{a}"
        );
    }
}
