extension PopError {
    /// Quotes user input for a message, escaping control characters so that they cannot corrupt a terminal.
    public static func quoted(_ text: String) -> String { NameRules.printable(text) }
}
