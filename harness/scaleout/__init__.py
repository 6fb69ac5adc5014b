"""Running a run's units outside the driver process: the worker contract, local worker processes, SLURM.

The driver plans (which units are pending), hands unit names to workers, waits, then scores. A worker opens the
run folder itself, loads the method on its own device, predicts, and commits each unit by the same atomic rename a
local run uses; a worker that dies leaves only its unit in flight undone, and the next run does it.
"""
