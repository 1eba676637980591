import PopState
import Testing

@testable import PopAgent

/// How the agent lends its session to the scheduler.
@Suite struct SessionLendingTests {
    @Test func aBorrowerGetsTheSessionLentAndNothingOnceCancelled() async throws {
        try await withAgentFixture { fixture in
            let lending = SessionLending()
            let (borrowing, started) = AsyncStream.makeStream(of: Void.self)
            // Nothing is lent yet: the borrower gets the session once it is (whether it was waiting by then or not).
            async let borrowed = { () async -> Int64? in
                started.yield()
                return await lending.borrow()?.sessionID
            }()
            for await _ in borrowing { break }
            lending.lend(fixture.store)
            #expect(await borrowed == fixture.store.sessionID)
            // Lent now: a borrower gets it at once.
            #expect(await lending.borrow()?.sessionID == fixture.store.sessionID)
            // Withdrawn: a cancelled borrower gets nothing.
            lending.withdraw()
            let waiting = Task { await lending.borrow() }
            waiting.cancel()
            #expect(await waiting.value == nil)
        }
    }
}
