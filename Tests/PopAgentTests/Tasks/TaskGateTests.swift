import PopAgent
import PopState
import Testing

@Suite struct TaskGateTests {
    let a = try! MachineID("a")
    let b = try! MachineID("b")
    let c = try! MachineID("c")
    let d = try! MachineID("d")

    @Test func withoutALimitEveryMachineStarts() {
        let gate = TaskGate(machines: [a, b, c], maxParallel: nil)
        for machine in [a, b, c] { #expect(gate.decision(for: machine, results: [:]) == .start) }
    }

    @Test func oneAtATimeGoesInOrder() {
        let gate = TaskGate(machines: [a, b, c], maxParallel: 1)
        #expect(gate.decision(for: a, results: [:]) == .start)
        #expect(gate.decision(for: b, results: [:]) == .wait(unfinishedBefore: 1))
        #expect(gate.decision(for: c, results: [:]) == .wait(unfinishedBefore: 2))
        #expect(gate.decision(for: b, results: [a: .running]) == .wait(unfinishedBefore: 1))
        #expect(gate.decision(for: b, results: [a: .succeeded]) == .start)
        #expect(gate.decision(for: c, results: [a: .succeeded, b: .running]) == .wait(unfinishedBefore: 1))
        // A failure finishes a machine too: the rollout goes on, and the requester sees the failure.
        #expect(gate.decision(for: c, results: [a: .succeeded, b: .failed]) == .start)
    }

    @Test func twoAtATime() {
        let gate = TaskGate(machines: [a, b, c, d], maxParallel: 2)
        #expect(gate.decision(for: a, results: [:]) == .start)
        #expect(gate.decision(for: b, results: [:]) == .start)
        #expect(gate.decision(for: c, results: [a: .running, b: .running]) == .wait(unfinishedBefore: 2))
        #expect(gate.decision(for: c, results: [a: .succeeded, b: .running]) == .start)
        #expect(gate.decision(for: d, results: [a: .succeeded, b: .running]) == .wait(unfinishedBefore: 2))
        #expect(gate.decision(for: d, results: [a: .succeeded, b: .succeeded, c: .running]) == .start)
    }

    @Test func aMachineNotNamedIsNotAsked() {
        let gate = TaskGate(machines: [a, b], maxParallel: 1)
        #expect(gate.decision(for: c, results: [:]) == .notAsked)
    }

    @Test func aLimitAboveTheMachineCountLetsAllStart() {
        let gate = TaskGate(machines: [a, b, c], maxParallel: 5)
        #expect(gate.decision(for: c, results: [:]) == .start)
    }
}

@Suite struct OutputTailTests {
    @Test func keepsTheEnd() {
        var tail = OutputTail(limit: 8)
        tail.append(Array("hello ".utf8))
        tail.append(Array("world".utf8))
        #expect(tail.contents == Array("lo world".utf8))
        #expect(tail.droppedBytes == 3)
        #expect(tail.text == "[... 3 earlier bytes not kept ...]\nlo world")
    }

    @Test func keepsShortOutputWhole() {
        var tail = OutputTail(limit: 64)
        tail.append(Array("ok\n".utf8))
        #expect(tail.text == "ok\n")
    }

    @Test func neverStartsInsideACharacter() {
        var tail = OutputTail(limit: 3)
        tail.append(Array("aé".utf8) + Array("b".utf8))  // a, 0xC3 0xA9, b -> keeps 0xA9 'b'? no: keeps last 3 bytes
        #expect(tail.contents == [0xC3, 0xA9, UInt8(ascii: "b")])
        var cut = OutputTail(limit: 2)
        cut.append(Array("é".utf8) + Array("b".utf8))
        #expect(cut.text.hasSuffix("\nb"))
    }
}
