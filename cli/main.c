/*
 * main.c - the pigeon command: dispatch to subcommands.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "pigeon/pigeon.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("pigeon %s\n", PIGEON_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: pigeon COMMAND [OPTIONS]\n");
    return EX_USAGE;
}
