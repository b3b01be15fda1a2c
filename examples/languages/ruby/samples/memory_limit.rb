hog = []
loop { hog << "x" * (16 << 20) }
