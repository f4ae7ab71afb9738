//! `AF_VSOCK` stream sockets: the guest connects to its host, the host listens.
//!
//! rustix has no vsock address type; [`VsockAddr`] is `struct sockaddr_vm`
//! (`linux/vm_sockets.h`) for its `bind` and `connect`.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::{self, AddressFamily, SocketType};

/// `VMADDR_CID_ANY`: bind to whatever context id this kernel has.
pub const CID_ANY: u32 = u32::MAX;

/// `VMADDR_PORT_ANY`: not a port one can name.
pub const PORT_ANY: u32 = u32::MAX;

/// `struct sockaddr_vm` (`linux/vm_sockets.h`).
#[repr(C)]
struct SockaddrVm {
    family: u16,
    reserved1: u16,
    port: u32,
    cid: u32,
    flags: u8,
    zero: [u8; 3],
}

/// A vsock address: context id and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsockAddr {
    /// Context id (2 is the host, [`CID_ANY`] binds to any).
    pub cid: u32,
    /// Port.
    pub port: u32,
}

// SAFETY: `with_sockaddr` passes a pointer to a fully initialised, properly
// laid out `sockaddr_vm` on the stack and its exact size; the pointer is only
// used for the duration of the closure.
unsafe impl net::addr::SocketAddrArg for VsockAddr {
    unsafe fn with_sockaddr<R>(
        &self,
        f: impl FnOnce(*const net::addr::SocketAddrOpaque, net::addr::SocketAddrLen) -> R,
    ) -> R {
        let sa = SockaddrVm {
            family: AddressFamily::VSOCK.as_raw(),
            reserved1: 0,
            port: self.port,
            cid: self.cid,
            flags: 0,
            zero: [0; 3],
        };
        f(
            (&sa as *const SockaddrVm).cast(),
            std::mem::size_of::<SockaddrVm>() as net::addr::SocketAddrLen,
        )
    }
}

/// Connects an `AF_VSOCK` socket of `ty` to `cid:port`.
pub fn connect(cid: u32, port: u32, ty: SocketType) -> io::Result<OwnedFd> {
    let fd = net::socket_with(AddressFamily::VSOCK, ty, net::SocketFlags::CLOEXEC, None)?;
    net::connect(&fd, &VsockAddr { cid, port })?;
    Ok(fd)
}

/// A stream socket listening on `port` of this kernel's context id (any).
pub fn listen(port: u32) -> io::Result<OwnedFd> {
    let fd = net::socket_with(
        AddressFamily::VSOCK,
        SocketType::STREAM,
        net::SocketFlags::CLOEXEC,
        None,
    )?;
    net::bind(&fd, &VsockAddr { cid: CID_ANY, port })?;
    net::listen(&fd, 16)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_vm_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<SockaddrVm>(), 16);
    }
}
