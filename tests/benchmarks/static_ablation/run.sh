#!/usr/bin/env bash
# Which piece of the stack's /static/ configuration costs throughput (docs/benchmarks.md, Static
# files): the stock nginx image (nginx/Dockerfile's base) serves FILE from eight servers
# (variants.conf), wrk -t2 -c32 takes 3 alternating rounds of 4 s on each. Needs Docker and wrk;
# on a shared engine hold its lock. Usage: tests/benchmarks/static_ablation/run.sh FILE
set -o errexit -o nounset -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
file=$(realpath "$1")
image=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' "$here/../../../nginx/Dockerfile" | head -n 1)
site=$(mktemp -d)
mkdir -p "$site/static/admin/css"
# A hashed name, so the Cache-Control map takes its immutable branch as in the stack.
cp "$file" "$site/static/admin/css/base.0123456789ab.css"
chmod -R a+rX "$site"
name=static-ablation-$$
ports=()
for port in 8081 8082 8083 8084 8085 8086 8087 8088; do
  ports+=(--publish "127.0.0.1::$port")
done
docker run --detach --name "$name" "${ports[@]}" \
  --volume "$here/variants.conf:/etc/nginx/conf.d/default.conf:ro" \
  --volume "$site:/srv/site:ro" "$image" >/dev/null
trap 'docker rm --force "$name" >/dev/null; rm -rf "$site"' EXIT
sleep 2
path=/static/admin/css/base.0123456789ab.css
for round in 1 2 3; do
  for port in 8081 8082 8083 8084 8085 8086 8087 8088; do
    host_port=$(docker port "$name" "$port/tcp" | head -n 1 | cut -d: -f2)
    wrk -t2 -c32 -d1s "http://127.0.0.1:$host_port$path" >/dev/null
    rps=$(wrk -t2 -c32 -d4s "http://127.0.0.1:$host_port$path" | awk '/Requests\/sec/ {print $2}')
    echo "round $round server :$port $rps req/s"
  done
done
