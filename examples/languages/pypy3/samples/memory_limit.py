hog = []
while True:
    hog.append(b"x" * (16 << 20))
