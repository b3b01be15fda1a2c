// The compiler would write a 1 GiB object file: held to the profile's file_bytes, the compile fails.
char pad[1 << 30] = {1};
int main(int argc, char **) { return pad[argc << 20]; }
