/// Hands a non-Sendable value to another thread whose use the caller orders (the other thread owns it until it is
/// joined or signals).
public final class UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
