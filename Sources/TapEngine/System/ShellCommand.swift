import Glibc

/// A shell command run to its end with a time limit, as a checker runs one.
public enum ShellCommand {
    /// How a command ended.
    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case killed(signal: Int32)
        case timedOut(milliseconds: Int)
        /// It could not be started, or waited for.
        case failed

        public var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .killed(let signal): "killed by signal \(signal)"
            case .timedOut(let milliseconds): "no answer within \(milliseconds) ms"
            case .failed: "could not be run"
            }
        }
    }

    /// Whether `command` exits 0 within the timeout (`run`).
    public static func succeeds(_ command: String, timeoutMilliseconds: Int, keepOutput: Bool = false) -> Bool {
        run(command, timeoutMilliseconds: timeoutMilliseconds, keepOutput: keepOutput) == .exited(0)
    }

    /// Runs `/bin/sh -c command` to its end within the timeout (its whole process group is killed otherwise, pipelines and
    /// grandchildren included). Spawned and reaped with `posix_spawn` and `waitpid`, not Foundation's `Process`,
    /// whose wait on Linux outlasted a killed child by seconds; SIGTERM, SIGINT and SIGPIPE are reset to their
    /// defaults in the child (a daemon ignores them, and a child would inherit that). Output goes to /dev/null unless
    /// `keepOutput`. A failed `waitpid` is a failure, never a pass.
    public static func run(_ command: String, timeoutMilliseconds: Int, keepOutput: Bool = false) -> Outcome {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signalNumber in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signalNumber) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)  // a group of its own, killed as one
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if !keepOutput {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        let words = ["/bin/sh", "-c", command]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/sh", &actions, &attributes, arguments, environ) == 0 else { return .failed }
        defer { kill(-pid, SIGKILL) }  // what the command left running in its group
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        while true {
            guard let reaped = try? SystemCall.retrying("waitpid", "wait for a checker", { waitpid(pid, &status, WNOHANG) })
            else { return .failed }
            if reaped == pid { break }
            guard ContinuousClock.now < deadline else {
                kill(-pid, SIGKILL)
                _ = try? SystemCall.retrying("waitpid", "reap a checker") { waitpid(pid, &status, 0) }
                return .timedOut(milliseconds: timeoutMilliseconds)
            }
            usleep(2_000)
        }
        // Exited normally when the low 7 bits are 0; else they are the signal.
        return status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .killed(signal: status & 0x7F)
    }
}
