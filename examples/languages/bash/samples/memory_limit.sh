# dd reads 1 GiB into one buffer.
dd if=/dev/zero of=/dev/null bs=1G count=1 2>/dev/null
