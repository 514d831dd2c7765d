import CNetlink
import Glibc

/// A kernel or libnl call that failed, with what an operator should do about it.
public struct NetlinkError: Error, CustomStringConvertible, Equatable {
    /// What was being done, e.g. "add address 198.18.0.100/32 to lb0".
    public let operation: String
    /// libnl's error code (`NLE_*`), or `errno` for plain system calls.
    public let code: Int32
    /// libnl's or the C library's message.
    public let message: String
    /// Whether `code` is an errno (system call) rather than a libnl code.
    public let isErrno: Bool

    /// A failed libnl call; the corresponding C function is `nl_geterror`.
    init(operation: String, libnlCode: Int32) {
        self.operation = operation
        self.code = abs(libnlCode)
        self.message = String(cString: nl_geterror(libnlCode))
        self.isErrno = false
    }

    /// A failed system call; the corresponding C function is `strerror`.
    init(operation: String, errno: Int32) {
        self.operation = operation
        self.code = errno
        self.message = String(cString: strerror(errno))
        self.isErrno = true
    }

    /// Whether the kernel said the caller lacks the privilege (CAP_NET_ADMIN, or root for /proc/sys).
    public var isPermissionDenied: Bool {
        isErrno ? (code == EPERM || code == EACCES) : code == NLE_PERM
    }

    /// Whether the object already exists.
    public var isAlreadyExists: Bool { isErrno ? code == EEXIST : code == NLE_EXIST }

    /// Whether the object (link, address, route) does not exist.
    public var isNotFound: Bool {
        isErrno ? (code == ENOENT || code == ENODEV) : (code == NLE_OBJ_NOTFOUND || code == NLE_NODEV)
    }

    public var description: String {
        let hint = isPermissionDenied ? " (needs CAP_NET_ADMIN: run as root)" : ""
        return "\(operation): \(message)\(hint)"
    }
}
