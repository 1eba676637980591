/// A readable aligned table: a header row and rows of cells, each cell optionally coloured.
struct Table {
    struct Cell {
        var text: String
        var color: Terminal.Color?

        init(_ text: String, _ color: Terminal.Color? = nil) {
            self.text = text
            self.color = color
        }
    }

    var headers: [String]
    var rows: [[Cell]] = []

    init(_ headers: String...) {
        self.headers = headers
    }

    mutating func append(_ cells: [Cell]) {
        rows.append(cells)
    }

    mutating func append(_ texts: String...) {
        rows.append(texts.map { Cell($0) })
    }

    /// Renders the table for `terminal`, padding by visible width so colour codes do not break alignment.
    func render(for terminal: Terminal) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.text.count)
            }
        }
        var out = ""
        func emit(_ cells: [Cell]) {
            var line = ""
            for (index, cell) in cells.enumerated() {
                let isLast = index == cells.count - 1
                let padding = isLast ? "" : String(repeating: " ", count: widths[index] - cell.text.count + 2)
                line += terminal.paint(cell.text, cell.color) + padding
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        emit(headers.map { Cell($0, .bold) })
        rows.forEach(emit)
        return out
    }
}
