fn main() {
    let mut hog = Vec::new();
    loop {
        hog.push(vec![1u8; 16 << 20]);
    }
}
