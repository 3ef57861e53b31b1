#!/bin/sh
# t0100-flow.sh - `helix flow`: Helix's ILP placement on the 24-node cluster gives the max-flow
# 1289.5558 tokens/s (spec §9.1), --json carries throughput/upper_bound/nodes/bottleneck, a
# layout over a GPU's max layers exits 2 naming file:line:key, and --help exits 0.
set -u
HELIX=${HELIX:-build/debug/helix}
[ -x "$HELIX" ] || { echo "no helix binary at $HELIX"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$HELIX" flow --model llama2_70b --cluster data/clusters/single24.ini \
    --layout data/layouts/single24_70b/ilp_sol.ini) || fail "flow exited $?"
echo "$out" | grep -q '^throughput   1289.5558 tokens/s' || fail "throughput line: $out"
echo "$out" | grep -q '^upper bound  2803.8610' || fail "upper bound line"
echo "$out" | grep -q 'node 23 (L4, 7 layers): 531.7026' || fail "bottleneck line"

json=$("$HELIX" flow --json --model llama2_70b --cluster data/clusters/single24.ini \
    --layout data/layouts/single24_70b/petals_sol.ini --partial) || fail "json exited $?"
for k in throughput upper_bound nodes bottleneck; do
    echo "$json" | grep -q "\"$k\"" || fail "json lacks $k"
done
echo "$json" | grep -q '"throughput":[[:space:]]*952.107' || fail "petals partial throughput"

# bundled names resolve to data/clusters/NAME.ini and data/layouts/NAME_sol.ini
"$HELIX" flow --model llama2_70b --cluster cluster42 --layout cluster42_70b/swarm |
    grep -q '^throughput   4892.2424' || fail "bundled names / cluster42 swarm"

# the simulator graph on Helix's stored simulator cluster gives the same value
"$HELIX" flow --model llama2_70b --cluster data/clusters/single24.ini \
    --layout data/layouts/single24_70b/ilp_sol.ini \
    --simulator-cluster data/layouts/single24_70b/ilp_simulator_cluster.ini |
    grep -q '^throughput   1289.5558' || fail "simulator graph"

# bad layout: 8 layers on an L4 (max 7) -> exit 2 with file:line:key
sed 's/^compute_node_2=\[7, 8, 9, 10\]$/compute_node_2=[7, 8, 9, 10, 11, 12, 13, 14]/' \
    data/layouts/single24_70b/ilp_sol.ini >"$tmp/bad.ini"
"$HELIX" flow --model llama2_70b --cluster data/clusters/single24.ini --layout "$tmp/bad.ini" \
    >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] || fail "bad layout exit $rc, want 2"
grep -q "bad.ini:5: \[Solution\] compute_node_2: 8 layers exceed max layers 7" "$tmp/err" ||
    fail "message: $(cat "$tmp/err")"

# non-contiguous layers -> exit 2
printf '[Settings]\noffset=2\n\n[Solution]\ncompute_node_2=[0, 2]\n' >"$tmp/gap.ini"
"$HELIX" flow --model llama2_70b --cluster data/clusters/single24.ini --layout "$tmp/gap.ini" \
    2>"$tmp/err" >/dev/null
[ $? -eq 2 ] || fail "gap layout exit"
grep -q "gap.ini:5: \[Solution\] compute_node_2: layers not contiguous" "$tmp/err" ||
    fail "gap message: $(cat "$tmp/err")"

# usage
"$HELIX" flow --help >"$tmp/help" || fail "--help exit"
for o in --model --cluster --layout --partial --json --machine-profiles --simulator-cluster; do
    grep -q -- "$o" "$tmp/help" || fail "help lacks $o"
done
"$HELIX" flow --model llama2_70b >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing options exit"
echo "ok"
