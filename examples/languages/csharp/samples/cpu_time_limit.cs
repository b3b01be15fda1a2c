class Program {
    static void Main() {
        long n = 0;
        while (n >= 0) n = (n + 1) & long.MaxValue;
    }
}
