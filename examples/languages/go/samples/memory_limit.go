package main

var hog [][]byte

func main() {
	for {
		b := make([]byte, 16<<20)
		for i := range b {
			b[i] = 1
		}
		hog = append(hog, b)
	}
}
