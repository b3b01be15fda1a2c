class Program {
    static void Main() {
        return undefinedName;
    }
}
