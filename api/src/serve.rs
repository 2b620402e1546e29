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
/// stays on the thread that took it, so a request never wakes another thread or moves
/// between threads, which on loopback took about a quarter of the server's CPU per request.
/// With as many threads as the process has cores and `pin_http_threads`, each thread stays on
/// one core and takes the connections whose packets that core handles: the thread that
/// accepts one hands it over (once, before its first request is read), so the kernel's work
/// on a connection's packets and the server's on its requests share one core's caches and
/// never wake the other core. The caller's runtime keeps the background work (snapshot
/// builds, version checks) and waits for `shutdown`. With one thread, the caller's runtime
/// serves the connections.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (threads, pin) = (state.settings.http_threads, state.settings.pin_http_threads);
    let router = crate::http::router(state);
    if threads <= 1 {
        return serve_on(listener, router, shutdown).await;
    }
    let listener = listener.into_std()?;
    let open: Arc<[AtomicUsize]> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
    let changed = Arc::new(tokio::sync::Notify::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pins = placement(&cores::allowed(), threads, pin);
    let home: Arc<[Option<usize>]> = homes(&pins).into();
    let (inboxes, mut receivers): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| tokio::sync::mpsc::unbounded_channel())
        .unzip();
    let inboxes: Arc<[Inbox]> = inboxes.into();
    let mut workers = Vec::with_capacity(threads);
    for (thread, pin) in pins.into_iter().enumerate() {
        // The same socket, registered with each thread's runtime in turn.
        let socket = listener.try_clone()?;
        let (open, changed) = (open.clone(), changed.clone());
        let (gone, gone_changed) = (open.clone(), changed.clone());
        let (home, inboxes, inbox) = (home.clone(), inboxes.clone(), receivers.remove(0));
        let router = router.clone();
        let mut stopped = stopped.clone();
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("holdgraph-http-{thread}"))
            .spawn(move || {
                if let Some(cpu) = pin
                    && let Err(e) = cores::pin(cpu)
                {
                    tracing::warn!(thread, cpu, error = %e, "cannot pin an HTTP thread to its core");
                }
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
                                home,
                                inboxes,
                                inbox,
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
/// connection arrives accepts it and keeps it, or hands it to the thread pinned to the core
/// that handled its packets. A thread holding more than twice the open connections of the
/// least busy thread (plus two) is handed none and leaves new ones to the others, waiting
/// until a count changes: a burst of connections, which the first thread awake (or the one
/// on the client's core) could take all of, still spreads.
struct Share {
    listener: TcpListener,
    thread: usize,
    /// Open connections per thread.
    open: Arc<[AtomicUsize]>,
    /// Notified whenever a count changes.
    changed: Arc<tokio::sync::Notify>,
    /// The thread pinned to each CPU (by CPU number), if any.
    home: Arc<[Option<usize>]>,
    /// Where to hand each thread a connection another thread accepted.
    inboxes: Arc<[Inbox]>,
    /// This thread's connections handed over by the others.
    inbox: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
}

/// Connections handed to a thread, already counted as its own.
type Inbox = tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>;

/// The core each thread is pinned to: the process's cores in order, one per thread, when
/// there are exactly as many of them as threads and pinning is on. Otherwise none: with a
/// CPU quota but every core of a large host allowed, say, the first cores may be other
/// processes' busiest.
fn placement(cpus: &[usize], threads: usize, pin: bool) -> Vec<Option<usize>> {
    if pin && cpus.len() == threads {
        cpus.iter().map(|&cpu| Some(cpu)).collect()
    } else {
        vec![None; threads]
    }
}

/// The thread pinned to each core, by core number.
fn homes(pins: &[Option<usize>]) -> Vec<Option<usize>> {
    let mut home = vec![None; pins.iter().flatten().max().map_or(0, |&cpu| cpu + 1)];
    for (thread, cpu) in pins.iter().enumerate() {
        if let Some(cpu) = cpu {
            home[*cpu] = Some(thread);
        }
    }
    home
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

impl Share {
    fn ahead(&self) -> bool {
        ahead(&self.open, self.thread)
    }

    /// The thread pinned to the core that handled this connection's packets, if another.
    fn home_of(&self, stream: &tokio::net::TcpStream) -> Option<usize> {
        if self.home.is_empty() {
            return None;
        }
        let cpu = cores::incoming(stream)?;
        let thread = (*self.home.get(cpu)?)?;
        (thread != self.thread).then_some(thread)
    }

    /// Counts a connection in as this thread's and returns it.
    fn keep(&self, stream: tokio::net::TcpStream, counted: bool) -> Counted {
        let mine = &self.open[self.thread];
        let open = if counted {
            mine.load(Ordering::Relaxed)
        } else {
            mine.fetch_add(1, Ordering::Relaxed) + 1
        };
        crate::metrics::http_connections(self.thread, open);
        self.changed.notify_waiters();
        Counted {
            stream,
            thread: self.thread,
            open: self.open.clone(),
            changed: self.changed.clone(),
        }
    }

    /// Hands a connection to `thread`, counted as that thread's; gives it back if that
    /// thread has stopped.
    fn hand(
        &self,
        thread: usize,
        stream: tokio::net::TcpStream,
        addr: SocketAddr,
    ) -> Result<(), tokio::net::TcpStream> {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                // (Only if the runtime cannot let go of it, which closes it.)
                tracing::warn!(error = %e, "cannot hand a connection to another thread");
                return Ok(());
            }
        };
        self.open[thread].fetch_add(1, Ordering::Relaxed);
        match self.inboxes[thread].send((stream, addr)) {
            Ok(()) => Ok(()),
            Err(tokio::sync::mpsc::error::SendError((stream, _))) => {
                self.open[thread].fetch_sub(1, Ordering::Relaxed);
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => Err(stream),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take back a connection");
                        Ok(())
                    }
                }
            }
        }
    }
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
            let full = self.ahead();
            tokio::select! {
                biased;
                Some((stream, addr)) = self.inbox.recv() => {
                    match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => return (self.keep(stream, true), addr),
                        Err(e) => {
                            self.open[self.thread].fetch_sub(1, Ordering::Relaxed);
                            self.changed.notify_waiters();
                            tracing::debug!(error = %e, "cannot take a connection handed over");
                        }
                    }
                }
                () = &mut changed, if full => {}
                // Accept errors (out of file descriptors, say) are handled as axum handles them.
                (stream, addr) = axum::serve::Listener::accept(&mut self.listener), if !full => {
                    let stream = match self.home_of(&stream) {
                        Some(home) if !ahead(&self.open, home) => match self.hand(home, stream, addr) {
                            Ok(()) => continue,
                            Err(stream) => stream,
                        },
                        _ => stream,
                    };
                    return (self.keep(stream, false), addr);
                }
            }
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

