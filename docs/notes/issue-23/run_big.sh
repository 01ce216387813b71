#!/bin/bash
# one large replication (100k customers: ~50k wave-2 rows): does payment_reliability's shortfall shrink with n?
/work/main/.venv/bin/python /tmp/i23/replicate.py 201 100000 100 >> /tmp/i23/reps_big.log 2>&1
