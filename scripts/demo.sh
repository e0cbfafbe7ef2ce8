#!/bin/sh
# Runs examples/demo.c against the real smolvm when one is installed, else
# against the stand-in, on a machine made for the demo and deleted after.
#
#   BOTTLE_SMOLVM       smolvm to use (default: smolvm on PATH, else the stand-in)
#   BOTTLE_DEMO_MACHINE use this existing, running machine instead of making one
#   BOTTLE_DEMO_IMAGE   image for the demo machine with a real smolvm (the agent
#                       image: a `node` user and claude-code)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
standin="$root/target/debug/smolvm-standin"

if [ -n "${BOTTLE_SMOLVM:-}" ]; then
    echo "demo: using BOTTLE_SMOLVM=$BOTTLE_SMOLVM"
elif real=$(command -v smolvm); then
    echo "demo: using the real smolvm at $real"
    BOTTLE_SMOLVM=$real
else
    echo "demo: smolvm is not installed; using the stand-in smolvm ($standin)"
    BOTTLE_SMOLVM=$standin
    export SMOLVM_STANDIN_HOME="${SMOLVM_STANDIN_HOME:-$root/target/standin-home}"
fi
export BOTTLE_SMOLVM

if [ -n "${BOTTLE_DEMO_MACHINE:-}" ]; then
    exec "$root/build/demo" "$BOTTLE_DEMO_MACHINE"
fi

if [ "$BOTTLE_SMOLVM" != "$standin" ] && [ -z "${BOTTLE_DEMO_IMAGE:-}" ]; then
    echo "demo: with a real smolvm, set BOTTLE_DEMO_IMAGE to the agent image" \
         "or BOTTLE_DEMO_MACHINE to a running machine" >&2
    exit 2
fi

name="bottle-demo-$$"
"$BOTTLE_SMOLVM" machine create --name "$name" ${BOTTLE_DEMO_IMAGE:+--image "$BOTTLE_DEMO_IMAGE"}
trap '"$BOTTLE_SMOLVM" machine delete --name "$name" -f >/dev/null &&
    echo "demo: deleted the machine $name that this script made"' EXIT
"$BOTTLE_SMOLVM" machine start --name "$name"
echo "demo: made and started the machine $name; build/demo opens a bottle on it:"
"$root/build/demo" "$name"
