using System;

class Program {
    static void Main() {
        var v = Console.ReadLine().Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries);
        Console.WriteLine(long.Parse(v[0]) + long.Parse(v[1]));
    }
}
