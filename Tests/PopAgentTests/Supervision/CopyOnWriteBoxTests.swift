import Testing

@testable import PopAgent
import PopState

@Suite("Copy-on-write boxes")
struct CopyOnWriteBoxTests {
    @Test func aCopyChangedLeavesTheOriginalAsItWas() {
        let original = CopyOnWriteBox([1, 2])
        var copy = original
        copy.value.append(3)
        #expect(original.value == [1, 2])
        #expect(copy.value == [1, 2, 3])
        var again = copy
        again.value[0] = 9
        #expect(copy.value == [1, 2, 3])
        #expect(again.value == [9, 2, 3])
    }

    @Test func aDictionaryOfBoxesKeepsValueSemantics() {
        var table: [String: CopyOnWriteBox<[Int]>] = ["a": CopyOnWriteBox([1])]
        let snapshot = table
        table["a"]?.value.append(2)
        table["b"] = CopyOnWriteBox([3])
        #expect(snapshot["a"]?.value == [1])
        #expect(snapshot["b"] == nil)
        #expect(table["a"]?.value == [1, 2])
        // Changed through the values' indices, as the supervisor does when it lets go of every process.
        var index = table.values.startIndex
        while index != table.values.endIndex {
            table.values[index].value = []
            table.values.formIndex(after: &index)
        }
        #expect(table.values.allSatisfy { $0.value.isEmpty })
        #expect(snapshot["a"]?.value == [1])
    }

    @Test func boxesCompareAndHashByTheirValues() {
        let one = CopyOnWriteBox([1, 2])
        let same = CopyOnWriteBox([1, 2])
        var other = one
        #expect(one == same && one.hashValue == same.hashValue)
        other.value.append(3)
        #expect(one != other)
        #expect(Set([one, same, other]).count == 2)
    }

    @Test func aServiceEntryCopiedAndChangedLeavesTheOriginalAsItWas() {
        // The core's entries keep their fields in a box too, and are compared by their values.
        var original = ServiceEntry()
        original.activity = .removing
        var copy = original
        #expect(copy == original)
        copy.activity = .idle
        copy.tasks[try! TaskID("task-0000000001")] = .running
        #expect(original.activity == .removing && original.tasks.isEmpty)
        #expect(copy != original)
        copy.activity = .removing
        copy.tasks = [:]
        #expect(copy == original && copy.hashValue == original.hashValue)
    }

    @Test func aSupervisorEntryCopiedAndChangedLeavesTheOriginalAsItWas() async throws {
        // The entry's fields live in a box; a copy taken out of the table and changed must not change the table's.
        try await SupervisorFixture.with { fixture in
            let configuration = try fixture.configuration("web", ["sleep", "1000"])
            let original = Supervisor.Entry(
                configuration: configuration,
                machine: InstanceStateMachine(parameters: configuration.machineParameters, at: Moment.now()))
            var copy = original
            copy.processSignature = configuration.signature
            copy.configuration.command = ["sleep", "2000"]
            #expect(original.processSignature == nil)
            #expect(original.configuration.command == ["sleep", "1000"])
            #expect(copy.processSignature == configuration.signature)
            #expect(copy.configuration.command == ["sleep", "2000"])
        }
    }
}