/// The cores this process may run on, pinning a thread to one, and the core a connection's
/// packets arrive on (`SO_INCOMING_CPU`).
#[cfg(target_os = "linux")]
pub mod cores {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;

    /// The CPUs this process may run on, by number.
    pub fn allowed() -> Vec<usize> {
        match sched_getaffinity(Pid::from_raw(0)) {
            Ok(set) => (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Keeps the calling thread on `cpu`.
    pub fn pin(cpu: usize) -> nix::Result<()> {
        let mut set = CpuSet::new();
        set.set(cpu)?;
        sched_setaffinity(Pid::from_raw(0), &set)
    }

    /// The CPU that handled the connection's latest packets.
    pub fn incoming(stream: &tokio::net::TcpStream) -> Option<usize> {
        socket2::SockRef::from(stream).cpu_affinity().ok()
    }
}

/// Elsewhere threads are not pinned, and connections stay where they were accepted.
#[cfg(not(target_os = "linux"))]
pub mod cores {
    pub fn allowed() -> Vec<usize> {
        Vec::new()
    }

    pub fn pin(_cpu: usize) -> std::io::Result<()> {
        Ok(())
    }

    pub fn incoming(_stream: &tokio::net::TcpStream) -> Option<usize> {
        None
    }
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
    fn threads_are_pinned_one_per_core_only_when_the_cores_match_the_threads() {
        assert_eq!(placement(&[0, 1], 2, true), vec![Some(0), Some(1)]);
        assert_eq!(
            placement(&[2, 5, 7], 3, true),
            vec![Some(2), Some(5), Some(7)]
        );
        assert_eq!(placement(&[0, 1], 2, false), vec![None, None]);
        assert_eq!(placement(&[0, 1, 2, 3], 2, true), vec![None, None]);
        assert_eq!(placement(&[0], 2, true), vec![None, None]);
        assert_eq!(homes(&[Some(2), Some(5), Some(7)]), {
            let mut home = vec![None; 8];
            (home[2], home[5], home[7]) = (Some(0), Some(1), Some(2));
            home
        });
        assert!(homes(&[None, None]).is_empty());
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
