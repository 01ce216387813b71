#!/bin/bash
# paired replications with the prototype fix (group_offset_sd 0.3) on the seeds of the base replications
for s in 101 102 103 104; do
  /work/main/.venv/bin/python /tmp/i23/replicate.py $s 20000 200 '{"_update": {"priors": {"group_offset_sd": 0.3}}}' off03 >> /tmp/i23/reps_fix.log 2>&1
done
