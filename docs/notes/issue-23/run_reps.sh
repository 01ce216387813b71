#!/bin/bash
for s in 101 102 103 104 105 106; do
  /work/main/.venv/bin/python /tmp/i23/replicate.py $s 20000 200 >> /tmp/i23/reps.log 2>&1
done
