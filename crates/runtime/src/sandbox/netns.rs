//! `network = "none"`: an instance in a network namespace of its own, with only loopback up,
//! that still reaches its Runtime API and the platform API (`GUST_API`).
//!
//! The official runtime clients take only `AWS_LAMBDA_RUNTIME_API=host:port`, and functions
//! call `GUST_API` with any HTTP client, so both must be TCP listeners *inside* the
//! namespace. A listening socket keeps its namespace wherever its fd is held, so:
//! 1. a short-lived thread of Gust's (a fresh one, never a pool thread: `unshare` moves the
//!    calling thread for good) `unshare(CLONE_NEWNET)`s, brings `lo` up (one rtnetlink
//!    message), binds the Runtime API and the platform API listeners on 127.0.0.1, opens
//!    `/proc/thread-self/ns/net` (not `/proc/self/...`, which is the main thread's) and a
//!    `NETLINK_SOCK_DIAG` socket there, and ends;
//! 2. the launcher joins the namespace (`gust-sandbox --netns 0`, the fd as its stdin)
//!    before it creates the others, so the function and everything it starts are inside;
//! 3. Gust accepts on both listeners from its own namespace: the Runtime API as for any
//!    instance (`api.rs`), and the platform API as a byte-for-byte relay to the admin address
//!    ([`relay_platform_api`]; the admin checks the function's `GUST_TOKEN` as always).
//!
//! The peer check of the Runtime API (`peer.rs`) looks connections up with the socket made
//! inside the namespace: socket diagnostics only see their own namespace's sockets.
//!
//! Needs `CAP_SYS_ADMIN` (Gust as root): a non-root Gust's instances get a user namespace
//! from the launcher, which a thread of a multi-threaded Gust cannot create for itself.
//! Where a namespace cannot be made, such a function is refused at deploy
//! ([`Sandbox::network_none`](super::Sandbox::network_none)), never started on the host's
//! network.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

/// A network namespace made for one instance: what Gust keeps of it once the launcher has
/// joined it.
#[derive(Debug)]
pub(crate) struct NetNs {
    /// A `NETLINK_SOCK_DIAG` socket inside, for the Runtime API's peer checks (one request at
    /// a time).
    diag: Mutex<OwnedFd>,
}

/// What [`NetNs::create`] makes.
#[derive(Debug)]
pub(crate) struct Created {
    pub netns: NetNs,
    /// The namespace itself, for the launcher to join (`--netns`).
    pub ns: OwnedFd,
    /// 127.0.0.1:port inside, non-blocking: the instance's Runtime API.
    pub runtime_api: TcpListener,
    /// 127.0.0.1:port inside, non-blocking: the relay to the platform API.
    pub platform_api: TcpListener,
}

impl NetNs {
    /// Makes a namespace with loopback up and both listeners bound in it, on a thread of its
    /// own (2-5 ms measured here, `netns_us` in the debug log; the kernel tears a namespace down in the background
    /// once its last fd and socket are closed).
    pub(crate) async fn create() -> io::Result<Created> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("gust-netns".into()).spawn(move || {
            let _ = tx.send(create_here());
        })?;
        rx.await
            .map_err(|_| io::Error::other("the network namespace thread ended without an answer"))?
    }

    /// [`create`](Self::create), waiting on the calling thread (the probe at start).
    pub(crate) fn create_blocking() -> io::Result<Created> {
        std::thread::Builder::new()
            .name("gust-netns".into())
            .spawn(create_here)?
            .join()
            .map_err(|_| io::Error::other("the network namespace thread panicked"))?
    }

    /// Runs `f` with the diagnostics socket inside the namespace.
    pub(crate) fn with_diag<T>(&self, f: impl FnOnce(&OwnedFd) -> T) -> T {
        f(&self.diag.lock().expect("diag lock"))
    }
}

/// On a thread that ends right after: moves it into a new network namespace and makes what
/// the instance needs there.
fn create_here() -> io::Result<Created> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("unshare(CLONE_NEWNET): {e}")))?;
    loopback_up().map_err(|e| io::Error::new(e.kind(), format!("bringing lo up: {e}")))?;
    let ns = OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net")?);
    let diag = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let listen = || -> io::Result<TcpListener> {
        let l = TcpListener::bind(("127.0.0.1", 0))?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    Ok(Created {
        netns: NetNs { diag: Mutex::new(diag) },
        ns,
        runtime_api: listen()?,
        platform_api: listen()?,
    })
}

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
/// A new namespace's loopback interface always has index 1.
const LOOPBACK_INDEX: i32 = 1;
const IFF_UP: u32 = 1;

/// Sets `lo` up in the calling thread's network namespace (RTM_NEWLINK), which also gives it
/// 127.0.0.1.
fn loopback_up() -> io::Result<()> {
    use nix::sys::socket::{
        recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    let mut req = Vec::with_capacity(32);
    req.extend_from_slice(&32u32.to_ne_bytes()); // nlmsghdr: length
    req.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    req.extend_from_slice(&[0, 0]); // ifinfomsg: AF_UNSPEC, padding
    req.extend_from_slice(&0u16.to_ne_bytes()); // type
    req.extend_from_slice(&LOOPBACK_INDEX.to_ne_bytes());
    req.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    req.extend_from_slice(&IFF_UP.to_ne_bytes()); // change
    debug_assert_eq!(req.len(), 32);
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    sendto(fd.as_raw_fd(), &req, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
    let mut buf = [0u8; 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    let msg = &buf[..n];
    if msg.len() < 20 || u16::from_ne_bytes([msg[4], msg[5]]) != NLMSG_ERROR {
        return Err(io::Error::other("rtnetlink sent no acknowledgement"));
    }
    match i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Relays every connection to the in-namespace platform API listener to `target` (the admin
/// address, `host:port`) until aborted. A byte relay rather than an HTTP proxy: the admin
/// sees the function's own requests (streaming, the services proxy, its token) unchanged.
pub(crate) fn relay_platform_api(listener: TcpListener, target: String) -> io::Result<Relay> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(Relay(tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inside, _)) = listener.accept().await else {
                continue;
            };
            let target = target.clone();
            conns.spawn(async move {
                match tokio::net::TcpStream::connect(&target).await {
                    Ok(mut outside) => {
                        let _ = inside.set_nodelay(true);
                        let _ = outside.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    }
                    Err(e) => tracing::warn!(%target, error = %e, "cannot reach the platform API for a network = \"none\" instance"),
                }
            });
            while conns.try_join_next().is_some() {}
        }
    })))
}

/// The platform API relay of one instance, stopped (its connections with it) when dropped.
#[derive(Debug)]
pub(crate) struct Relay(tokio::task::JoinHandle<()>);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `host:port` of a `GUST_API` URL (`http://127.0.0.1:8081`), for the relay.
pub(crate) fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let end = rest.find('/').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_target_is_the_urls_authority() {
        assert_eq!(authority("http://127.0.0.1:8081"), Some("127.0.0.1:8081"));
        assert_eq!(authority("http://[::1]:9/x"), Some("[::1]:9"));
        assert_eq!(authority("https://a:1"), None);
        assert_eq!(authority("http://"), None);
    }
}
