//! The spare file descriptor of an accept loop: when the process is out of descriptors
//! (EMFILE / ENFILE), a connection the kernel completed sits in the listen backlog,
//! unanswered, until a descriptor frees up. The loop instead gives its spare back,
//! accepts the waiting connection, refuses it (HTTP 503, then close) and takes the spare
//! again, so a client past the file limit learns at once that it was refused
//! (docs/reliability.md "Connection flood").

use std::fs::File;
use std::io;
use std::task::Poll;
use tokio::net::{TcpListener, TcpStream};

/// The answer to a connection refused for want of descriptors: a WebSocket client sees
/// a failed handshake with status 503, a plain HTTP client a 503.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\
server out of file descriptors; retry\r\n";

/// One descriptor held in reserve (`/dev/null` opened for reading).
#[derive(Debug)]
pub(crate) struct SpareFd(Option<File>);

impl SpareFd {
    /// Takes the spare descriptor (none when even that one is not to be had).
    pub(crate) fn new() -> SpareFd {
        SpareFd(File::open("/dev/null").ok())
    }

    /// Whether `e` from `accept` means the process or the system ran out of descriptors.
    pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
        // EMFILE (24) and ENFILE (23): the same numbers on Linux, the BSDs and macOS.
        matches!(e.raw_os_error(), Some(23 | 24))
    }

    /// After an exhaustion error: refuses the connections waiting on `listener`, one
    /// descriptor at a time; how many were refused. 0 when there is no spare to give
    /// back (the caller then pauses, as before).
    pub(crate) async fn refuse_waiting(&mut self, listener: &TcpListener) -> usize {
        let mut refused = 0;
        loop {
            if self.0.is_none() {
                self.0 = File::open("/dev/null").ok();
            }
            // Gives back the spare; without one, nothing can be accepted now.
            if self.0.take().is_none() {
                return warn(refused);
            }
            let waiting = std::future::poll_fn(|cx| match listener.poll_accept(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            match waiting {
                Some(Ok((stream, peer))) => {
                    refuse(stream);
                    refused += 1;
                    tracing::debug!(%peer, "out of file descriptors: connection refused with 503");
                }
                // Nothing waiting, or still out of descriptors (another task took the
                // one given back): stop here; the spare is taken again below.
                Some(Err(_)) | None => {
                    self.0 = File::open("/dev/null").ok();
                    return warn(refused);
                }
            }
            self.0 = File::open("/dev/null").ok();
        }
    }
}

/// One warning per burst of refusals (not one per connection: a flood would flood the
/// log too); `refused` passed through.
fn warn(refused: usize) -> usize {
    if refused > 0 {
        tracing::warn!(
            refused,
            "out of file descriptors: connections refused with 503"
        );
    }
    refused
}

/// Answers `stream` with [`REFUSAL`] (best effort: a fresh socket's send buffer is empty)
/// and closes it.
fn refuse(stream: TcpStream) {
    // Reads what already arrived of the request, so that closing does not reset the
    // connection over unread data before the client reads the answer.
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.try_read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let _ = stream.try_write(REFUSAL);
}
