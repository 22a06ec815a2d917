"""The CLI's exit codes: a contract with every deploy pipeline that gates on them."""

EXIT_OK = 0  # every targeted environment verified and clean
EXIT_DRIFT = 1  # drift found
EXIT_USAGE = 2  # usage error or bad input
EXIT_UNVERIFIED = 3  # no drift found, but some hosts were not verified
EXIT_INFRA = 4  # infrastructure failure: the broker is unreachable
