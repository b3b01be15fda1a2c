import sys
sys.stdout.write("".join(reversed(sys.stdin.readlines())))
