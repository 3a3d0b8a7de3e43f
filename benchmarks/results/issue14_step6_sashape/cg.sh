#!/bin/sh
# usage: cg.sh TREE OUTNAME
TREE=$1; OUT=$2
P=postgresql://postgres@127.0.0.1:48427/postgres R=postgresql://postgres@127.0.0.1:39219/postgres
cd $TREE && PYTHONPATH=$TREE/src nice -n 19 /work/wt-sashape/.venv/bin/python benchmarks/profile_paths.py --sections callgrind --threads 1 --cg-n 200 --cg-subjects sa-sync-plain-get,sa-sync-routed-get,sa-sync-plain-select,sa-sync-routed-select,sa-async-plain-get,sa-async-routed-get,sa-async-plain-select,sa-async-routed-select --primary $P --replica $R --json /tmp/sashape/$OUT.json > /tmp/sashape/$OUT.log 2>&1
