#!/bin/sh
# check_banned.sh - functions we never call (git's banned.h, as a grep so system headers
# stay untouched): strcpy strcat strncpy sprintf vsprintf strtok gets atoi gmtime localtime.
set -eu
pat='\b(strcpy|strcat|strncpy|sprintf|vsprintf|strtok|gets|atoi|gmtime|localtime)[[:space:]]*\('
if git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'bench/*.c' | xargs grep -nE "$pat" \
    | grep -vE '(snprintf|vsnprintf|_r\()'; then
    echo "check-banned: banned function used (see tools/check_banned.sh)"
    exit 1
fi
echo "banned: ok"
