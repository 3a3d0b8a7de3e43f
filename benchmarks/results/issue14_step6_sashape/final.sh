#!/bin/sh
date -u > /tmp/sashape/final.log
for s in 0 1 2; do
  for side in before after; do
    PYTHONHASHSEED=$s /tmp/sashape/cg.sh /tmp/sashape/$side cg_${side}_s$s; uptime >> /tmp/sashape/final.log
  done
done
date -u >> /tmp/sashape/final.log
