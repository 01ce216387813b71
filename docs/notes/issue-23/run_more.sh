#!/bin/bash
# more paired seeds: base and the slope-only prototype
while pgrep -f run_slope_reps.sh >/dev/null; do sleep 5; done
for s in 106 107 108; do
  /work/main/.venv/bin/python /tmp/i23/replicate.py $s 20000 200 >> /tmp/i23/reps.log 2>&1
  /work/main/.venv/bin/python /tmp/i23/replicate.py $s 20000 200 '{"_update": {"varying": ["intercept", "slope"], "priors": {"group_offset_sd": 0.3}}}' slope03 >> /tmp/i23/reps_slope.log 2>&1
done
