#!/bin/bash
while pgrep -f "proto_fix2.py" >/dev/null; do sleep 5; done
/work/main/.venv/bin/python /tmp/i23/proto_fix3.py '{"fixed_scale_levels": 1}' 300 learned_allwaves all > /tmp/i23/proto_learned_allwaves.log 2>&1
