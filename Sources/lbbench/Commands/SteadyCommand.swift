import ArgumentParser
import Foundation
import Hashing
import RouteSetup
import TapEngine
import Testbed

/// `lbbench steady`: no false failover while the engines run flat out.
struct SteadyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "steady",
        abstract: "Check that a farm under full packet load never fails over by mistake (needs root).",
        discussion: """
            Builds a three-server farm with the default heartbeat settings (4 ms, dead after 4), then sends 64-byte \
            UDP frames to the VIP from many client flows as fast as the generator goes for --seconds, and counts the \
            membership changes the nodes logged meanwhile (there must be none) and the frames each engine read. With \
            --dead-node, node 3 is configured on every node but absent from the network the whole time (powered off): \
            the two others must not change their view either.
            """
    )

    @Option(help: "Seconds of full load.")
    var seconds = 60.0

    @Option(help: ArgumentHelp(DeliverySetting.help))
    var delivery: DeliverySetting = .fixed(.directed)

    @Flag(help: "Node 3 configured everywhere but absent from the network (a server powered off) the whole time.")
    var deadNode = false

    @OptionGroup var engineThreads: EngineThreadsOption

    @OptionGroup var heartbeat: HeartbeatOption

    @OptionGroup var output: ReportOptions

    func validate() throws {
        guard (1...3600).contains(seconds) else { throw ValidationError("--seconds must be from 1 to 3600") }
    }

    struct Report: Codable {
        var seconds: Double
        var delivery: String
        /// Node 3 was configured but absent.
        var deadNode: Bool
        var framesSent: Int
        var framesPerSecond: Double
        /// Membership lines (a node dead, a view change) logged during the load, by node.
        var falseFailovers: [Int: [String]]
    }

    func run() throws {
        try requireRoot()
        warnAboutLeftovers()
        var options = VirtualFarm.Options(delivery: delivery)
        engineThreads.apply(to: &options)
        heartbeat.settings.apply(to: &options)
        if deadNode {
            options.startNodes = [1, 2]
            options.absentServers = [3]
        }
        let farm = try VirtualFarm(options)
        defer { farm.stop() }
        let nodes = farm.startedNodes
        guard farm.waitForView(farm.startedView, nodes: nodes) else {
            throw FarmError("the farm did not form; node 1 logged:\n\(farm.log(1))")
        }
        _ = try farm.exchange(count: 1)  // the client learns the VIP's (virtual) MAC by ARP
        let client = farm.testbed.clients[0]
        let blaster: Result<FrameBlaster, Error> = try client.namespace.run { () throws(NetlinkError) in
            Result {
                guard let virtualMAC = FarmChaos.neighbourMAC(of: farm.vip) else {
                    throw FarmError("the client has no ARP entry for the VIP")
                }
                let frames = (0..<4096).map { index in
                    PacketBuilder.udp(
                        destinationMAC: virtualMAC, sourceMAC: client.macValue,
                        source: client.ip, destination: farm.vip,
                        sourcePort: UInt16(10000 + index), destinationPort: 9, payload: Array(repeating: 0, count: 18))
                }
                return try FrameBlaster(interface: VirtualNetwork.hostInterface, frames: frames)
            }
        }
        let before = nodes.map { farm.log($0).split(separator: "\n").count }
        FileHandle.standardError.write(Data("lbbench steady: \(seconds) s of full load...\n".utf8))
        let sent = try blaster.get().run(seconds: seconds, rate: 0)
        var changes: [Int: [String]] = [:]
        for (index, node) in nodes.enumerated() {
            let lines = farm.log(node).split(separator: "\n").dropFirst(before[index])
            changes[node] = lines.filter { VirtualFarm.isViewChange($0) || $0.contains(" is dead") }.map(String.init)
        }
        let report = Report(
            seconds: seconds, delivery: delivery.description, deadNode: deadNode, framesSent: sent,
            framesPerSecond: Double(sent) / seconds,
            falseFailovers: changes)
        do {
            var table = TextTable(
                title: "\(String(format: "%.0f", seconds)) s at full load, \(delivery) delivery"
                    + (deadNode ? ", node 3 configured but absent: " : ": ")
                    + "\(sent) frames (\(String(format: "%.0f", report.framesPerSecond)) per second)",
                header: ["node", "membership changes"])
            for node in nodes { table.add(["\(node)", "\(changes[node]?.count ?? 0)"]) }
            try output.emit("steady", title: "lbbench steady: no false failover", table: table.rendered, value: report)
        }
        if changes.values.contains(where: { !$0.isEmpty }) { throw ExitCode(1) }
    }
}
