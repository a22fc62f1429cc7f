//! Only an instance's own processes may use its Runtime API.
//!
//! The official runtime clients (`lambda_runtime`, `awslambdaric`, `aws-lambda-ric`) take only
//! `AWS_LAMBDA_RUNTIME_API=host:port`, so the TCP endpoint stays; what changes is who may
//! connect. Each accepted connection is traced to the process that holds its other end:
//! - **Unix socket** (Gust's own bootstraps): the kernel's `SO_PEERCRED` gives the peer's pid.
//! - **TCP on loopback**: the kernel's socket diagnostics (`NETLINK_SOCK_DIAG`, an exact
//!   lookup by the connection's addresses and ports) give the peer socket's inode, which one
//!   of the instance's processes must hold as an open file.
//!
//! "The instance's processes" are those in its pid namespace (the sandbox gives every
//! instance one): `/proc/PID/ns/pid` equals the launcher's `pid_for_children`. A connection
//! from anyone else (another instance, another Gust's function, any local user) is closed
//! before a byte is read. The check costs a few `/proc` reads per connection, not per
//! request; runtime clients keep their connection.

use super::netns::NetNs;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

/// The pid namespace of the instance whose launcher is `launcher`, as `/proc` names it.
pub(crate) fn namespace_of(launcher: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{launcher}/ns/pid_for_children")).ok()
}

fn in_namespace(pid: i32, ns: &std::path::Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|n| n == ns)
}

/// Whether the peer of a Unix-socket connection is a process of the instance.
pub(crate) fn unix_peer_allowed(stream: &tokio::net::UnixStream, ns: &std::path::Path) -> bool {
    match stream.peer_cred().ok().and_then(|c| c.pid()) {
        Some(pid) => in_namespace(pid, ns),
        None => false,
    }
}

/// Whether the peer of a loopback TCP connection is a process of the instance whose launcher
/// is `launcher`. `netns`: the instance's own network namespace, where the listener is
/// (`network = "none"`); the connection is looked up there.
pub(crate) fn tcp_peer_allowed(local: SocketAddr, peer: SocketAddr, launcher: i32, netns: Option<&NetNs>) -> bool {
    let Some(ns) = namespace_of(launcher) else { return false };
    let inode = match netns {
        Some(n) => n.with_diag(|diag| peer_socket_inode(local, peer, Some(diag))),
        None => peer_socket_inode(local, peer, None),
    };
    let Some(inode) = inode else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    descendants(launcher).into_iter().any(|pid| {
        in_namespace(pid, &ns)
            && std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
            })
    })
}

/// `pid`'s descendants (children of any of its threads, recursively), `pid` excluded.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                for c in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                    if out.len() < 4096 {
                        out.push(c);
                        todo.push(c);
                    }
                }
            }
        }
    }
    out
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const IPPROTO_TCP: u8 = 6;

/// The inode of the socket at the other end of a loopback TCP connection (local `peer`,
/// remote `local`), from the kernel's socket diagnostics: asked on `diag` when given (a
/// socket made in another network namespace), else on a new socket in Gust's own.
fn peer_socket_inode(local: SocketAddr, peer: SocketAddr, diag: Option<&OwnedFd>) -> Option<u32> {
    use nix::sys::socket::{
        recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    };
    let family: u8 = match peer.ip() {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 10,
    };
    let addr = |ip: IpAddr| -> [u8; 16] {
        let mut a = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
        }
        a
    };
    let mut req = Vec::with_capacity(72);
    req.extend_from_slice(&72u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // pid
    req.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
                                                    // The socket we look for: its source is the peer, its destination our listener.
    req.extend_from_slice(&peer.port().to_be_bytes());
    req.extend_from_slice(&local.port().to_be_bytes());
    req.extend_from_slice(&addr(peer.ip()));
    req.extend_from_slice(&addr(local.ip()));
    req.extend_from_slice(&0u32.to_ne_bytes()); // interface
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // no cookie
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    debug_assert_eq!(req.len(), 72);
    let own;
    let fd = match diag {
        Some(d) => d,
        None => {
            own = socket(
                AddressFamily::Netlink,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkSockDiag,
            )
            .ok()?;
            &own
        }
    };
    sendto(fd.as_raw_fd(), &req, &NetlinkAddr::new(0, 0), MsgFlags::empty()).ok()?;
    let mut buf = [0u8; 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
    let msg = &buf[..n];
    if msg.len() < 16 + 72 || u16::from_ne_bytes([msg[4], msg[5]]) == NLMSG_ERROR {
        return None;
    }
    // inet_diag_msg: 4 bytes of header, a 48-byte socket id, expires, rqueue, wqueue, uid, inode.
    let at = 16 + 4 + 48 + 16;
    Some(u32::from_ne_bytes(msg[at..at + 4].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_of_a_loopback_connection_is_found_by_its_inode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(local).unwrap();
        let (_served, peer) = listener.accept().unwrap();
        let inode = peer_socket_inode(local, peer, None).expect("sock_diag answers for a live connection");
        let link = std::fs::read_link(format!("/proc/self/fd/{}", client.as_raw_fd())).unwrap();
        assert_eq!(link.to_string_lossy(), format!("socket:[{inode}]"));
        // A port nobody uses has no socket.
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(peer_socket_inode(local, gone, None), None);
    }

    #[test]
    fn descendants_are_found_through_every_generation() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while descendants(pid).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the grandchild never appeared");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!descendants(std::process::id() as i32).is_empty());
        let grandchild = descendants(pid)[0];
        assert!(descendants(std::process::id() as i32).contains(&grandchild));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(grandchild),
            nix::sys::signal::Signal::SIGKILL,
        );
        child.kill().unwrap();
        let _ = child.wait();
    }
}
