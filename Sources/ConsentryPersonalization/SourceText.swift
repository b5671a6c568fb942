/// Moves `index` forward over `chars` to `target` (at most the end), keeping `line` and `column` (1-based) of the
/// character at `index`: the one way the segment rule lexer and the template lexer and parser count positions for
/// their error messages.
func advance(over chars: [Character], from index: inout Int, to target: Int, line: inout Int, column: inout Int) {
    while index < min(target, chars.count) {
        if chars[index] == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        index += 1
    }
}
