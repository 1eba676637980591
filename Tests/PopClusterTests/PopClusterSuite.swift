import Testing

/// Every cluster test, one at a time: each builds its own 3-member ensemble and namespaces, and on a small host
/// running two clusters at once only makes both slower.
@Suite(.serialized)
enum PopClusterSuite {}
