import Glibc

/// The one way lbnode, lbbench and the testbed make a system call that can fail: a call interrupted by a signal
/// (`EINTR`) is made again, any other failure throws `SystemCallError` naming the C function and what was being done.
public enum SystemCall {
    /// Calls `body` until it returns something other than a failure with `EINTR`; a negative result throws.
    @discardableResult
    public static func retrying<Result: BinaryInteger>(
        _ function: String, _ operation: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemCallError) -> Result {
        while true {
            let result = body()
            if result >= 0 { return result }
            let failure = errno
            if failure != EINTR { throw SystemCallError(function, operation(), errno: failure) }
        }
    }

    /// Like `retrying`, but a failure with `EAGAIN` (a non-blocking call that would wait) returns nil.
    public static func unlessWouldBlock<Result: BinaryInteger>(
        _ function: String, _ operation: @autoclosure () -> String, _ body: () -> Result
    ) throws(SystemCallError) -> Result? {
        do {
            return try retrying(function, operation(), body)
        } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
            return nil
        }
    }
}
