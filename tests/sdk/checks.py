"""What every SDK script shares: a check that prints its outcome and stops the script on failure."""
import sys


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")
