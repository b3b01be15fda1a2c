fun main() {
    val hog = ArrayList<LongArray>()
    while (true) hog.add(LongArray(2 shl 20))
}
