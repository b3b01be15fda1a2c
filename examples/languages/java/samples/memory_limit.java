import java.util.ArrayList;

public class Main {
    public static void main(String[] args) {
        ArrayList<long[]> hog = new ArrayList<>();
        for (;;) hog.add(new long[2 << 20]);
    }
}
