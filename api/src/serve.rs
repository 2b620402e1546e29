//! Running the server: bind, serve until the shutdown future resolves, then drain.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use crate::state::AppState;

/// Serves the router on `listener` until `shutdown` resolves (Ctrl-C and SIGTERM in `main`,
/// a channel in tests), then drains the connections.
///
/// With `http_threads` above one, connections are served by that many threads of their own,
/// each a single-threaded runtime accepting from the same socket ([`Share`]): a connection
/// stays on the thread that accepted it, so a request never wakes another thread or moves
/// between threads, which on loopback took about a quarter of the server's CPU per request;
/// and the thread that accepts is one that was idle, often on the core where the client's
/// packets arrive. The caller's runtime keeps the background work (snapshot builds, version
/// checks) and waits for `shutdown`. With one, the caller's runtime serves the connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let threads = state.settings.http_threads;
    let router = crate::http::router(state);
    if threads <= 1 {
        return serve_on(listener, router, shutdown).await;
    }
    let listener = listener.into_std()?;
    let open: Arc<[AtomicUsize]> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    let changed = Arc::new(tokio::sync::Notify::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::with_capacity(threads);
    for thread in 0..threads {
        // The same socket, registered with each thread's runtime in turn.
        let socket = listener.try_clone()?;
        let (open, changed) = (open.clone(), changed.clone());
        let (gone, gone_changed) = (open.clone(), changed.clone());
        let router = router.clone();
        let mut stopped = stopped.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("holdgraph-http-{thread}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let share = Share {
                                listener: TcpListener::from_std(socket)?,
                                thread,
                                open,
                                changed,
                            };
                            serve_on(share, router, async move {
                                let _ = stopped.wait_for(|stop| *stop).await;
                            })
                            .await
                        })
                    });
                // A thread that stopped (or never started) takes no more connections: out of
                // the count, so the others do not wait for it.
                gone[thread].store(usize::MAX, Ordering::Relaxed);
                gone_changed.notify_waiters();
                let _ = done.send(served);
            })?;
        workers.push(finished);
    }
    drop(listener);
    shutdown.await;
    let _ = stop.send(true);
    let mut result = Ok(());
    for worker in workers {
        match worker.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(_) => result = Err(std::io::Error::other("an HTTP thread panicked")),
        }
    }
    result
}

/// One HTTP thread's share of the listening socket. Whichever thread is idle when a
/// connection arrives takes it, most often the one on the core that handled its packets,
/// which keeps a connection's work on one core. A thread holding more than twice the open
/// connections of the least busy thread (plus two) leaves new ones to the others, waiting
/// until a count changes: a burst of connections, which the first thread awake could take
/// all of, still spreads.
struct Share {
    listener: TcpListener,
    thread: usize,
    /// Open connections per thread.
    open: Arc<[AtomicUsize]>,
    /// Notified whenever a count changes.
    changed: Arc<tokio::sync::Notify>,
}

impl Share {
    fn ahead(&self) -> bool {
        ahead(&self.open, self.thread)
    }
}

/// Whether `thread` holds more than twice the least busy thread's connections plus two. A
/// stopped thread's count is `usize::MAX`, never the least while another runs.
fn ahead(open: &[AtomicUsize], thread: usize) -> bool {
    let mine = open[thread].load(Ordering::Relaxed);
    let least = open
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    mine > least.saturating_mul(2).saturating_add(2)
}

impl axum::serve::Listener for Share {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change in between is not missed.
            changed.as_mut().enable();
            if self.ahead() {
                changed.await;
                continue;
            }
            // Accept errors (out of file descriptors, say) are handled as axum handles them.
            let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
            let open = self.open[self.thread].fetch_add(1, Ordering::Relaxed) + 1;
            crate::metrics::http_connections(self.thread, open);
            self.changed.notify_waiters();
            let counted = Counted {
                stream,
                thread: self.thread,
                open: self.open.clone(),
                changed: self.changed.clone(),
            };
            return (counted, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that counts itself out of its thread's open connections when closed.
struct Counted {
    stream: tokio::net::TcpStream,
    thread: usize,
    open: Arc<[AtomicUsize]>,
    changed: Arc<tokio::sync::Notify>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let open = self.open[self.thread]
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        // (After its thread stopped, the count is out of use.)
        if open < usize::MAX / 2 {
            crate::metrics::http_connections(self.thread, open);
        }
        self.changed.notify_waiters();
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl NoDelay for Counted {
    fn set_nodelay(&self, on: bool) -> std::io::Result<()> {
        self.stream.set_nodelay(on)
    }
}

impl NoDelay for tokio::net::TcpStream {
    fn set_nodelay(&self, on: bool) -> std::io::Result<()> {
        tokio::net::TcpStream::set_nodelay(self, on)
    }
}

/// A TCP connection, wrapped or not, whose Nagle delay can be turned off.
trait NoDelay {
    fn set_nodelay(&self, on: bool) -> std::io::Result<()>;
}

/// Serves on one runtime: the caller's.
async fn serve_on<L>(
    listener: L,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: NoDelay,
{
    use axum::serve::ListenerExt as _;
    // A response goes out as soon as it is written, not after the client's delayed ACK.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(open: &[usize]) -> Vec<AtomicUsize> {
        open.iter().map(|&n| AtomicUsize::new(n)).collect()
    }

    #[test]
    fn a_thread_leaves_new_connections_to_the_others_past_twice_the_least_plus_two() {
        assert!(!ahead(&counts(&[2, 0]), 0));
        assert!(ahead(&counts(&[3, 0]), 0));
        assert!(
            !ahead(&counts(&[0, 3]), 0),
            "the least busy thread always takes more"
        );
        assert!(!ahead(&counts(&[12, 5]), 0));
        assert!(ahead(&counts(&[13, 5]), 0));
        // A stopped thread is out of the count: the one left takes every connection.
        assert!(!ahead(&counts(&[100, usize::MAX]), 0));
        // Counts at their limit do not overflow.
        assert!(!ahead(&counts(&[usize::MAX, usize::MAX]), 0));
    }
}
