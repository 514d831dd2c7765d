import ArgumentParser
import Foundation
import RouteSetup
import Testbed

/// `lbbench testbed up|down`: a virtual network to look around in.
struct TestbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "testbed",
        abstract: "Build or remove a virtual network of namespaces (switch, servers, clients).",
        subcommands: [Up.self, Down.self]
    )

    /// Where `up` records the testbeds it leaves running, so that `down` finds them.
    static let registryDirectory = "/run/vipfarm/testbeds"

    struct Up: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build a testbed and leave it running.",
            discussion: """
                A Linux bridge in its own namespace is the switch; each server and client is a namespace with eth0 \
                on it, addressed from 198.18.0.0/15 (servers 198.18.0.11 and up, clients 198.18.1.1 and up), with \
                no route out. Look around with `ip netns exec <namespace> <command>`; remove it with \
                `lbbench testbed down`.
                """
        )

        @Option(help: "Server namespaces (1 to 200).")
        var servers = 3

        @Option(help: "Client namespaces (0 to 200).")
        var clients = 2

        func validate() throws {
            try VirtualNetwork.Description(servers: servers, clients: clients).validate()
        }

        func run() throws {
            try requireRoot()
            let testbed = try VirtualNetwork(.init(servers: servers, clients: clients))
            do {
                try FileManager.default.createDirectory(
                    atPath: TestbedCommand.registryDirectory,
                    withIntermediateDirectories: true)
                try Data(testbed.id.utf8).write(to: URL(fileURLWithPath: "\(registryDirectory)/\(testbed.id)"))
            } catch {
                throw ValidationError("cannot record testbed \(testbed.id) in \(registryDirectory): \(error)")
            }
            var table = TextTable(
                title: "testbed \(testbed.id) (switch: namespace \(testbed.switchNamespace.name), "
                    + "bridge \(VirtualNetwork.bridgeName))", header: ["host", "namespace", "interface", "address", "mac"])
            for host in testbed.hosts {
                table.add([
                    "\(host.role.rawValue) \(host.number)", host.namespace.name, testbed.hostInterface,
                    host.address.description, host.mac?.description ?? "-",
                ])
            }
            print(table.rendered)
            print("\nremove it with: lbbench testbed down --id \(testbed.id)")
            testbed.detach()  // it outlives the command: only `down` removes it
        }
    }

    struct Down: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove testbeds.",
            discussion: """
                Without options, removes the testbeds that `lbbench testbed up` left running. --id removes one; \
                --all removes every testbed namespace on the machine (vf-*), including those left by a crashed \
                test or benchmark.
                """
        )

        @Option(help: "The testbed to remove.")
        var id: String?

        @Flag(help: "Remove every vf-* namespace, also those of crashed runs.")
        var all = false

        func run() throws {
            try requireRoot()
            let removed: [String]
            if all {
                removed = VirtualNetwork.removeAll()
                try? FileManager.default.removeItem(atPath: registryDirectory)
            } else {
                let ids =
                    id.map { [$0] }
                    ?? ((try? FileManager.default.contentsOfDirectory(atPath: registryDirectory)) ?? [])
                removed = ids.flatMap { VirtualNetwork.remove(id: $0) }
                for id in ids { try? FileManager.default.removeItem(atPath: "\(registryDirectory)/\(id)") }
            }
            print(
                removed.isEmpty
                    ? "nothing to remove"
                    : "removed \(removed.count) namespaces: "
                        + removed.joined(separator: " "))
        }
    }
}

/// Namespaces and bridges need root.
/// Tells the user about testbed namespaces on the machine (another run's, or a crashed one's) and how to remove them;
/// it does not remove them itself, since another lbbench may be using them.
func warnAboutLeftovers() {
    let names = VirtualNetwork.allNamespaces
    guard !names.isEmpty else { return }
    let ids = Set(names.map { $0.split(separator: "-").dropFirst().first.map(String.init) ?? "" }).sorted()
    FileHandle.standardError.write(
        Data(
            ("lbbench: testbeds \(ids.joined(separator: ", ")) exist already (\(names.count) namespaces). If no other "
                + "lbbench or test is running, they are left from a crash: remove them with "
                + "`lbbench testbed down --all`.\n").utf8))
}

func requireRoot() throws {
    guard geteuid() == 0 else { throw ValidationError("this command builds network namespaces: run it as root") }
}
