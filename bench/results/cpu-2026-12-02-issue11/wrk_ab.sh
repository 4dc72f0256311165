#!/bin/bash
# alternate two daemons on mnist with wrk at concurrency $1, $2 rounds
cd /work/main
for r in $(seq 1 $2); do
  for b in build /tmp/pre11/build; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $b/visiond serve --listen 127.0.0.1:18181 --models models >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 50); do curl -s localhost:18181/readyz >/dev/null && break; sleep 0.1; done
    IMAGE=models/mnist/sample-7.png IMAGE_TYPE=image/png wrk -t1 -c$1 -d5s -s tests/bench/post_image.lua http://127.0.0.1:18181/v1/models/mnist/classify 2>/dev/null | awk -v b=$b '/Requests\/sec/ {print b, $2}'
    kill $pid; wait $pid 2>/dev/null
  done
done
