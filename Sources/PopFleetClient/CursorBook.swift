import PopState

/// Where a reader stands in each journal of one machine, kept from the frames as they arrive, so that a reader that
/// reconnects asks for exactly what follows.
public struct CursorBook: Sendable, Hashable {
    /// The service whose log lines come (lines carry only their stream).
    public let service: ServiceName?
    /// The cursor of each journal heard from.
    public private(set) var cursors: [JournalKey: JournalCursor] = [:]
    /// The first watermark received: the machine's time when the reader first got an answer.
    public private(set) var firstWatermark: Int64?

    /// An empty book for `service`'s journals.
    public init(service: ServiceName?) {
        self.service = service
    }

    /// Notes what `frames` delivered.
    public mutating func note(_ frames: [JournalFrame]) {
        for frame in frames {
            switch frame {
            case .identity(let key, let id):
                if cursors[key]?.journal != id { cursors[key] = JournalCursor(journal: id, position: 0) }
            case .line(let line):
                let key = JournalKey(stream: line.stream, service: service)
                cursors[key]?.position = line.seq
            case .event(let event):
                let key = JournalKey(stream: nil, service: event.service.flatMap { try? ServiceName($0) })
                cursors[key]?.position = event.seq
            case .gap(let key, let range):
                if let position = cursors[key]?.position, position < range.upperBound { cursors[key]?.position = range.upperBound }
            case .watermark(let time):
                if firstWatermark == nil { firstWatermark = time }
            case .end, .failure:
                break
            }
        }
    }

    /// The request to send when coming back: after the cursors, and for journals not heard from yet, what was written
    /// since the first answer (they appeared meanwhile); the first time, `initial` as it is.
    public func resuming(_ initial: JournalRequest) -> JournalRequest {
        guard let firstWatermark else { return initial }
        var request = initial
        request.cursors = cursors
        request.start = .since(firstWatermark)
        return request
    }
}
