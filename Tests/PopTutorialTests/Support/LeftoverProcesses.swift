#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PopTestSupport
import TestProcesses

/// Finds and ends the processes one tutorial run left behind: its agent (which has the run's POP_HOME in its
/// environment) and every instance, setup step or task (which have POP_INSTANCE_DIR inside that home), each with its
/// whole process group, so a failed run leaves no Plone listening and no pip running.
enum LeftoverProcesses {
    /// Sends SIGKILL to the process group of every leftover process (or to the process alone when it shares this
    /// test's group), waits until they are gone, and returns what it found, for the test's report.
    @discardableResult
    static func kill(home: String) async -> [pid_t] {
        let found = Processes.withEnvironment(startingWith: ["POP_HOME=\(home)", "POP_INSTANCE_DIR=\(home)/"])
        let ownGroup = getpgrp()
        for pid in found {
            let group = getpgid(pid)
            if group > 1, group != ownGroup {
                _ = Glibc.kill(-group, SIGKILL)
            } else {
                _ = Glibc.kill(pid, SIGKILL)
            }
        }
        _ = await Processes.waitForExit(found, timeout: .seconds(30))
        return found
    }
}
