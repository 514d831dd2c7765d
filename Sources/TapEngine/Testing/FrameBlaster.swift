import CKernel
import Glibc

/// A traffic generator: sends prebuilt frames on an interface with `sendmmsg` in batches of 64, optionally paced to
/// a rate. Used by `lbbench`; it belongs to the namespace of the thread that creates it.
public final class FrameBlaster {
    private let sender: FrameSender
    /// Every frame back to back, with its length and where it starts.
    private let data: [UInt8]
    private let lengths: [UInt32]
    private let offsets: [Int]
    static let batch = 64

    /// - Parameter frames: the frames to cycle through (e.g. one per client flow); padded to a multiple of 64.
    /// - Throws: `SystemCallError` when the packet socket cannot be opened (see `FrameSender`).
    public init(interface: String, frames: [[UInt8]]) throws(SystemCallError) {
        precondition(!frames.isEmpty, "nothing to send")
        let padded = (0..<((frames.count + Self.batch - 1) / Self.batch * Self.batch)).map { frames[$0 % frames.count] }
        data = padded.flatMap { $0 }
        lengths = padded.map { UInt32($0.count) }
        offsets = padded.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        sender = try FrameSender(interface: interface)
    }

    /// Sends frames for `seconds`, at `rate` frames per second (0 = as fast as possible); returns the frames sent.
    /// The corresponding C function is `sendmmsg`.
    public func run(seconds: Double, rate: Int) -> Int {
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(Int(seconds * 1000))
        var sent = 0
        var batchIndex = 0
        let batches = lengths.count / Self.batch
        return data.withUnsafeBufferPointer { bytes in
            // Where each frame starts, for sendmmsg's vectors.
            let frames: [UnsafeMutableRawPointer?] = offsets.dropLast().map {
                UnsafeMutableRawPointer(mutating: bytes.baseAddress! + $0)
            }
            return lengths.withUnsafeBufferPointer { sizes in
                while clock.now < end {
                    if rate > 0 {
                        let elapsed = (clock.now - start).components
                        let allowed = Double(rate) * (Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
                        if Double(sent) >= allowed {
                            usleep(100)
                            continue
                        }
                    }
                    let first = batchIndex * Self.batch
                    let count = frames.withUnsafeBufferPointer { starts in
                        vipfarm_send_frames(
                            sender.fd, starts.baseAddress! + first, sizes.baseAddress! + first, UInt32(Self.batch))
                    }
                    if count > 0 { sent += Int(count) }
                    batchIndex = (batchIndex + 1) % batches
                }
                return sent
            }
        }
    }
}
