#!/bin/bash
while kill -0 13970 2>/dev/null; do sleep 5; done
/work/main/.venv/bin/python /tmp/i23/proto_fix.py 0.3 300 > /tmp/i23/proto_0.3.log 2>&1
