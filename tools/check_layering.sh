#!/bin/sh
# check_layering.sh - #include lines must follow the dependency matrix of
# docs/architecture.md: each module may include only the modules listed for it.
set -eu
allowed() {
    case "$1" in
    base) echo "base" ;;
    core) echo "base core" ;;
    flow) echo "base core flow" ;;
    plan) echo "base core flow plan" ;;
    sched) echo "base core flow sched" ;;
    sim) echo "base core flow sched sim" ;;
    engine) echo "base core engine" ;;
    runtime) echo "base core flow plan sched engine runtime" ;;
    api) echo "base core flow plan sched engine runtime api" ;;
    cli) echo "base core flow plan sched sim engine runtime api cli" ;;
    *) echo "" ;;
    esac
}
fail=0
for f in $(git ls-files 'src/*.c' 'src/*.h' 'src/*.cu' 'src/*.cuh'); do
    mod=$(echo "$f" | cut -d/ -f2)
    ok=$(allowed "$mod")
    for inc in $(grep -ho '^#include "[a-z_]*/' "$f" | sed 's/#include "//; s/\///'); do
        case " $ok " in
        *" $inc "*) ;;
        *) echo "check-layering: $f ($mod) includes $inc/"; fail=1 ;;
        esac
    done
done
[ $fail -eq 0 ] && echo "layering: ok"
exit $fail
