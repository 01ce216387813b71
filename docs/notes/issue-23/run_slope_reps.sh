#!/bin/bash
# paired replications of the second prototype (penalty/reward shared across groups, slope offsets sd 0.3)
for s in 105 101 103; do
  /work/main/.venv/bin/python /tmp/i23/replicate.py $s 20000 200 '{"_update": {"varying": ["intercept", "slope"], "priors": {"group_offset_sd": 0.3}}}' slope03 >> /tmp/i23/reps_slope.log 2>&1
done
