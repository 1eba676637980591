/// A value kept in a heap box of its own and copied when it is changed while shared, so that it is still a value.
///
/// A dictionary stores its values inline, in slots of which up to half are empty after it doubles: a table of large
/// values whose fields live in such a box costs a pointer per slot instead of the value's size (the supervisor's
/// entries are about 1 KB each).
struct CopyOnWriteBox<Value: Sendable>: Sendable {
    /// Changed only through ``value``, which copies it first unless this box is its only owner.
    private final class Storage: @unchecked Sendable {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    private var storage: Storage

    init(_ value: Value) { storage = Storage(value) }

    var value: Value {
        get { storage.value }
        _modify {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.value) }
            yield &storage.value
        }
    }
}

extension CopyOnWriteBox: Equatable where Value: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage === rhs.storage || lhs.value == rhs.value }
}

extension CopyOnWriteBox: Hashable where Value: Hashable {
    func hash(into hasher: inout Hasher) { value.hash(into: &hasher) }
}
