fun main() {
    var n = 0L
    while (n >= 0) n = (n + 1) and Long.MAX_VALUE
}
