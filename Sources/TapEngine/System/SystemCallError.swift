import Glibc

/// A failed system call: the C function, what was being done, and `errno`.
public struct SystemCallError: Error, CustomStringConvertible, Equatable {
    /// The C function, e.g. "bind".
    public let function: String
    /// What was being done, e.g. "bind a UDP socket to 198.18.0.11:9000".
    public let operation: String
    public let errno: Int32

    public init(_ function: String, _ operation: String, errno: Int32 = Glibc.errno) {
        self.function = function
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        let capabilities = function.hasPrefix("bpf") ? "CAP_BPF" : "CAP_NET_ADMIN/CAP_NET_RAW"
        let hint = errno == EPERM || errno == EACCES ? " (needs \(capabilities): run as root)" : ""
        return "\(operation): \(function): \(String(cString: strerror(errno)))\(hint)"
    }
}
