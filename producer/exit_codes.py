"""The CLI's exit codes: a contract with every deploy pipeline that gates on them.

A pipeline reads 1 as "this deploy would ship a drifted host", so nothing but a finding may
ever produce it; every other way a run can end has a code of its own.
"""

EXIT_OK = 0  # every targeted environment verified and clean
EXIT_DRIFT = 1  # drift found: at least one finding was produced
EXIT_USAGE = 2  # usage error or bad input
EXIT_UNVERIFIED = 3  # no drift found, but some hosts were not verified
EXIT_INFRA = 4  # infrastructure failure: the broker is unreachable or was lost beyond retry
EXIT_INTERNAL = 5  # a bug in lockstep: an unexpected exception
