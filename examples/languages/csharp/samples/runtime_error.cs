class Program {
    static void Main() {
        System.Environment.Exit(3);
    }
}
