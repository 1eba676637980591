import Foundation
import PopTestExpectations
import PopTestSupport
import Testing

/// Runs `body` in a fresh pop world on the embedded store whose plugin path holds ``RelationPlugin``; its agent and
/// instances are stopped, and its folder removed, before this returns.
func withRelationWorld(_ body: (CLIFixture) async throws -> Void) async throws {
    let machine = "rel-" + UUID().uuidString.prefix(8).lowercased()
    var pop = try PopRunner(label: "relations", environment: ["POP_MACHINE_ID": machine])
    pop.environment["POP_PLUGIN_PATH"] = try RelationPlugin.write(under: pop.scratch).path
    let fixture = CLIFixture(kind: .embedded, pop: pop, localMachine: machine)
    try await pop.withAgentStoppedAfterwards {
        try await pop.ok("init")
        try await body(fixture)
    }
}
