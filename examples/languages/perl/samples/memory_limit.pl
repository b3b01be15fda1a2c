my @hog;
push @hog, "x" x (16 << 20) while 1;
