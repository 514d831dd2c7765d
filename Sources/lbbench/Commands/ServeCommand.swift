import ArgumentParser
import Hashing
import Testbed

/// `lbbench serve`: the echo application, for a farm of real hosts.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the echo application on a server of a farm (UDP and TCP, replies carry the server's ID).",
        discussion: """
            Answers every UDP datagram and every TCP read on VIP:PORT with the server's ID (two bytes, big-endian) \
            followed by the request, so that `lbbench failover` and `lbbench pps` on a client can tell which server \
            answered. Binds with IP_FREEBIND, so it may start before lbnode has set the VIP up. Runs until killed.
            """
    )

    @Option(help: "This server's ID (1-65535); use the lbnode node ID.")
    var id: Int

    @Option(help: "The farm's VIP.")
    var vip: String

    @Option(help: "The port for UDP and TCP.")
    var port: UInt16 = 9000

    func validate() throws {
        guard (1...65535).contains(id) else { throw ValidationError("--id must be from 1 to 65535") }
        guard IPAddress(vip) != nil else { throw ValidationError("--vip '\(vip)' is not an IPv4 or IPv6 address") }
    }

    func run() throws {
        let server = try EchoServer(id: UInt16(id), vip: IPAddress(vip)!, port: port)
        print("lbbench serve: server \(id) echoing on \(vip) port \(port) (UDP and TCP)")
        server.serve()
    }
}
